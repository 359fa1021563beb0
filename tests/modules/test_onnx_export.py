"""Every registered layer exports to ONNX (TorchScript exporter) and onnxruntime computes what PyTorch computes."""
import io

import pytest
import torch

import yolo_attn

onnxruntime = pytest.importorskip("onnxruntime")

C = 64


def _layer_and_inputs(spec):
    torch.manual_seed(0)
    x = torch.randn(2, C, 9, 7)
    if spec.members:
        return yolo_attn.create_attn(spec.name, C, "se", ["cbam", {"rd_ratio": 0.25}]), (x,)
    if spec.out_from_first:
        return yolo_attn.create_attn(spec.name, C, 2 * C), (x, torch.randn(2, 2 * C, 5, 4))
    if spec.inputs == 2:
        return yolo_attn.create_attn(spec.name, C), (x, torch.randn_like(x))
    if spec.changes_channels:
        return yolo_attn.create_attn(spec.name, C, 96), (x,)
    kwargs = {"groups": 8} if spec.name in ("SGE", "EMA", "ShuffleAttn") else {}
    return yolo_attn.create_attn(spec.name, C, **kwargs), (x,)


@pytest.mark.parametrize("spec", yolo_attn.registered_layers(), ids=lambda s: s.name)
def test_onnx_export_matches_pytorch(spec, randomize):
    layer, inputs = _layer_and_inputs(spec)
    layer = randomize(layer).eval()
    with torch.no_grad():
        for p in layer.parameters():  # zero-initialised outputs (NonLocal, GC block) would hide their branch
            if (p == 0).all():
                p.normal_(0, 0.5)
        expected = layer(*inputs)
    f = io.BytesIO()
    names = [f"in{k}" for k in range(len(inputs))]
    torch.onnx.export(layer, inputs, f, input_names=names, output_names=["out"], dynamo=False)
    session = onnxruntime.InferenceSession(f.getvalue(), providers=["CPUExecutionProvider"])
    got = torch.from_numpy(session.run(None, {n: t.numpy() for n, t in zip(names, inputs)})[0])
    assert got.shape == expected.shape
    assert ((got - expected).abs().max() / expected.abs().max()).item() <= 1e-4
