"""CGA (EfficientViT) checked against its formula, written with functional ops from the module's own weights
(windows by explicit index ranges, the bias by explicit offsets), plus its checks, cache-free bias, export,
precision and YAML rows."""
import copy
import io
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import yolo_attn
from yolo_attn.errors import ModelConfigError
from yolo_attn.modules import CGA

ROOT = Path(__file__).resolve().parents[2]


def _randomize_all(m, randomize):
    randomize(m)
    with torch.no_grad():
        m.attention_biases.copy_(torch.randn(m.attention_biases.shape, generator=torch.Generator().manual_seed(3)))
    return m


def _mild(m):
    """Default (trained-like) weights, the output BN and the biases made non-trivial: for the precision checks, where
    fully random weights give logits in the hundreds (a softmax that flips with any rounding)."""
    torch.manual_seed(0)
    with torch.no_grad():
        m.proj[1].bn.weight.fill_(1.0)
        m.attention_biases.normal_(0, 0.5)
    return m


def cga_window(m, x, bn_ref, training):
    """The cascaded group attention on one batch of windows x: N×C×h×w (BN statistics over that batch)."""
    n, c, h, w = x.shape
    r, kd, d = m.window_resolution, m.key_dim, c // m.num_heads
    pos = [(i, j) for i in range(h) for j in range(w)]
    outs, feat = [], None
    for i in range(m.num_heads):
        chunk = x[:, i * d:(i + 1) * d]
        feat = chunk if i == 0 else feat + chunk
        qkv = bn_ref(torch.einsum('oc,nchw->nohw', m.qkvs[i].c.weight[:, :, 0, 0], feat), m.qkvs[i].bn, training)
        q, k, v = qkv[:, :kd], qkv[:, kd:2 * kd], qkv[:, 2 * kd:]
        dw = m.dws[i].c
        q = bn_ref(F.conv2d(q, dw.weight, padding=dw.weight.shape[-1] // 2, groups=kd), m.dws[i].bn, training)
        bias = torch.tensor([[m.attention_biases[i, abs(a[0] - b[0]) * r + abs(a[1] - b[1])].item() for b in pos]
                             for a in pos], dtype=x.dtype)
        logits = torch.einsum('nci,ncj->nij', q.flatten(2), k.flatten(2)) * kd ** -0.5 + bias
        e = torch.exp(logits - logits.amax(-1, keepdim=True))
        a = e / e.sum(-1, keepdim=True)
        feat = torch.einsum('ncj,nij->nci', v.flatten(2), a).reshape(n, d, h, w)
        outs.append(feat)
    z = torch.relu(torch.cat(outs, 1))
    return bn_ref(torch.einsum('oc,nchw->nohw', m.proj[1].c.weight[:, :, 0, 0], z), m.proj[1].bn, training)


def cga_ref(m, x, bn_ref, training):
    n, c, h, w = x.shape
    r = m.window_resolution
    if h <= r and w <= r:
        y = cga_window(m, x, bn_ref, training)
    else:
        hp, wp = -(-h // r) * r, -(-w // r) * r
        xp = torch.zeros(n, c, hp, wp, dtype=x.dtype)
        xp[:, :, :h, :w] = x
        wins = [xp[:, :, a:a + r, b:b + r] for a in range(0, hp, r) for b in range(0, wp, r)]  # per image, row-major
        k = len(wins)
        ys = cga_window(m, torch.stack(wins, 1).reshape(n * k, c, r, r), bn_ref, training).reshape(n, k, c, r, r)
        y = torch.zeros(n, c, hp, wp, dtype=x.dtype)
        for idx, (a, b) in enumerate((a, b) for a in range(0, hp, r) for b in range(0, wp, r)):
            y[:, :, a:a + r, b:b + r] = ys[:, idx]
        y = y[:, :, :h, :w]
    return x + y if m.residual else y


CASES = {'m0_c64': lambda: CGA(64), 'heads2_k37_w4': lambda: CGA(16, key_dim=4, num_heads=2, window_resolution=4,
                                                                  kernels=[3, 7]),
         'bare_w3': lambda: CGA(12, key_dim=8, num_heads=3, window_resolution=3, kernels=3, residual=False)}


@pytest.mark.parametrize('key', sorted(CASES))
@pytest.mark.parametrize('n, h, w', [(2, 13, 17), (1, 13, 17), (2, 7, 7), (1, 5, 5), (1, 1, 1), (2, 3, 9)])
@pytest.mark.parametrize('training', [True, False])
def test_matches_formula(key, n, h, w, training, randomize, bn_ref):
    m = _randomize_all(CASES[key](), randomize).double().train(training)
    x = torch.randn(n, m.num_heads * m.d, h, w, dtype=torch.float64)
    torch.testing.assert_close(m(x), cga_ref(m, x, bn_ref, training), rtol=1e-9, atol=1e-9)


def test_parameter_count_and_defaults():
    m = CGA(64)
    assert sum(p.numel() for p in m.parameters()) == 9_604  # MODULES.md: EfficientViT-M0 stage 1
    assert (m.num_heads, m.key_dim, m.d, m.window_resolution) == (4, 16, 16, 7)
    assert [dw.c.kernel_size for dw in m.dws] == [(5, 5)] * 4 and m.attention_biases.shape == (4, 49)
    assert not [n for n, _ in m.named_buffers() if 'bias' in n]  # no index buffer, no cache


def test_fresh_layer_is_the_identity_and_the_bare_mixer_is_zero():
    x = torch.randn(2, 64, 13, 17)
    assert torch.equal(CGA(64)(x), x) and torch.equal(CGA(64).eval()(x), x)
    assert CGA(64, residual=False)(x).abs().max() == 0
    spec = yolo_attn.find_layer('CascadedGroupAttention')
    assert spec.cls is CGA and spec.starts_as_identity


def test_no_stale_bias_after_eval_half_or_a_weight_load(randomize):
    m = _randomize_all(CGA(32, key_dim=8), randomize).eval()
    fresh = _randomize_all(CGA(32, key_dim=8), randomize)
    with torch.no_grad():
        fresh.attention_biases.mul_(3)
    m.load_state_dict(fresh.state_dict())  # after .eval(): the official cache would keep the old biases
    x = torch.randn(1, 32, 9, 10)
    with torch.no_grad():
        torch.testing.assert_close(m(x), fresh.eval()(x))
        half = copy.deepcopy(m).half()(x.half())  # the official cache stays float32 here: a dtype error
    assert half.dtype == torch.float16 and torch.isfinite(half).all()


@pytest.mark.parametrize('kwargs, match', [
    (dict(num_heads=8), r"kernels=\[5, 5, 5, 5\] gives 4 query kernels for num_heads=8"),
    (dict(num_heads=3, kernels=3), r"64 channels cannot be split into num_heads=3.*1, 2, 4, 8, 16"),
    (dict(kernels=[5, 4, 5, 5]), r"each query kernel must be an odd positive integer, got \[4\]"),
    (dict(key_dim=0), r"key_dim=0"),
])
def test_configuration_mistakes(kwargs, match):
    with pytest.raises(ModelConfigError, match=match):
        CGA(64, **kwargs)


def test_registry_ranges():
    with pytest.raises(ValueError, match="kernels=4 is out of range"):
        yolo_attn.create_attn('cga', 64, kernels=4)
    with pytest.raises(ValueError, match="num_heads=5 is out of range"):
        yolo_attn.create_attn('cga', 64, num_heads=5)
    assert yolo_attn.create_attn('cga', 64, num_heads=2, kernels=[7, 3]).num_heads == 2


def test_attention_maps_are_softmax_rows(randomize):
    m = _randomize_all(CGA(32, key_dim=8), randomize).eval()
    x = torch.randn(2, 32, 13, 17)
    a = m.attention_maps(x)['attention']
    assert a.shape == (2, 6, 4, 49, 49)
    torch.testing.assert_close(a.sum(-1), torch.ones(a.shape[:-1]))
    assert m.applied_gates(x)['attended'].shape == (2, 4, 13, 17)
    assert m.attention_maps(torch.randn(1, 32, 5, 5))['attention'].shape == (1, 1, 4, 25, 25)


def test_gradients_reach_every_parameter(randomize, check_grads):
    m = _randomize_all(CGA(16, key_dim=4, num_heads=2, window_resolution=4, kernels=[3, 5]), randomize).double()
    check_grads(m.train(), [torch.randn(2, 16, 6, 9, dtype=torch.float64)])


@pytest.mark.parametrize('h, w', [(13, 17), (5, 5)])
def test_trace_and_onnx(h, w):
    onnxruntime = pytest.importorskip("onnxruntime")
    m = _mild(CGA(64)).eval()
    x = torch.randn(1, 64, h, w)
    with torch.no_grad():
        expected = m(x)
        torch.testing.assert_close(torch.jit.trace(m, x)(x), expected)
    f = io.BytesIO()
    torch.onnx.export(m, (x,), f, input_names=["x"], output_names=["y"], dynamo=False)
    got = onnxruntime.InferenceSession(f.getvalue(), providers=["CPUExecutionProvider"]).run(None, {"x": x.numpy()})[0]
    assert ((torch.from_numpy(got) - expected).abs().max() / expected.abs().max()).item() <= 1e-4  # as test_onnx_export


def test_float16_and_autocast():
    m = _mild(CGA(64)).eval()
    x = torch.randn(2, 64, 13, 17) * 3
    with torch.no_grad():
        ref = m(x)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            bf = m(x)
        half = copy.deepcopy(m).half()(x.half())
    assert torch.isfinite(half).all() and half.dtype == torch.float16
    assert ((half.float() - ref).abs().max() / ref.abs().max()) < 2e-2
    assert ((bf.float() - ref).abs().max() / ref.abs().max()) < 5e-2


@pytest.mark.parametrize('path', ['model_yamls/yolov5s-cga.yaml', 'model_yamls/ultralytics/yolo11n-cga.yaml'])
def test_shipped_yamls_build_in_both_engines(path):
    path = ROOT / path
    model = yolo_attn.engines.of(path).build_model(path)
    assert sum(isinstance(m, CGA) for m in model.modules()) == 3


def test_inside_c3_bottlenecks(quiet_yolov5):
    from yolo_attn.engines.yolov5 import parser
    from yolo_attn.engines.yolov5.c3attn import C3Attn
    from yolo_attn.model_yaml.edit import load_model_yaml

    d = load_model_yaml(ROOT / 'model_yamls/yolov5s.yaml')
    d['backbone'][6][3] = [512, {'attn': 'cga'}]
    model, _ = parser.parse_model(d, ch=[3])
    assert type(model[6]) is C3Attn and all(type(b.attn) is CGA for b in model[6].m)
    b = model[6].m[0].eval()
    x = torch.randn(1, 128, 9, 11)
    with torch.no_grad():
        torch.testing.assert_close(b(x), x + b.cv2(b.cv1(x)))
