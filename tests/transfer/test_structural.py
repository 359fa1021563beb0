"""Structural weight transfer: every source layer that still exists in the target gets its weights."""

import pytest
import torch

import yolo_attn  # noqa: F401
from yolo_attn.model_yaml.edit import insert_after, load_model_yaml, replace_concat
from yolo_attn.paths import MODEL_YAMLS
from yolo_attn.transfer.structural import align, row_signatures, structural_transfer


@pytest.fixture(scope="module")
def models():
    from yolov5.models.yolo import Model

    from yolo_attn.engines.yolov5.model import quiet

    torch.manual_seed(0)
    base = load_model_yaml(MODEL_YAMLS / "yolov5s.yaml")
    with quiet():
        built = {"base": Model(base, nc=4), "cbam": Model(insert_after(base, [4, 6, 8], "CBAM"), nc=4),
                 "aff": Model(replace_concat(base, "AFF"), nc=4)}
    return {k: m.eval() for k, m in built.items()}


def test_baseline_to_attention_variant_transfers_every_source_tensor(models):
    src, dst = models["base"].state_dict(), models["cbam"].state_dict()
    mapped, report = structural_transfer(src, dst)
    assert report.transferred == report.source_tensors == len(src)
    # independent expectation: rows after each insertion point shift by the number of insertions before them
    expected = {i: i + sum(i > r for r in (4, 6, 8)) for i in range(25)}
    assert report.moved == {s: t for s, t in expected.items() if s in report.moved}
    assert set(report.moved) == {i for i in range(25) if any(k.startswith(f"model.{i}.") for k in src)}
    assert report.new_rows == [5, 8, 11]
    for key, tensor in src.items():  # each tensor arrives under its shifted name, unchanged
        row, rest = key.split(".", 2)[1:]
        assert torch.equal(mapped[f"model.{expected[int(row)]}.{rest}"], tensor)


def test_name_matching_would_lose_layers_after_the_insertion(models):
    """The symptom this fixes: yolov5's own intersect_dicts (by name) keeps only what did not move."""
    from yolov5.utils.general import intersect_dicts

    src, dst = models["base"].state_dict(), models["cbam"].state_dict()
    by_name = intersect_dicts(src, dst)
    assert len(by_name) < 0.5 * len(src)


def test_replaced_concat_keeps_what_still_fits(models):
    src, dst = models["base"].state_dict(), models["aff"].state_dict()
    _, report = structural_transfer(src, dst)
    # the C3 after each fused pair now reads C instead of 2C channels: exactly those rows cannot transfer
    assert report.dropped_rows == [13, 17, 20, 23]
    assert set(report.new_rows) == {12, 13, 16, 17, 19, 20, 22, 23}
    assert 0 < report.transferred < report.source_tensors


def test_loaded_variant_reproduces_the_source_layers(models):
    """After transfer, the variant's first rows (before any insertion) compute exactly what the source's do."""
    src, dst = models["base"], models["cbam"]
    mapped, _ = structural_transfer(src.state_dict(), dst.state_dict())
    dst.load_state_dict(mapped, strict=False)
    x = torch.rand(1, 3, 64, 64)
    a, b = x, x
    for i in range(5):
        a, b = src.model[i](a), dst.model[i](b)
    assert torch.equal(a, b)


def test_exclude_by_name_and_alignment_order():
    sd_a = {"model.0.w": torch.zeros(2), "model.1.w": torch.zeros(3), "model.2.anchors": torch.zeros(1)}
    sd_b = {"model.0.w": torch.zeros(2), "model.1.x": torch.zeros(5), "model.2.w": torch.zeros(3),
            "model.3.anchors": torch.zeros(1)}
    mapped, report = structural_transfer(sd_a, sd_b, exclude=("anchor",))
    assert set(mapped) == {"model.0.w", "model.2.w"} and report.excluded == 1
    assert align(row_signatures(sd_a), row_signatures(sd_b)) == [(0, 0), (1, 2), (2, 3)]
