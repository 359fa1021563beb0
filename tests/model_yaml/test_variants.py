"""The shipped model_yamls/ are exactly what the generator produces, so they cannot drift."""
from pathlib import Path

import pytest

import yolo_attn  # noqa: F401
from yolo_attn.model_yaml import variants
from yolo_attn.model_yaml.edit import load_model_yaml

MODEL_YAMLS = Path(__file__).resolve().parents[2] / "model_yamls"


def test_the_shipped_files_are_exactly_the_variants():
    assert sorted(p.name for p in MODEL_YAMLS.glob("*.yaml")) == sorted(variants.variants())  # ultralytics/: own test


@pytest.mark.parametrize("name", sorted(variants.variants()))
def test_shipped_file_equals_the_regenerated_text(name):
    assert (MODEL_YAMLS / name).read_bytes() == variants.render(name).encode("utf-8"), (
        f"model_yamls/{name} differs from variants.render({name!r}); regenerate with `yolo-attn generate-yamls`")


def test_write_all_writes_every_variant(tmp_path):
    assert variants.write_all(tmp_path / "out") == sorted(variants.variants())
    for name in variants.variants():
        assert (tmp_path / "out" / name).read_bytes() == (MODEL_YAMLS / name).read_bytes()


def test_the_baseline_is_yolov5s_and_the_variants_place_attention_as_documented():
    base = load_model_yaml(variants.base_yaml_path())
    assert load_model_yaml(MODEL_YAMLS / "yolov5s.yaml") == base
    for name, layer in [("se", "SE"), ("eca", "ECA"), ("cbam", "CBAM"), ("coordatt", "CoordAtt")]:
        d = load_model_yaml(MODEL_YAMLS / f"yolov5s-{name}.yaml")
        rows = d["backbone"] + d["head"]
        assert [i for i, r in enumerate(rows) if r[2] == layer] == [5, 8, 11]  # after the C3s at rows 4, 6, 8
        assert all(rows[i - 1][2] == "C3" for i in (5, 8, 11))
    aff = load_model_yaml(MODEL_YAMLS / "yolov5s-aff.yaml")
    assert [r[0] for r in aff["head"] if r[2] == "AFF"] == [[-1, 6], [-1, 4], [-1, 14], [-1, 10]]
    assert not any(r[2] == "Concat" for r in aff["head"])
