"""DAttention (DAT) checked against the formula written out from the module's own weights: grouped convs with
F.conv2d, LayerNorm, GELU and softmax written out, bilinear sampling by hand (never F.grid_sample or a submodule)."""
import io
import math

import pytest
import torch
import torch.nn.functional as F

from yolo_attn.errors import ModelConfigError
from yolo_attn.modules import DAttention

C = 16


def bilinear(img, px, py):
    """img: C×H×W; px, py: pixel coordinates (any equal shapes); zeros outside the map."""
    c, h, w = img.shape
    out = torch.zeros(c, *px.shape, dtype=img.dtype)
    x0, y0 = px.floor(), py.floor()
    for dx in (0, 1):
        for dy in (0, 1):
            xi, yi = x0 + dx, y0 + dy
            wgt = (1 - (px - xi).abs()) * (1 - (py - yi).abs())
            ok = (xi >= 0) & (xi <= w - 1) & (yi >= 0) & (yi <= h - 1)
            vals = img[:, yi.clamp(0, h - 1).long(), xi.clamp(0, w - 1).long()]
            out = out + vals * (wgt * ok)
    return out


def dat_ref(m, x):
    n, c, h, w = x.shape
    g, heads = m.n_groups, m.n_heads
    cg, d = c // g, c // heads
    conv1 = lambda conv, t: torch.einsum('oc,nchw->nohw', conv.weight[:, :, 0, 0], t) + (
        0 if conv.bias is None else conv.bias[:, None, None])
    q = conv1(m.proj_q, x)
    k_off = m.conv_offset.kernel_size[0]
    t = F.conv2d(q.reshape(n * g, cg, h, w), m.conv_offset.weight, m.conv_offset.bias, stride=m.stride,
                 padding=k_off // 2, groups=cg)
    mu, var = t.mean(1, keepdim=True), t.var(1, unbiased=False, keepdim=True)
    t = (t - mu) / torch.sqrt(var + m.offset_norm.eps) * m.offset_norm.weight[:, None, None] \
        + m.offset_norm.bias[:, None, None]
    t = 0.5 * t * (1 + torch.erf(t / math.sqrt(2)))
    off = torch.einsum('oc,nchw->nohw', m.offset_proj.weight[:, :, 0, 0], t)  # (N·G)×2×Hk×Wk: (dy, dx)
    hk, wk = off.shape[2:]
    assert (hk, wk) == (math.ceil(h / m.stride), math.ceil(w / m.stride))
    ry = ((torch.arange(hk, dtype=x.dtype) + 0.5) / hk * 2 - 1)[:, None].expand(hk, wk)
    rx = ((torch.arange(wk, dtype=x.dtype) + 0.5) / wk * 2 - 1)[None, :].expand(hk, wk)
    s = m.offset_range_factor
    if s > 0:
        py, px = ry + s / hk * torch.tanh(off[:, 0]), rx + s / wk * torch.tanh(off[:, 1])
    elif s == 0:
        py, px = ry.expand(n * g, hk, wk), rx.expand(n * g, hk, wk)
    else:
        py, px = (ry + off[:, 0]).clamp(-1, 1), (rx + off[:, 1]).clamp(-1, 1)
    xs = x.reshape(n * g, cg, h, w)
    sampled = torch.stack([bilinear(xs[i], ((px[i] + 1) * w - 1) / 2, ((py[i] + 1) * h - 1) / 2)
                           for i in range(n * g)])  # (N·G)×Cg×Hk×Wk, align_corners=False pixel coordinates
    sampled = sampled.reshape(n, c, hk * wk)
    k = torch.einsum('oc,ncs->nos', m.proj_k.weight[:, :, 0, 0], sampled) + m.proj_k.bias[:, None]
    v = torch.einsum('oc,ncs->nos', m.proj_v.weight[:, :, 0, 0], sampled) + m.proj_v.bias[:, None]
    qy = ((torch.arange(h, dtype=x.dtype) + 0.5) / h * 2 - 1)[:, None].expand(h, w).reshape(-1)
    qx = ((torch.arange(w, dtype=x.dtype) + 0.5) / w * 2 - 1)[None, :].expand(h, w).reshape(-1)
    out = torch.zeros(n, c, h * w, dtype=x.dtype)
    for b in range(n):
        for hd in range(heads):
            gi = b * g + hd // (heads // g)
            qh = q[b, hd * d:(hd + 1) * d].reshape(d, h * w)
            logits = qh.T @ k[b, hd * d:(hd + 1) * d] * d ** -0.5  # HW × Ns
            if m.rpe_table is not None:
                table = m.rpe_table[hd]
                tr = table.shape[0]
                dy = (qy[:, None] - py[gi].reshape(1, -1)) * 0.5
                dx = (qx[:, None] - px[gi].reshape(1, -1)) * 0.5
                logits = logits + bilinear(table[None], (dx + 1) / 2 * (tr - 1), (dy + 1) / 2 * (tr - 1))[0]
            a = torch.exp(logits - logits.amax(1, keepdim=True))
            a = a / a.sum(1, keepdim=True)
            out[b, hd * d:(hd + 1) * d] = v[b, hd * d:(hd + 1) * d] @ a.T
    out = out.reshape(n, c, h, w)
    if m.dwc is not None:
        out = out + F.conv2d(q, m.dwc.weight, m.dwc.bias, padding=1, groups=c)
    return conv1(m.proj_out, out)


def randomized(m, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in m.named_parameters():
            scale = 2.0 if 'offset_proj' in name else 0.5  # offsets of a few pixels, not ~0
            p.copy_(torch.randn(p.shape, generator=g) * scale)
    return m


CASES = {
    'default': dict(n_heads=4, n_groups=2),
    'dwc_pe': dict(n_heads=4, n_groups=4, dwc_pe=True, offset_range_factor=4),
    'stride2_k5': dict(n_heads=2, n_groups=1, stride=2, ksize=5, rpe_size=3),
    'no_pe_clamped': dict(n_heads=8, n_groups=2, use_pe=False, offset_range_factor=-1, stride=3),
    'no_offsets': dict(n_heads=4, n_groups=1, offset_range_factor=0, rpe_size=1),
}
SIZES = [(1, 13, 17), (2, 13, 17), (2, 7, 7), (2, 5, 3), (1, 1, 1), (2, 1, 4)]


@pytest.mark.parametrize('case', sorted(CASES))
@pytest.mark.parametrize('n, h, w', SIZES)
@pytest.mark.parametrize('training', [True, False])
def test_matches_the_formula(case, n, h, w, training):
    m = randomized(DAttention(C, **CASES[case])).double().train(training)
    x = torch.randn(n, C, h, w, dtype=torch.float64, generator=torch.Generator().manual_seed(h * 31 + w))
    x0 = x.clone()
    out = m(x)
    assert out.shape == x.shape and out.dtype == x.dtype and torch.equal(x, x0)
    torch.testing.assert_close(out, dat_ref(m, x), rtol=1e-9, atol=1e-9)


def test_zero_offsets_at_stride_1_sample_exactly_the_pixels():
    """With no offsets the keys are x itself (align_corners=False at the pixel centres): no blur, no shift."""
    m = randomized(DAttention(C, n_heads=2, n_groups=1, offset_range_factor=0, use_pe=False)).double().eval()
    x = torch.randn(1, C, 6, 5, dtype=torch.float64)
    pos = m.attention_maps(x)['offsets']
    sampled = F.grid_sample(x, pos.permute(0, 2, 3, 1), align_corners=False)
    torch.testing.assert_close(sampled, x)


def test_float32_maps_and_gradients():
    m = randomized(DAttention(C, n_heads=4, n_groups=2))
    x = torch.randn(2, C, 9, 11)
    torch.testing.assert_close(m(x), dat_ref(m.double(), x.double()).float(), rtol=1e-4, atol=1e-4)
    m.float()
    assert m.attention_maps(x)['offsets'].shape == (2, 4, 9, 11)
    gate = m.applied_gates(x)['attention']
    assert gate.shape == (2, 1, 9, 11) and (gate >= 0).all() and (gate.sum((1, 2, 3)) <= 1 + 1e-5).all()
    with pytest.raises(ValueError):
        m.attention_maps(x, x)
    xg = x.clone().requires_grad_(True)
    m(xg).square().sum().backward()
    assert torch.isfinite(xg.grad).all() and xg.grad.abs().max() > 0
    assert all(p.grad is not None and p.grad.abs().max() > 0 for p in m.parameters())


@pytest.mark.parametrize('kwargs, match', [
    (dict(n_heads=5), 'n_heads=5 must divide the 64 channels'),
    (dict(n_heads=8, n_groups=3), 'n_groups=3 must divide n_heads=8'),
    (dict(ksize=4), 'ksize=4'),
    (dict(stride=0), 'stride=0'),
    (dict(rpe_size=0), 'rpe_size=0'),
])
def test_bad_hyper_parameters_are_refused(kwargs, match):
    with pytest.raises(ModelConfigError, match=match):
        DAttention(64, **kwargs)


def test_parameter_count():
    """MODULES.md at 64 channels (CVPR2022 code, 2 heads × 32, 1 group, kernel 5, table for 14×14): 20,018."""
    count = lambda m: sum(p.numel() for p in m.parameters())
    assert count(DAttention(64, n_heads=2, n_groups=1, ksize=5, rpe_size=14)) == 20_018
    # defaults: 4 projections, offset net per group width 16 (DW 3×3, LN, 1×1 → 2), 8×13×13 table
    assert count(DAttention(64)) == 4 * (64 * 64 + 64) + (16 * 9 + 16) + 32 + 32 + 8 * 13 * 13


def test_float16_and_autocast():
    torch.manual_seed(0)
    m = DAttention(64).eval()
    x = torch.randn(1, 64, 13, 17)
    ref = m(x)
    half = m.half()(x.half())
    assert half.dtype == torch.float16 and torch.isfinite(half).all()
    assert (half.float() - ref).abs().max() < 2e-2 * ref.abs().max()
    m.float()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assert torch.isfinite(m(x).float()).all()


@pytest.mark.parametrize('kwargs', [{}, dict(dwc_pe=True, stride=2)])
def test_trace_and_onnx_export(kwargs):
    torch.manual_seed(0)
    m = randomized(DAttention(64, **kwargs)).eval()
    x = torch.randn(1, 64, 13, 17)
    with torch.no_grad():
        expected = m(x)
        traced = torch.jit.trace(m, x)
        torch.testing.assert_close(traced(x), expected)
    ort = pytest.importorskip('onnxruntime')
    f = io.BytesIO()
    torch.onnx.export(m, (x,), f, input_names=['x'], output_names=['y'], opset_version=17, dynamo=False)
    got = ort.InferenceSession(f.getvalue(), providers=['CPUExecutionProvider']).run(None, {'x': x.numpy()})[0]
    torch.testing.assert_close(torch.from_numpy(got), expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item())
