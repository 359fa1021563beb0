"""SHSA (SHViT) checked against its formula, written with functional ops from the module's own weights, plus its
checks, identity start, export, precision and YAML rows."""
import copy
import io
from pathlib import Path

import pytest
import torch

import yolo_attn
from yolo_attn.errors import ModelConfigError
from yolo_attn.modules import SHSA

ROOT = Path(__file__).resolve().parents[2]


def _randomize_all(m, randomize):
    randomize(m)
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        m.pre_norm.weight.copy_(torch.rand(m.pre_norm.weight.shape, generator=g) + 0.5)
        m.pre_norm.bias.copy_(torch.randn(m.pre_norm.bias.shape, generator=g))
    return m


def shsa_ref(m, x, bn_ref, training):
    n, c, h, w = x.shape
    p, d = m.pdim, m.qk_dim
    x1 = x[:, :p]
    mean = x1.mean((1, 2, 3), keepdim=True)
    var = (x1 - mean).square().mean((1, 2, 3), keepdim=True)
    t = (x1 - mean) / torch.sqrt(var + 1e-5) * m.pre_norm.weight[:, None, None] + m.pre_norm.bias[:, None, None]
    qkv = bn_ref(torch.einsum('oc,nchw->nohw', m.qkv.c.weight[:, :, 0, 0], t), m.qkv.bn, training).flatten(2)
    q, k, v = qkv[:, :d], qkv[:, d:2 * d], qkv[:, 2 * d:]
    logits = torch.einsum('ndi,ndj->nij', q, k) * d ** -0.5
    e = torch.exp(logits - logits.amax(-1, keepdim=True))
    a = e / e.sum(-1, keepdim=True)
    x1 = torch.einsum('ndj,nij->ndi', v, a).reshape(n, p, h, w)
    z = torch.relu(torch.cat([x1, x[:, p:]], 1))
    y = bn_ref(torch.einsum('oc,nchw->nohw', m.proj[1].c.weight[:, :, 0, 0], z), m.proj[1].bn, training)
    return x + y if m.residual else y


CASES = {'defaults_c64': lambda: SHSA(64), 'pdim16_qk8': lambda: SHSA(32, qk_dim=8, pdim=16),
         'full_width_bare': lambda: SHSA(12, qk_dim=4, partial_ratio=1.0, residual=False)}


@pytest.mark.parametrize('key', sorted(CASES))
@pytest.mark.parametrize('n, h, w', [(2, 13, 17), (1, 13, 17), (2, 7, 7), (1, 1, 1), (2, 1, 3)])
@pytest.mark.parametrize('training', [True, False])
def test_matches_formula(key, n, h, w, training, randomize, bn_ref):
    m = _randomize_all(CASES[key](), randomize).double().train(training)
    x = torch.randn(n, m.dim, h, w, dtype=torch.float64)
    torch.testing.assert_close(m(x), shsa_ref(m, x, bn_ref, training), rtol=1e-9, atol=1e-9)


def test_parameter_count_and_defaults():
    m = SHSA(64)
    assert sum(p.numel() for p in m.parameters()) == 4_988  # MODULES.md: qk 16, pdim round(64 / 4.67) = 14
    assert (m.pdim, m.qk_dim) == (14, 16) and SHSA(224).pdim == 48 and SHSA(320, pdim=68).pdim == 68


def test_fresh_layer_is_the_identity_and_the_bare_mixer_is_zero():
    x = torch.randn(2, 64, 13, 17)
    assert torch.equal(SHSA(64).train()(x), x) and torch.equal(SHSA(64).eval()(x), x)
    assert SHSA(64, residual=False)(x).abs().max() == 0  # the official module: output exactly 0 at init
    spec = yolo_attn.find_layer('SingleHeadSelfAttention')
    assert spec.cls is SHSA and spec.starts_as_identity


def test_configuration_mistakes():
    with pytest.raises(ModelConfigError, match="pdim=65 attended channels do not fit in 64"):
        SHSA(64, pdim=65)
    with pytest.raises(ModelConfigError, match="qk_dim=0"):
        SHSA(64, qk_dim=0)
    with pytest.raises(ValueError, match="partial_ratio=1.5 is out of range"):
        yolo_attn.create_attn('shsa', 64, partial_ratio=1.5)
    with pytest.raises(ValueError, match="pdim=100 is out of range"):
        yolo_attn.create_attn('shsa', 64, pdim=100)


def test_attention_maps_are_softmax_rows(randomize):
    m = _randomize_all(SHSA(32, qk_dim=8), randomize).eval()
    a = m.attention_maps(torch.randn(2, 32, 5, 6))['attention']
    assert a.shape == (2, 30, 5, 6)
    torch.testing.assert_close(a.flatten(2).sum(-1), torch.ones(2, 30))


def test_gradients_reach_every_parameter(randomize, check_grads):
    m = _randomize_all(SHSA(32, qk_dim=8), randomize).double()
    check_grads(m.train(), [torch.randn(2, 32, 5, 3, dtype=torch.float64)])


def test_trace_and_onnx_at_odd_size(randomize):
    onnxruntime = pytest.importorskip("onnxruntime")
    m = _randomize_all(SHSA(64), randomize).eval()
    x = torch.randn(1, 64, 13, 17)
    with torch.no_grad():
        expected = m(x)
        torch.testing.assert_close(torch.jit.trace(m, x)(x), expected)
        x2 = torch.randn(2, 64, 9, 11)  # no shape is baked in: the trace runs at another size
        torch.testing.assert_close(torch.jit.trace(m, x)(x2), m(x2))
    f = io.BytesIO()
    torch.onnx.export(m, (x,), f, input_names=["x"], output_names=["y"], dynamo=False,
                      dynamic_axes={"x": {0: "n", 2: "h", 3: "w"}})
    session = onnxruntime.InferenceSession(f.getvalue(), providers=["CPUExecutionProvider"])
    for t in (x, x2):
        got = torch.from_numpy(session.run(None, {"x": t.numpy()})[0])
        torch.testing.assert_close(got, m(t).detach(), rtol=1e-4, atol=1e-4)


def test_float16_and_autocast(randomize):
    m = _randomize_all(SHSA(64), randomize).eval()
    x = torch.randn(2, 64, 13, 17) * 30
    with torch.no_grad():
        ref = m(x)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            bf = m(x)
        half = copy.deepcopy(m).half()(x.half())
    assert torch.isfinite(half).all() and half.dtype == torch.float16
    assert ((half.float() - ref).abs().max() / ref.abs().max()) < 2e-2
    assert ((bf.float() - ref).abs().max() / ref.abs().max()) < 5e-2


@pytest.mark.parametrize('path, count', [('model_yamls/yolov5s-shsa.yaml', 1),
                                         ('model_yamls/ultralytics/yolo11n-shsa.yaml', 1)])
def test_shipped_yamls_build_in_both_engines(path, count):
    path = ROOT / path
    model = yolo_attn.engines.of(path).build_model(path)
    assert sum(isinstance(m, SHSA) for m in model.modules()) == count


def test_inside_c3_bottlenecks(quiet_yolov5):
    from yolo_attn.engines.yolov5 import parser
    from yolo_attn.engines.yolov5.c3attn import C3Attn
    from yolo_attn.model_yaml.edit import load_model_yaml

    d = load_model_yaml(ROOT / 'model_yamls/yolov5s.yaml')
    d['backbone'][8][3] = [1024, {'attn': 'shsa'}]
    model, _ = parser.parse_model(d, ch=[3])
    assert type(model[8]) is C3Attn and all(type(b.attn) is SHSA for b in model[8].m)
    b = model[8].m[0].eval()
    x = torch.randn(1, 256, 3, 4)
    with torch.no_grad():  # the residual inside: a fresh SHSA leaves the bottleneck as it was
        torch.testing.assert_close(b(x), x + b.cv2(b.cv1(x)))
