"""Every shipped variant of both engines (model_yamls/*.yaml, model_yamls/ultralytics/*.yaml), exported to ONNX with
a dynamic batch and image size the way its engine exports it (eval mode, fused, Detect in export mode), runs in
onnxruntime at two image sizes and batch sizes and matches PyTorch within parity.TOLERANCE. Traced once at 320 px;
run at 1x3x320x320 and 2x3x416x416 (a size the trace never saw: a layer that bakes a shape in fails here). The same
graph converted to float16 the way ``export half=True`` does on a CPU (onnxruntime's float16 tool, float32 input and
output) runs in onnxruntime on the CPU at 416 px within parity.HALF_TOLERANCE of the float32 PyTorch model.
(YOLO26/YOLO12 stand-alone variants: one representative each, see tests/shipped_params.py, REPRESENTED.)"""
import io
from pathlib import Path

import pytest
import torch

import yolo_attn  # noqa: F401
from yolo_attn import engines
from shipped_params import REPRESENTED
from yolo_attn.parity import HALF_TOLERANCE, TOLERANCE, max_relative_difference

onnxruntime = pytest.importorskip("onnxruntime")

REPO = Path(__file__).resolve().parents[2]
YAMLS = sorted((REPO / "model_yamls").glob("*.yaml")) + sorted(
    p for p in (REPO / "model_yamls" / "ultralytics").glob("*.yaml") if p.name not in REPRESENTED)
EXPORT_SIZE = 320
SHAPES = [(1, 3, 320, 320), (2, 3, 416, 416)]


def randomize_norms(model, seed=0):
    """Random BN statistics and affine parameters (a fresh model's BN is the identity: a fused or dropped BN would go
    unnoticed)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._NormBase) and m.running_mean is not None:
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.2)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return model


def for_export(model):
    """The model as yolov5's export.run / ultralytics' Exporter trace it with dynamic=True: eval, fused, the Detect
    head in export mode computing its grid from the input's shape."""
    model = randomize_norms(model).eval().fuse()
    head = model.model[-1]
    head.export, head.dynamic = True, True
    if hasattr(head, "format"):  # ultralytics
        head.format, head.shape = "onnx", None
    if hasattr(head, "inplace"):
        head.inplace = True
    return model


def first(out):
    return out[0] if isinstance(out, (list, tuple)) else out


@pytest.mark.slow
@pytest.mark.parametrize("cfg", YAMLS, ids=lambda p: str(p.relative_to(REPO / "model_yamls")))
def test_dynamic_onnx_matches_pytorch_at_two_sizes(cfg, quiet_yolov5):
    torch.manual_seed(0)
    model = for_export(engines.of(cfg).build_model(cfg, nc=4))
    f = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(model, torch.zeros(1, 3, EXPORT_SIZE, EXPORT_SIZE), f, opset_version=17, dynamo=False,
                          input_names=["images"], output_names=["output0"],
                          dynamic_axes={"images": {0: "batch", 2: "height", 3: "width"}, "output0": {0: "batch"}})
    session = onnxruntime.InferenceSession(f.getvalue(), providers=["CPUExecutionProvider"])
    gen = torch.Generator().manual_seed(1)
    diffs = {}
    for shape in SHAPES:
        x = torch.rand(shape, generator=gen)
        with torch.no_grad():
            expected = first(model(x)).numpy()
        got = session.run(None, {"images": x.numpy()})[0]
        assert got.shape == expected.shape, (shape, got.shape, expected.shape)
        diffs[shape] = max_relative_difference(got, expected)
    import onnx
    from onnxruntime.transformers import float16

    half = float16.convert_float_to_float16(onnx.load_from_string(f.getvalue()), keep_io_types=True)
    session = onnxruntime.InferenceSession(half.SerializeToString(), providers=["CPUExecutionProvider"])
    half_diff = max_relative_difference(session.run(None, {"images": x.numpy()})[0], expected)
    print(f"{cfg.name}: " + ", ".join(f"{'x'.join(map(str, s))} {d:.1e}" for s, d in diffs.items())
          + f"; float16 {half_diff:.1e}")
    assert max(diffs.values()) <= TOLERANCE, diffs
    assert half_diff <= HALF_TOLERANCE
