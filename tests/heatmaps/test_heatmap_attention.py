"""--attention: each module's own gates, computed from its real input, are the gates its forward pass applies."""
import pytest
import torch

from heatmap_helpers import MODEL_YAMLS
from shipped_params import each_shipped
from yolo_attn.errors import UsageError
from yolo_attn.heatmaps.attention import attention_figure, attention_gates
from yolo_attn.heatmaps.images import letterbox_tensor


def _inputs_and_outputs(model, image, row):
    seen = {}
    h = model.model[row].register_forward_hook(lambda m, args, out: seen.update(args=args, out=out))
    try:
        with torch.no_grad():
            model(image)
    finally:
        h.remove()
    return seen["args"][0], seen["out"]


def _image(seed=0):
    return torch.rand(1, 3, 64, 96, generator=torch.Generator().manual_seed(seed))


def test_coordatt_gate_is_the_product_the_module_applies(detector):
    model = detector("yolov5s-coordatt.yaml")
    image = _image()
    gates = attention_gates(model, image)
    rows = sorted({g.row for g in gates})
    assert rows == [i for i, m in enumerate(model.model) if type(m).__name__ == "CoordAtt"]
    for row in rows:
        (gate,) = [g for g in gates if g.row == row]
        assert gate.name == "h⊗w" and gate.spatial
        x, out = _inputs_and_outputs(model, image, row)
        ok = x.abs() > 1e-2
        applied = (out / torch.where(ok, x, torch.ones_like(x)))[0]
        torch.testing.assert_close(torch.from_numpy(gate.value)[ok[0]], applied[ok[0]], rtol=1e-3, atol=1e-4)


def test_aff_gate_is_the_fusion_weight(detector):
    model = detector("yolov5s-aff.yaml")
    image = _image(1)
    gates = attention_gates(model, image)
    assert {g.name for g in gates} == {"fusion"} and len(gates) == 4
    for gate in gates:
        (x, y), out = _inputs_and_outputs(model, image, gate.row)
        ok = (x - y).abs() > 1e-2
        weight = ((out - y) / torch.where(ok, x - y, torch.ones_like(x)))[0]
        torch.testing.assert_close(torch.from_numpy(gate.value)[ok[0]], weight[ok[0]], rtol=1e-3, atol=1e-4)


def test_cbam_has_a_channel_and_a_spatial_gate(detector):
    model = detector("yolov5s-cbam.yaml")
    gates = attention_gates(model, _image(2))
    assert [(g.row, g.name, g.spatial) for g in gates] == [
        (5, "channel", False), (5, "spatial", True), (8, "channel", False), (8, "spatial", True),
        (11, "channel", False), (11, "spatial", True)]
    assert gates[1].value.shape == (1, 8, 12) and gates[0].value.shape == (128, 1, 1)  # 64x96 input, stride 8


DRAWN = {"yolov5s-cbam.yaml", "yolov5s-coordatt.yaml", "yolov5s-aff.yaml", "yolov5s-se.yaml", "yolov5s-nonlocal.yaml"}


@pytest.mark.parametrize("cfg", each_shipped([c for c in MODEL_YAMLS if c != "yolov5s.yaml"]))
def test_every_attention_yaml_has_gates_to_draw(detector, tmp_path, cfg):
    """Gates for every attention YAML; the figure (matplotlib, seconds each) for a few of different kinds."""
    import numpy as np

    model = detector(cfg)
    img = np.random.default_rng(0).integers(0, 255, (60, 100, 3), dtype=np.uint8)
    x, frame = letterbox_tensor(img, 64, 32)
    gates = attention_gates(model, x)
    assert gates and all(np.isfinite(g.value).all() and g.value.ndim == 3 for g in gates)
    if cfg in DRAWN:
        path = tmp_path / "attention.png"
        attention_figure(img, frame, gates, path, title=cfg)
        assert path.stat().st_size > 5000


def test_a_model_without_attention_is_refused(detector):
    with pytest.raises(UsageError, match="no attention layers"):
        attention_gates(detector("yolov5s.yaml"), _image())
