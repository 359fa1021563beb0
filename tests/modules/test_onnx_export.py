"""Every registered layer exports to ONNX (TorchScript exporter) and onnxruntime computes what PyTorch computes, at
opset 12 (yolov5's ``export.run`` default and the opset its TensorRT path hard-codes) with a dynamic height and width."""
import io

import pytest
import torch

import yolo_attn

onnxruntime = pytest.importorskip("onnxruntime")

C = 64


def _layer(spec):
    torch.manual_seed(0)
    if spec.members:
        return yolo_attn.create_attn(spec.name, C, "se", ["cbam", {"rd_ratio": 0.25}])
    if spec.out_from_first:
        return yolo_attn.create_attn(spec.name, C, 2 * C)
    if spec.changes_channels:
        return yolo_attn.create_attn(spec.name, C, 96)
    kwargs = {"groups": 8} if spec.name in ("SGE", "EMA", "ShuffleAttn") else {}
    return yolo_attn.create_attn(spec.name, C, **kwargs)


def _inputs(spec, h, w):
    x = torch.randn(2, C, h, w)
    if spec.out_from_first:  # the second input is the coarser map the first one's size is taken from
        return x, torch.randn(2, 2 * C, (h + 1) // 2, (w + 1) // 2)
    return (x, torch.randn_like(x)) if spec.inputs == 2 else (x,)


def _relative_error(got, exact):
    return ((got.double() - exact).abs().max() / exact.abs().max()).item()


@pytest.mark.parametrize("spec", yolo_attn.registered_layers(), ids=lambda s: s.name)
def test_onnx_export_matches_pytorch(spec, randomize):
    layer = randomize(_layer(spec)).eval()
    inputs = _inputs(spec, 9, 7)
    with torch.no_grad():
        for p in layer.parameters():  # zero-initialised outputs (NonLocal, GC block) would hide their branch
            if (p == 0).all():
                p.normal_(0, 0.5)
    f = io.BytesIO()
    names = [f"in{k}" for k in range(len(inputs))]
    dynamic = {n: {2: "height", 3: "width"} for n in names}
    torch.onnx.export(layer, inputs, f, input_names=names, output_names=["out"], opset_version=12,
                      dynamic_axes=dynamic, dynamo=False)
    session = onnxruntime.InferenceSession(f.getvalue(), providers=["CPUExecutionProvider"])
    for h, w in ((9, 7), (12, 16)):  # the traced size and another one: sizes must not be frozen into the graph
        inputs = _inputs(spec, h, w)
        with torch.no_grad():
            ours = layer(*inputs)
            exact = layer.double()(*(t.double() for t in inputs))
            layer.float()
        got = torch.from_numpy(session.run(None, {n: t.numpy() for n, t in zip(names, inputs)})[0])
        assert got.shape == exact.shape, (h, w)
        # as close to the float64 result as PyTorch's own float32 is (CGA's cascade of randomised heads amplifies
        # rounding to a few 1e-4 in both), and never worse than 1e-4 where float32 is exact to that
        tolerance = max(1e-4, 2 * _relative_error(ours, exact))
        assert _relative_error(got, exact) <= tolerance, (h, w)
