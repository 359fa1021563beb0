"""ONNX export of every shipped ultralytics variant through ultralytics' own exporter: onnxruntime reproduces the
PyTorch model within 1e-4 (relative to the output's magnitude). (YOLO26/YOLO12 stand-alone variants: one
representative each, see tests/shipped_params.py, REPRESENTED.)"""
import pytest
import torch

from shipped_params import REPRESENTED
from ul_helpers import ULTRALYTICS_YAMLS
from yolo_attn.engines.ultralytics.commands.export import check_exports
from yolo_attn.parity import TOLERANCE
from yolo_attn.engines.ultralytics.model import quiet, save_checkpoint

VARIANTS = sorted(p.name for p in ULTRALYTICS_YAMLS.glob("*.yaml") if p.name not in REPRESENTED)


@pytest.mark.slow
@pytest.mark.parametrize("name", VARIANTS)
def test_onnx_export_matches_pytorch(name, build, tmp_path):
    from ultralytics import YOLO

    torch.manual_seed(0)
    model = build(name)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # non-trivial BN statistics: the attention gates see varied inputs
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    weights = save_checkpoint(model, tmp_path / "best.pt", {"imgsz": 64})
    with quiet():
        onnx = YOLO(str(weights)).export(format="onnx", imgsz=64, simplify=False, dynamic=True)
    [(fmt, file, shapes, diff)] = check_exports(weights, [onnx], [64, 64], dynamic=True)
    assert fmt == "onnx" and len(shapes) == 2
    assert diff <= TOLERANCE, (name, diff)


@pytest.mark.parametrize("nms", [None, False])
def test_yolo26_exports_either_branch_with_parity(nms, build, tmp_path):
    """YOLO26 by default exports the one-to-many branch (b, 4 + nc, anchors) for NMS outside the graph; nms=False
    its end-to-end branch, top-k inside the graph (b, k, 6): each compared with that branch in PyTorch."""
    import onnxruntime
    from ultralytics import YOLO

    torch.manual_seed(0)
    model = build("yolo26n-cbam.yaml")
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # varied scores: a top-k over near-equal scores would depend on rounding
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
        head = model.model[-1]
        for cls in (*head.cv3, *head.one2one_cv3):  # fresh class logits are nearly equal everywhere
            torch.nn.init.normal_(cls[-1].weight, std=0.5, generator=g)
            torch.nn.init.zeros_(cls[-1].bias)
    weights = save_checkpoint(model, tmp_path / "best.pt", {"imgsz": 64})
    with quiet():
        onnx = YOLO(str(weights)).export(format="onnx", imgsz=64, simplify=False, nms=nms)
    [(fmt, file, shapes, diff)] = check_exports(weights, [onnx], [64, 64], dynamic=False, end2end=nms is False)
    assert diff <= TOLERANCE, (nms, diff)
    (out,) = onnxruntime.InferenceSession(str(onnx)).get_outputs()
    assert out.shape == ([1, 84, 6] if nms is False else [1, 4 + 4, 84])  # 84 anchors at 64 px, all in the top-k
    [(_, _, _, other)] = check_exports(weights, [onnx], [64, 64], dynamic=False, end2end=nms is not False)
    assert other == float("inf")  # the other branch's output does not fit: a mix-up would fail the check
