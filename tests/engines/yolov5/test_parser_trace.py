"""Every shipped model YAML traces with torch.jit.trace, in train and in eval mode (the trace's own check re-runs it)."""
from pathlib import Path

import pytest
import torch

import yolo_attn  # noqa: F401
from shipped_params import each_shipped

from yolov5.models import yolo  # noqa: E402

MODEL_YAMLS = Path(__file__).resolve().parents[3] / "model_yamls"
SHIPPED = sorted(p.name for p in MODEL_YAMLS.glob("*.yaml"))


def _tensors(out):
    if isinstance(out, torch.Tensor):
        return [out]
    return [t for o in out for t in _tensors(o)]


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("name", each_shipped(SHIPPED))
def test_every_shipped_yaml_traces(name, training, quiet_yolov5):
    torch.manual_seed(0)
    model = yolo.Model(str(MODEL_YAMLS / name), nc=3).train(training)
    x = torch.rand(1, 3, 64, 64)
    if not training:
        with torch.no_grad():
            model(x)  # Detect caches its grids on the first eval call; yolov5's export.py runs it first too
    traced = torch.jit.trace(model, x, check_inputs=[(torch.rand(1, 3, 64, 64),)], strict=False)
    x2 = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        for got, want in zip(_tensors(traced(x2)), _tensors(model(x2))):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
