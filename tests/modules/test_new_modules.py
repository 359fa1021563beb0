"""SimAM, EMA, GAM, triplet attention, GC block, shuffle attention, NAM and LSK checked against their formulas,
written out with functional ops from each module's own weights (never by calling its submodules)."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from yolo_attn.modules import EMA, GAM, GCBlock, LSKBlock, NAM, ShuffleAttn, SimAM, TripletAttention

SIZES = [(2, 6, 6), (2, 5, 7), (2, 1, 1), (1, 5, 7), (1, 1, 1)]  # (N, H, W)


def sig(t):
    return 1 / (1 + torch.exp(-t))


def conv1x1(weight, bias, x):
    y = torch.einsum('oc,nchw->nohw', weight[:, :, 0, 0], x)
    return y if bias is None else y + bias[:, None, None]


def inorm(t, weight, bias, eps):
    """Per-sample, per-channel normalisation over H×W (GroupNorm with one group per channel)."""
    mean = t.mean((2, 3), keepdim=True)
    var = (t - mean).square().mean((2, 3), keepdim=True)
    return (t - mean) / torch.sqrt(var + eps) * weight[:, None, None] + bias[:, None, None]


def simam_ref(m, x, bn_ref, training):
    """The paper's minimal energy e* = 4(σ²+λ) / ((t−μ)² + 2σ² + 2λ); out = x · σ(1/e*)."""
    h, w = x.shape[2:]
    mu = x.sum((2, 3), keepdim=True) / (h * w)
    d = (x - mu) ** 2
    var = d.sum((2, 3), keepdim=True) / max(h * w - 1, 1)
    lam = 1e-4 if m.e_lambda == 1e-4 else m.e_lambda
    energy = 4 * (var + lam) / (d + 2 * var + 2 * lam)
    return x * sig(1 / energy)


def ema_ref(m, x, bn_ref, training):
    n, c, h, w = x.shape
    cg = c // m.groups
    out = []
    for k in range(m.groups):
        g = x[:, k * cg:(k + 1) * cg]
        y = torch.einsum('oc,ncl->nol', m.conv1x1.weight[:, :, 0, 0], torch.cat([g.mean(3), g.mean(2)], 2))
        y = y + m.conv1x1.bias[:, None]
        t = g * sig(y[..., :h])[..., None] * sig(y[..., h:])[:, :, None, :]
        x1 = inorm(t, m.gn.weight, m.gn.bias, m.gn.eps)
        x2 = F.conv2d(g, m.conv3x3.weight, m.conv3x3.bias, padding=1)
        s1, s2 = (torch.exp(v) / torch.exp(v).sum(1, keepdim=True) for v in (x1.mean((2, 3)), x2.mean((2, 3))))
        weights = torch.einsum('nc,nchw->nhw', s1, x2) + torch.einsum('nc,nchw->nhw', s2, x1)
        out.append(g * sig(weights)[:, None])
    return torch.cat(out, 1)


def gam_ref(m, x, bn_ref, training):
    fc1, fc2 = m.channel_mlp[0], m.channel_mlp[2]
    mc = sig(conv1x1(fc2.weight, fc2.bias, torch.relu(conv1x1(fc1.weight, fc1.bias, x))))
    x1 = x * mc
    conv_a, bn_a, conv_b, bn_b = m.spatial[0], m.spatial[1], m.spatial[3], m.spatial[4]
    z = torch.relu(bn_ref(F.conv2d(x1, conv_a.weight, padding=3), bn_a, training))
    return x1 * sig(bn_ref(F.conv2d(z, conv_b.weight, padding=3), bn_b, training))


def triplet_ref(m, x, bn_ref, training):
    def gate(pooled, branch):  # pooled: N×2×A×B, [max, mean]
        k = branch.conv.weight.shape[-1]
        return sig(bn_ref(F.conv2d(pooled, branch.conv.weight, padding=k // 2), branch.bn, training))[:, 0]

    g_cw = gate(torch.stack([x.amax(2), x.mean(2)], 1), m.cw)  # over (C, W), pooled over H
    g_hc = gate(torch.stack([x.amax(3).transpose(1, 2), x.mean(3).transpose(1, 2)], 1), m.hc)  # (H, C), over W
    g_hw = gate(torch.stack([x.amax(1), x.mean(1)], 1), m.hw)  # (H, W), over C
    return (x * g_cw[:, :, None, :] + x * g_hc.transpose(1, 2)[..., None] + x * g_hw[:, None]) / 3


def gc_ref(m, x, bn_ref, training):
    n, c, h, w = x.shape
    logits = torch.einsum('c,ncp->np', m.conv_mask.weight.flatten(), x.flatten(2))
    p = torch.exp(logits - logits.amax(1, keepdim=True))
    p = p / p.sum(1, keepdim=True)
    context = torch.einsum('np,ncp->nc', p, x.flatten(2))
    conv1, ln, conv2 = m.transform[0], m.transform[1], m.transform[3]
    t = context @ conv1.weight[:, :, 0, 0].T + conv1.bias
    t = (t - t.mean(1, keepdim=True)) / torch.sqrt(t.var(1, unbiased=False, keepdim=True) + ln.eps)
    t = torch.relu(t * ln.weight.flatten() + ln.bias.flatten())
    return x + (t @ conv2.weight[:, :, 0, 0].T + conv2.bias)[:, :, None, None]


def shuffle_ref(m, x, bn_ref, training):
    n, c, h, w = x.shape
    cg, half = c // m.groups, c // m.groups // 2
    parts = []
    for k in range(m.groups):
        xc, xs = x[:, k * cg:k * cg + half], x[:, k * cg + half:(k + 1) * cg]
        a = sig(m.cweight.flatten()[:, None, None] * xc.mean((2, 3), keepdim=True) + m.cbias.flatten()[:, None, None])
        s = sig(m.sweight.flatten()[:, None, None] * inorm(xs, m.gn.weight, m.gn.bias, m.gn.eps)
                + m.sbias.flatten()[:, None, None])
        parts += [xc * a, xs * s]
    out = torch.cat(parts, 1)
    order = [j * (c // 2) + i for i in range(c // 2) for j in range(2)]  # shuffle: halves interleaved
    return out[:, order]


def nam_ref(m, x, bn_ref, training):
    gamma = m.bn.weight
    w = gamma.abs() / gamma.abs().sum()
    return x * sig(bn_ref(x, m.bn, training) * w[:, None, None])


def lsk_ref(m, x, bn_ref, training):
    c = x.shape[1]
    a1 = F.conv2d(x, m.conv0.weight, m.conv0.bias, padding=2, groups=c)
    a2 = F.conv2d(a1, m.conv_spatial.weight, m.conv_spatial.bias, padding=9, dilation=3, groups=c)
    u1, u2 = conv1x1(m.conv1.weight, m.conv1.bias, a1), conv1x1(m.conv2.weight, m.conv2.bias, a2)
    both = torch.cat([u1, u2], 1)
    s = sig(F.conv2d(torch.stack([both.mean(1), both.amax(1)], 1), m.conv_squeeze.weight, m.conv_squeeze.bias,
                     padding=3))
    return x * conv1x1(m.conv.weight, m.conv.bias, u1 * s[:, :1] + u2 * s[:, 1:])


def _random_extras(m, seed=3):
    """Random values for the parameters the conftest's randomize leaves alone (norm affine, raw parameters)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, (nn.GroupNorm, nn.LayerNorm)):
                mod.weight.copy_(torch.rand(mod.weight.shape, generator=g) + 0.5)
                mod.bias.copy_(torch.randn(mod.bias.shape, generator=g))
        for name, p in m.named_parameters(recurse=False):
            p.copy_(torch.randn(p.shape, generator=g))
    return m


C = 16
CASES = {
    'simam': (lambda: SimAM(C), simam_ref), 'simam_lambda': (lambda: SimAM(C, e_lambda=0.5), simam_ref),
    'ema': (lambda: EMA(C, groups=4), ema_ref), 'ema_g1': (lambda: EMA(C, groups=1), ema_ref),
    'gam': (lambda: GAM(C), gam_ref), 'gam_rd3': (lambda: GAM(C, rd_channels=3), gam_ref),
    'triplet': (lambda: TripletAttention(C), triplet_ref), 'triplet_k3': (lambda: TripletAttention(C, 3), triplet_ref),
    'gc': (lambda: GCBlock(C, rd_ratio=1 / 4), gc_ref),
    'shuffle': (lambda: ShuffleAttn(C, groups=2), shuffle_ref), 'shuffle_g4': (lambda: ShuffleAttn(C, 4), shuffle_ref),
    'nam': (lambda: NAM(C), nam_ref), 'lsk': (lambda: LSKBlock(C), lsk_ref),
}


def build(key, randomize):
    make, ref = CASES[key]
    return _random_extras(randomize(make())).double(), ref


@pytest.mark.parametrize('key', sorted(CASES))
@pytest.mark.parametrize('n, h, w', SIZES)
@pytest.mark.parametrize('training', [True, False])
def test_matches_formula(key, n, h, w, training, randomize, bn_ref):
    m, ref = build(key, randomize)
    m.train(training)
    x = torch.randn(n, C, h, w, dtype=torch.float64)
    x0 = x.clone()
    expected = ref(m, x, bn_ref, training)
    out = m(x)
    assert out.shape == x.shape and out.dtype == x.dtype
    torch.testing.assert_close(out, expected, rtol=1e-9, atol=1e-9)
    assert torch.equal(x, x0)


@pytest.mark.parametrize('key', sorted(CASES))
def test_float32_and_attention_maps(key, randomize, bn_ref):
    make, ref = CASES[key]
    m = _random_extras(randomize(make())).eval()
    x = torch.randn(2, C, 5, 3)
    torch.testing.assert_close(m(x), ref(m, x, bn_ref, False), rtol=1e-4, atol=1e-5)
    maps = m.attention_maps(x)
    assert maps and all(torch.isfinite(v).all() for v in maps.values())
    assert all(v.dim() == 4 and v.shape[0] == 2 for v in m.applied_gates(x).values())
    with pytest.raises(ValueError):
        m.attention_maps(x, x)


@pytest.mark.parametrize('key', sorted(CASES))
def test_gradients_reach_every_parameter(key, randomize, check_grads):
    m, _ = build(key, randomize)
    check_grads(m.train(), [torch.randn(2, C, 5, 3, dtype=torch.float64)])
    m.zero_grad()
    check_grads(m.eval(), [torch.randn(1, C, 4, 6, dtype=torch.float64)])


@pytest.mark.parametrize('make', [lambda: SimAM(4), lambda: EMA(4, groups=2), lambda: GAM(4, rd_channels=2),
                                  lambda: TripletAttention(4, 3), lambda: GCBlock(4, rd_channels=2),
                                  lambda: ShuffleAttn(4, 1), lambda: NAM(4), lambda: LSKBlock(4)])
def test_gradcheck(make, randomize):
    m = _random_extras(randomize(make())).double().eval()
    x = torch.randn(2, 4, 3, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(m, (x,))


def test_simam_on_a_single_position_is_the_half_gate_not_nan():
    """The official code divides by H·W − 1 = 0 on a 1×1 map (NaN); here the gate is σ(1/2) there."""
    x = torch.randn(2, 3, 1, 1)
    torch.testing.assert_close(SimAM(3)(x), x * torch.sigmoid(torch.tensor(0.5)))
    assert sum(p.numel() for p in SimAM(3).parameters()) == 0


@pytest.mark.parametrize('c, g, expected', [(64, 32, 10 * 2 ** 2 + 4 * 2), (256, 32, 10 * 8 ** 2 + 4 * 8),
                                            (512, 16, 10 * 32 ** 2 + 4 * 32)])
def test_ema_parameter_count(c, g, expected):
    assert sum(p.numel() for p in EMA(c, g).parameters()) == expected


@pytest.mark.parametrize('cls, args, match', [(EMA, (48, 32), 'groups=32'), (ShuffleAttn, (64, 64), '2\\*groups=128'),
                                              (LSKBlock, (7,), 'halves')])
def test_group_counts_that_do_not_divide_are_refused(cls, args, match):
    with pytest.raises(ValueError, match=match):
        cls(*args)


def test_gam_is_heavy_and_its_channel_gate_is_a_sigmoid(randomize):
    c = 64
    m = GAM(c)
    rd = c // 4
    assert sum(p.numel() for p in m.parameters()) == (c * rd + rd + rd * c + c) + 49 * c * rd * 2 + 2 * rd + 2 * c
    m = randomize(m).double().eval()
    x = torch.randn(2, c, 5, 5, dtype=torch.float64)
    raw = m.channel_mlp(x)
    assert (raw < 0).any() and (raw > 1).any()  # the widely copied code multiplies by this raw MLP output
    torch.testing.assert_close(m.attention_maps(x)['channel'], torch.sigmoid(raw))


def test_triplet_has_300_parameters_and_no_spatial_averages_two():
    assert sum(p.numel() for p in TripletAttention(64).parameters()) == 300
    m = TripletAttention(8, no_spatial=True).eval()
    x = torch.randn(1, 8, 4, 5)
    maps = m.attention_maps(x)
    assert set(maps) == {'cw', 'hc'} and m.applied_gates(x) == {}
    expected = (x * maps['cw'].permute(0, 2, 1, 3) + x * maps['hc'].permute(0, 3, 2, 1)) / 2
    torch.testing.assert_close(m(x), expected)


def test_gc_block_starts_as_the_identity_and_learns():
    torch.manual_seed(0)
    m = GCBlock(32)
    x = torch.randn(2, 32, 6, 5)
    assert torch.equal(m(x), x)
    assert m.conv_mask.bias is None and m.LAYER_INFO.starts_as_identity
    (m(x) * torch.randn_like(x)).sum().backward()
    assert m.transform[-1].weight.grad.abs().max() > 0  # the zero-initialised conv moves at the first step
    assert not torch.equal(GCBlock(32, zero_init=False)(x), x)
    # r = 16: C·1 + (C·C/16 + C/16) + 2·C/16 + (C/16·C + C)
    assert sum(p.numel() for p in GCBlock(256).parameters()) == 256 + 256 * 16 + 16 + 32 + 16 * 256 + 256


def test_shuffle_interleaves_the_two_halves(randomize):
    m = ShuffleAttn(8, groups=2)  # w = 0, b = 1: both gates are σ(1)
    x = torch.randn(1, 8, 3, 3)
    out = m(x) / torch.sigmoid(torch.tensor(1.0))
    # group 0 = channels 0-3 (channel half 0-1, spatial half 2-3), group 1 = 4-7; shuffle interleaves the halves
    torch.testing.assert_close(out, x[:, [0, 4, 1, 5, 2, 6, 3, 7]])
    assert sum(p.numel() for p in ShuffleAttn(256, 64).parameters()) == 3 * 256 // 64


def test_nam_detach_weights_reproduces_the_official_gradient(randomize):
    x = torch.randn(2, 8, 4, 4, dtype=torch.float64)
    grads = {}
    for detach in (False, True):
        torch.manual_seed(0)
        m = randomize(NAM(8, detach_weights=detach)).double().train()
        m(x).square().sum().backward()
        grads[detach] = m.bn.weight.grad.clone()
    assert not torch.allclose(grads[False], grads[True])  # w's own gradient is the difference
    assert sum(p.numel() for p in NAM(64).parameters()) == 128


def test_lsk_parameter_count():
    c = 64
    expected = (25 * c + c) + (49 * c + c) + 2 * (c * c // 2 + c // 2) + (2 * 2 * 49 + 2) + (c // 2 * c + c)
    assert sum(p.numel() for p in LSKBlock(c).parameters()) == expected == 1.5 * c * c + 78 * c + 198
