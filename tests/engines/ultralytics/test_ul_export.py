"""ONNX export of every shipped ultralytics variant through ultralytics' own exporter: onnxruntime reproduces the
PyTorch model within 1e-4 (relative to the output's magnitude)."""
import pytest
import torch

from ul_helpers import ULTRALYTICS_YAMLS
from yolo_attn.engines.ultralytics.commands.export import check_exports
from yolo_attn.parity import TOLERANCE
from yolo_attn.engines.ultralytics.model import quiet, save_checkpoint

VARIANTS = sorted(p.name for p in ULTRALYTICS_YAMLS.glob("*.yaml"))


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
