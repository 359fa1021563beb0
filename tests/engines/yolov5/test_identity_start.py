"""Identity start: a variant with inserted attention computes exactly the source model's function at step 0."""

import torch

import yolo_attn  # noqa: F401
from yolo_attn.model_yaml.edit import insert_after, load_model_yaml
from yolo_attn.paths import MODEL_YAMLS
from yolo_attn.modules import IdentityStart
from yolo_attn.engines.yolov5.model import identity_rows, quiet
from yolo_attn.transfer import structural_transfer


def _build(d):
    from yolov5.models.yolo import Model

    with quiet():
        return Model(d, nc=4)


def _detect_inputs(model, x):
    """The three feature maps the Detect head reads (the network's function before the head's sigmoid)."""
    seen = []
    handle = model.model[-1].register_forward_pre_hook(lambda m, args: seen.append([t.clone() for t in args[0]]))
    with torch.no_grad():
        model(x)
    handle.remove()
    return seen[0]


def test_variant_equals_baseline_at_step_zero_and_not_without_identity_start():
    torch.manual_seed(0)
    base_d = load_model_yaml(MODEL_YAMLS / "yolov5s.yaml")
    base = _build(base_d).eval()
    variant_d = insert_after(base_d, [4, 6, 8, 9], "CoordAtt")
    x = torch.rand(2, 3, 96, 96)
    outputs = {}
    new_rows = identity_rows(base.state_dict(), variant_d)
    assert new_rows == [5, 8, 11, 13]  # after rows 4, 6, 8, 9 of the baseline, each shifted by earlier insertions
    for init in ("identity", "default"):
        d = dict(variant_d, identity_start=new_rows if init == "identity" else [])
        model = _build(d).eval()
        mapped, report = structural_transfer(base.state_dict(), model.state_dict())
        assert report.transferred == report.source_tensors
        model.load_state_dict(mapped, strict=False)
        wrapped = [m for m in model.model if isinstance(m, IdentityStart)]
        assert len(wrapped) == (4 if init == "identity" else 0)
        outputs[init] = _detect_inputs(model, x)
    expected = _detect_inputs(base, x)
    for got, want in zip(outputs["identity"], expected):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    # the symptom identity start removes: randomly initialised attention changes the features Detect reads
    assert max(((g - w).abs().max() / w.abs().max()).item() for g, w in zip(outputs["default"], expected)) > 0.05


def test_identity_start_learns_its_blend():
    torch.manual_seed(0)
    layer = IdentityStart(yolo_attn.create_attn("se", 8))
    x = torch.rand(2, 8, 5, 7)
    assert torch.equal(layer(x), x)
    (layer(x) * torch.randn_like(x)).sum().backward()
    assert layer.gamma.grad is not None and layer.gamma.grad.abs().item() > 0


def test_identity_start_rejects_rows_that_cannot_start_as_identity():
    import pytest

    from yolo_attn.errors import ModelConfigError

    d = load_model_yaml(MODEL_YAMLS / "yolov5s-se.yaml")
    with pytest.raises(ModelConfigError, match="layer 4 .*identity_start lists this row"):
        _build(dict(d, identity_start=[4]))  # a C3, not an attention layer
    with pytest.raises(ModelConfigError, match="identity_start"):
        _build(dict(d, identity_start="all"))


def test_transfer_from_a_checkpoint_with_the_attention_keeps_it():
    """Rows the source already has are transferred, not reset to identity (only new rows are listed)."""
    torch.manual_seed(0)
    d = load_model_yaml(MODEL_YAMLS / "yolov5s-cbam.yaml")
    source = _build(d)
    assert identity_rows(source.state_dict(), d) == []
    assert identity_rows(source.state_dict(), insert_after(d, [12], "CoordAtt")) == [13]
