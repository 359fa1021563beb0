"""iRMB (EMO) checked against its formula, written with functional ops from the module's own weights (windows picked
by explicit index lists, never by the module's reshapes), plus its checks, export, precision and YAML rows."""
import copy
import io
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import yolo_attn
from yolo_attn.errors import ModelConfigError
from yolo_attn.modules import iRMB

ROOT = Path(__file__).resolve().parents[2]


def _randomize_all(m, randomize):
    randomize(m)
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, nn.LayerNorm):
                mod.weight.copy_(torch.rand(mod.weight.shape, generator=g) + 0.5)
                mod.bias.copy_(torch.randn(mod.bias.shape, generator=g))
    return m


def _act(name):
    return {'relu': torch.relu, 'silu': F.silu, 'gelu': F.gelu}[name]


def _norm(m, x, bn_ref, training, norm_layer):
    if norm_layer == 'bn_2d':
        return bn_ref(x, m.norm, training)
    mean = x.mean(1, keepdim=True)
    var = (x - mean).square().mean(1, keepdim=True)
    return (x - mean) / torch.sqrt(var + 1e-6) * m.norm.weight[:, None, None] + m.norm.bias[:, None, None]


def irmb_ref(m, x, bn_ref, training, cfg):
    act = _act(cfg.get('act_layer', 'relu'))
    t = _norm(m, x, bn_ref, training, cfg.get('norm_layer', 'bn_2d'))
    n, c, h, w = x.shape
    ws = cfg.get('window_size', 7)
    wh, ww = (h, w) if ws <= 0 else (ws, ws)
    hp, wp = -(-h // wh) * wh, -(-w // ww) * ww
    tp = torch.zeros(n, c, hp, wp, dtype=x.dtype)
    tp[:, :, :h, :w] = t
    n1, n2 = hp // wh, wp // ww
    heads, dh = m.num_head, m.dim_head
    wv, bv = m.v[0].weight, m.v[0].bias
    mid = wv.shape[0]
    y = torch.zeros(n, mid, hp, wp, dtype=x.dtype)
    wqk = m.qk.weight[:, :, 0, 0]
    for a in range(n1):
        for b in range(n2):
            if cfg.get('contiguous_windows'):
                rows, cols = [a * wh + i for i in range(wh)], [b * ww + j for j in range(ww)]
            else:  # the official strided grid: rows a, a + n1, a + 2·n1, ...
                rows, cols = [a + i * n1 for i in range(wh)], [b + j * n2 for j in range(ww)]
            ri, ci = torch.tensor(rows)[:, None], torch.tensor(cols)[None, :]
            tok = tp[:, :, ri, ci].reshape(n, c, -1)  # N×C×L
            qk = torch.einsum('oc,ncl->nol', wqk, tok)
            if m.qk.bias is not None:
                qk = qk + m.qk.bias[:, None]
            q, k = qk[:, :c].reshape(n, heads, dh, -1), qk[:, c:].reshape(n, heads, dh, -1)
            logits = torch.einsum('nhdi,nhdj->nhij', q, k) * dh ** -0.5
            e = torch.exp(logits - logits.amax(-1, keepdim=True))
            attn = e / e.sum(-1, keepdim=True)
            if cfg.get('attn_pre'):
                o = torch.einsum('nhij,nhdj->nhdi', attn, tok.reshape(n, heads, dh, -1)).reshape(n, c, -1)
                o = F.conv1d(o, wv[:, :, :, 0], bv, groups=m.v[0].groups)
                o = act(o)
            else:
                v = act(F.conv1d(tok, wv[:, :, :, 0], bv, groups=m.v[0].groups))
                o = torch.einsum('nhij,nhdj->nhdi', attn, v.reshape(n, heads, mid // heads, -1)).reshape(n, mid, -1)
            y[:, :, ri, ci] = o.reshape(n, mid, wh, ww)
    y = y[:, :, :h, :w]
    dw, bn = m.conv_local[0], m.conv_local[1]
    local = F.silu(bn_ref(F.conv2d(y, dw.weight, padding=dw.padding, groups=mid), bn, training))
    if cfg.get('se_ratio', 0) > 0:
        s = local.mean((2, 3), keepdim=True)
        s = F.conv2d(act(F.conv2d(s, m.se.conv_reduce.weight, m.se.conv_reduce.bias)), m.se.conv_expand.weight,
                     m.se.conv_expand.bias)
        local = local * torch.sigmoid(s)
    y = y + local
    return x + torch.einsum('oc,nchw->nohw', m.proj.weight[:, :, 0, 0], y)


CASES = {
    'defaults_c64': (64, {}),
    'heads4_exp2': (32, dict(dim_head=8, exp_ratio=2.0)),
    'emo_stage3': (24, dict(dim_head=8, exp_ratio=3.0, attn_pre=True, qkv_bias=True, norm_layer='ln_2d',
                            act_layer='gelu', dw_ks=5)),
    'contiguous_w4': (16, dict(dim_head=4, window_size=4, contiguous_windows=True, qkv_bias=True)),
    'strided_w4_se': (16, dict(dim_head=8, window_size=4, se_ratio=0.25, v_group=True)),
    'global': (16, dict(dim_head=8, window_size=0)),
}
SIZES = [(2, 13, 17), (1, 13, 17), (2, 7, 7), (1, 1, 1), (2, 5, 9), (1, 16, 8)]


def build(key, randomize):
    c, cfg = CASES[key]
    return _randomize_all(iRMB(c, **cfg), randomize).double(), c, cfg


@pytest.mark.parametrize('key', sorted(CASES))
@pytest.mark.parametrize('n, h, w', SIZES)
@pytest.mark.parametrize('training', [True, False])
def test_matches_formula(key, n, h, w, training, randomize, bn_ref):
    m, c, cfg = build(key, randomize)
    m.train(training)
    x = torch.randn(n, c, h, w, dtype=torch.float64)
    out = m(x)
    assert out.shape == x.shape
    torch.testing.assert_close(out, irmb_ref(m, x, bn_ref, training, cfg), rtol=1e-9, atol=1e-9)


def test_the_strided_grid_is_not_the_contiguous_layout(randomize):
    strided = _randomize_all(iRMB(16, dim_head=8), randomize).eval()
    contiguous = copy.deepcopy(strided)
    contiguous.contiguous_windows = True
    x = torch.randn(1, 16, 14, 14)
    assert not torch.allclose(strided(x), contiguous(x))
    x = torch.randn(1, 16, 7, 7)  # a single window: both layouts agree
    torch.testing.assert_close(strided(x), contiguous(x))


def test_parameter_count_and_class_defaults():
    assert sum(p.numel() for p in iRMB(64).parameters()) == 17_216  # MODULES.md: 4C² + 9C + 2·2C (two BNs)
    m = iRMB(64)
    assert (m.num_head, m.dim_head, m.window_size, m.attn_pre, m.has_skip) == (1, 64, 7, False, True)
    assert m.qk.bias is None and m.proj.bias is None and m.norm.eps == 1e-6


@pytest.mark.parametrize('args, match', [
    ((48,), r"dim_head=64 does not divide the 48 input channels.*e\.g\. 8, 12, 16, 24, 48"),
    ((64,), None),
    ((32, None), None),
    ((32,), r"dim_head=64"),
])
def test_heads_that_do_not_divide_are_refused(args, match):
    if match is None:
        iRMB(*args, **({'dim_head': 16} if args[0] == 32 else {}))
        return
    with pytest.raises(ModelConfigError, match=match):
        iRMB(*args)


def test_other_configuration_mistakes_are_model_config_errors():
    with pytest.raises(ModelConfigError, match="expanded width 24 .* 5 heads"):
        iRMB(20, dim_head=4, exp_ratio=1.2)
    with pytest.raises(ModelConfigError, match="without attn_s and v_proj"):
        iRMB(16, attn_s=False, v_proj=False, exp_ratio=2)
    with pytest.raises(ModelConfigError, match="norm_layer='gn'"):
        iRMB(64, norm_layer='gn')
    with pytest.raises(ValueError, match="dim_head=48 is out of range"):
        yolo_attn.create_attn('irmb', 64, dim_head=48)
    with pytest.raises(ValueError, match="dim_out=32 is out of range"):
        yolo_attn.create_attn('irmb', 64, dim_out=32)
    assert type(yolo_attn.create_attn('InvertedResidualMobileBlock', 128)) is iRMB


def test_stride_two_block_as_emo_opens_its_stages(randomize):
    m = _randomize_all(iRMB(16, 24, has_skip=False, exp_ratio=4, attn_s=False, stride=2, act_layer='silu'),
                       randomize).eval()
    assert m(torch.randn(2, 16, 13, 17)).shape == (2, 24, 7, 9) and not m.has_skip


def test_attention_maps_are_softmax_rows(randomize):
    m = _randomize_all(iRMB(32, dim_head=8), randomize).eval()
    x = torch.randn(2, 32, 13, 17)
    a = m.attention_maps(x)['attention']
    assert a.shape == (2, 6, 4, 49, 49)
    torch.testing.assert_close(a.sum(-1), torch.ones(a.shape[:-1]))
    g = m.applied_gates(x)['attended']
    assert g.shape == (2, 4, 13, 17) and (g > 0).all()


def test_gradients_reach_every_parameter(randomize, check_grads):
    m, c, _ = build('emo_stage3', randomize)
    check_grads(m.train(), [torch.randn(2, c, 9, 10, dtype=torch.float64)])


def test_trace_and_onnx_at_odd_size(randomize):
    onnxruntime = pytest.importorskip("onnxruntime")
    m = _randomize_all(iRMB(32, dim_head=8, exp_ratio=2), randomize).eval()
    x = torch.randn(1, 32, 13, 17)
    with torch.no_grad():
        expected = m(x)
        traced = torch.jit.trace(m, x)
        torch.testing.assert_close(traced(x), expected)
    f = io.BytesIO()
    torch.onnx.export(m, (x,), f, input_names=["x"], output_names=["y"], dynamo=False)
    got = onnxruntime.InferenceSession(f.getvalue(), providers=["CPUExecutionProvider"]).run(None, {"x": x.numpy()})[0]
    assert ((torch.from_numpy(got) - expected).abs().max() / expected.abs().max()).item() <= 1e-4  # as test_onnx_export


def test_float16_and_autocast(randomize):
    m = _randomize_all(iRMB(32, dim_head=8, norm_layer='ln_2d', act_layer='gelu', attn_pre=True), randomize).eval()
    x = torch.randn(2, 32, 13, 17) * 20
    with torch.no_grad():
        ref = m(x)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            bf = m(x)
        half = copy.deepcopy(m).half()(x.half())
    assert torch.isfinite(bf).all() and torch.isfinite(half).all() and half.dtype == torch.float16
    assert ((half.float() - ref).abs().max() / ref.abs().max()) < 2e-2
    assert ((bf.float() - ref).abs().max() / ref.abs().max()) < 5e-2


@pytest.mark.parametrize('path', ['model_yamls/yolov5s-irmb.yaml', 'model_yamls/ultralytics/yolo11n-irmb.yaml'])
def test_shipped_yamls_build_in_both_engines(path):
    path = ROOT / path
    model = yolo_attn.engines.of(path).build_model(path)
    assert sum(isinstance(m, iRMB) for m in model.modules()) == 3


def test_inside_c3_bottlenecks(quiet_yolov5):
    from yolo_attn.engines.yolov5 import parser
    from yolo_attn.engines.yolov5.c3attn import C3Attn
    from yolo_attn.model_yaml.edit import load_model_yaml

    d = load_model_yaml(ROOT / 'model_yamls/yolov5s.yaml')
    d['backbone'][8][3] = [1024, {'attn': 'irmb'}]  # 256 hidden channels in the bottlenecks: 4 heads of 64
    model, _ = parser.parse_model(d, ch=[3])
    assert type(model[8]) is C3Attn and all(type(b.attn) is iRMB for b in model[8].m)
    model.eval()
    x = torch.randn(1, 3, 64, 96)
    for layer in model[:9]:
        x = layer(x)
    assert x.shape == (1, 512, 2, 3)
