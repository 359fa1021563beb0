"""Selective Kernel, split attention and self-calibrated conv against their papers' formulas, from their own weights."""
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from yolo_attn.modules import PooledBatchNorm2d, SelectiveKernel, SelfCalibConv, SplitAttn

# (N, H, W); batch 1 with a 1×1 map in training is refused by the branches' plain BN, as by yolov5's own Conv
SIZES = [(2, 6, 6), (2, 5, 7), (2, 1, 1), (1, 5, 7), (1, 3, 2)]


def _softmax(t, dim):
    e = torch.exp(t - t.amax(dim, keepdim=True))
    return e / e.sum(dim, keepdim=True)


def grouped_fc(weight, bias, v, groups):
    """A grouped 1x1 conv on N×C vectors: each output group reads only its own input group."""
    out_c, in_per_group = weight.shape[:2]
    out_per_group = out_c // groups
    parts = []
    for k in range(groups):
        w = weight[k * out_per_group:(k + 1) * out_per_group, :, 0, 0]
        parts.append(v[:, k * in_per_group:(k + 1) * in_per_group] @ w.T)
    y = torch.cat(parts, 1)
    return y if bias is None else y + bias


def sk_ref(m, x, bn_ref, training):
    """U_m = relu(BN(conv_m x)); s = GAP(sum U_m); z = relu(BN(W_r s)); a = softmax_m(W_m z); out = sum a_m U_m."""
    u = []
    for branch in m.branches:
        conv, bn = branch[0], branch[1]
        y = F.conv2d(x, conv.weight, None, conv.stride, conv.padding, conv.dilation, conv.groups)
        u.append(F.relu(bn_ref(y, bn, training)))
    s = sum(u).mean((2, 3))
    z = F.relu(bn_ref((s @ m.fc_reduce.weight[:, :, 0, 0].T)[:, :, None, None], m.bn, training))[:, :, 0, 0]
    c = u[0].shape[1]
    w_sel = m.fc_select.weight[:, :, 0, 0]
    logits = torch.stack([z @ w_sel[k * c:(k + 1) * c].T for k in range(len(u))])  # M×N×C
    a = _softmax(logits, 0)
    return sum(a[k][:, :, None, None] * u[k] for k in range(len(u)))


def splitattn_ref(m, x, bn_ref, training):
    """ResNeSt SplAtConv2d: splits = torch.split(conv out, C); attention over splits per cardinal group (rSoftMax)."""
    conv = m.conv
    y = F.relu(bn_ref(F.conv2d(x, conv.weight, None, conv.stride, conv.padding, 1, conv.groups), m.bn0, training))
    radix, groups = m.radix, m.groups
    c = y.shape[1] // radix
    splits = [y[:, r * c:(r + 1) * c] for r in range(radix)]
    gap = sum(splits).mean((2, 3))
    h = grouped_fc(m.fc1.weight, m.fc1.bias, gap, groups)
    h = F.relu(bn_ref(h[:, :, None, None], m.bn1, training))[:, :, 0, 0]
    a = grouped_fc(m.fc2.weight, m.fc2.bias, h, groups)  # N×(groups·radix·C/groups), group-major
    cg = c // groups
    out = torch.zeros_like(splits[0])
    for k in range(groups):
        logits = torch.stack([a[:, k * radix * cg + r * cg:k * radix * cg + (r + 1) * cg] for r in range(radix)])
        weights = torch.sigmoid(logits) if radix == 1 else _softmax(logits, 0)
        for r in range(radix):
            out[:, k * cg:(k + 1) * cg] += weights[r][:, :, None, None] * splits[r][:, k * cg:(k + 1) * cg]
    return out


def block_avg_pool(x, r):
    """r×r average pooling; a border window that runs past the map averages the cells that exist."""
    n, c, h, w = x.shape
    oh, ow = math.ceil(h / r), math.ceil(w / r)
    out = x.new_zeros(n, c, oh, ow)
    for i in range(oh):
        for j in range(ow):
            out[:, :, i, j] = x[:, :, i * r:(i + 1) * r, j * r:(j + 1) * r].mean((2, 3))
    return out


def interp_matrix(n_out, n_in, mode):
    """Rows: the weights of the n_in source cells for each of the n_out target cells."""
    m = torch.zeros(n_out, n_in, dtype=torch.float64)
    for i in range(n_out):
        if mode == 'nearest':
            m[i, min(int(i * n_in / n_out), n_in - 1)] = 1
            continue
        src = max((i + 0.5) * n_in / n_out - 0.5, 0.0)  # half-pixel centres (align_corners=False)
        i0 = min(int(src), n_in - 1)
        i1, lam = min(i0 + 1, n_in - 1), src - i0
        m[i, i0] += 1 - lam
        m[i, i1] += lam
    return m


def selfcalib_ref(m, x, bn_ref, training):
    """Y1 = K4(K3(X1) * sigmoid(X1 + Up(K2(AvgPool_r(X1))))), Y2 = K1(X2), out = relu([Y1, Y2])."""

    def k(seq, t):
        conv, bn = seq
        return bn_ref(F.conv2d(t, conv.weight, None, conv.stride, 1), bn, training)

    c = x.shape[1] // 2
    x1, x2 = x[:, :c], x[:, c:]
    t = k(m.k2, block_avg_pool(x1, m.pool.kernel_size))
    uh = interp_matrix(x.shape[2], t.shape[2], m.upsample_mode).to(x.dtype)
    uw = interp_matrix(x.shape[3], t.shape[3], m.upsample_mode).to(x.dtype)
    up = torch.einsum('ia,ncab,jb->ncij', uh, t, uw)
    y1 = k(m.k4, k(m.k3, x1) * torch.sigmoid(x1 + up))
    return F.relu(torch.cat([y1, k(m.k1, x2)], 1))


CASES = [
    ('sk', lambda: SelectiveKernel(16, 24, groups=4, min_rd_channels=4), sk_ref, 24, 1),
    ('sk-5x5-3-branches-s2', lambda: SelectiveKernel(16, 16, stride=2, kernel_sizes=[3, 5, 3], dilations=[1, 1, 3],
                                                     groups=2, rd_channels=5), sk_ref, 16, 2),
    ('splat', lambda: SplitAttn(16, 24, groups=2, radix=2, rd_channels=8), splitattn_ref, 24, 1),
    ('splat-r4-s2', lambda: SplitAttn(16, 8, stride=2, radix=4, min_rd_channels=4), splitattn_ref, 8, 2),
    ('splat-r1', lambda: SplitAttn(16, 16, radix=1, groups=2, min_rd_channels=6), splitattn_ref, 16, 1),
    ('scconv', lambda: SelfCalibConv(16, 24), selfcalib_ref, 24, 1),
    ('scconv-s2-r2-nearest', lambda: SelfCalibConv(16, 8, stride=2, pooling_r=2, upsample_mode='nearest'),
     selfcalib_ref, 8, 2),
]
IDS = [c[0] for c in CASES]


@pytest.mark.parametrize('name, make, ref, c_out, stride', CASES, ids=IDS)
@pytest.mark.parametrize('n, h, w', SIZES)
@pytest.mark.parametrize('training', [True, False])
def test_matches_formula(name, make, ref, c_out, stride, n, h, w, training, randomize, bn_ref):
    m = randomize(make()).double().train(training)
    x = torch.randn(n, 16, h, w, dtype=torch.float64)
    x0 = x.clone()
    expected = ref(m, x, bn_ref, training)
    out = m(x)
    assert out.shape == (n, c_out, (h - 1) // stride + 1, (w - 1) // stride + 1) and out.dtype == x.dtype
    torch.testing.assert_close(out, expected, rtol=1e-9, atol=1e-9)
    assert torch.equal(x, x0)


@pytest.mark.parametrize('name, make, ref, c_out, stride', CASES, ids=IDS)
def test_batch1_1x1(name, make, ref, c_out, stride, randomize, bn_ref):
    m = randomize(make()).double().eval()
    x = torch.randn(1, 16, 1, 1, dtype=torch.float64)
    torch.testing.assert_close(m(x), ref(m, x, bn_ref, False), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize('name, make, ref, c_out, stride', CASES, ids=IDS)
def test_float32_train(name, make, ref, c_out, stride, randomize, bn_ref):
    m = randomize(make()).train()
    x = torch.randn(2, 16, 5, 3)
    torch.testing.assert_close(m(x), ref(m, x, bn_ref, True), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('cls', [SelectiveKernel, SplitAttn])
def test_pooled_bn_lets_a_batch1_train_forward_through(cls, randomize, bn_ref):
    """yolov5 builds models with a batch-1 forward in train mode: the BN after global pooling must not raise."""
    m = randomize(cls(16, 16, groups=2, min_rd_channels=4)).double().train()
    pooled = [b for b in m.modules() if isinstance(b, PooledBatchNorm2d)]
    assert len(pooled) == 1
    before = {k: v.clone() for k, v in pooled[0].state_dict().items()}
    x = torch.randn(1, 16, 4, 5, dtype=torch.float64)
    torch.testing.assert_close(m(x), {SelectiveKernel: sk_ref, SplitAttn: splitattn_ref}[cls](m, x, bn_ref, True))
    torch.testing.assert_close(pooled[0].state_dict(), before)


def test_selfcalib_small_maps_in_train_mode(randomize, bn_ref):
    """A map smaller than the pooling window pools to 1×1 (K2's BN then uses its running statistics at batch 1)."""
    m = randomize(SelfCalibConv(16, 16)).double().train()
    x = torch.randn(1, 16, 3, 2, dtype=torch.float64)
    torch.testing.assert_close(m(x), selfcalib_ref(m, x, bn_ref, True), rtol=1e-9, atol=1e-9)
    assert isinstance(m.k2[1], PooledBatchNorm2d) and type(m.k3[1]) is nn.BatchNorm2d


@pytest.mark.parametrize('name, make, ref, c_out, stride', CASES, ids=IDS)
def test_attention_maps_are_the_forward_gates(name, make, ref, c_out, stride, randomize):
    m = randomize(make()).double().train()
    x = torch.randn(2, 16, 5, 6, dtype=torch.float64)
    maps = m.attention_maps(x)
    if isinstance(m, SelfCalibConv):
        gate = maps['calibration']
        assert set(maps) == {'calibration'} and gate.shape == (2, 8, 5, 6) and ((gate > 0) & (gate < 1)).all()
        x1, x2 = x.chunk(2, 1)
        torch.testing.assert_close(torch.relu(torch.cat([m.k4(m.k3(x1) * gate), m.k1(x2)], 1)), m(x))
        return
    key = 'branch' if isinstance(m, SelectiveKernel) else 'split'
    n_parts = len(m.branches) if isinstance(m, SelectiveKernel) else m.radix
    assert list(maps) == [f'{key}{k}' for k in range(n_parts)]
    stacked = torch.stack([maps[f'{key}{k}'] for k in range(n_parts)], 1)
    assert stacked.shape == (2, n_parts, c_out, 1, 1)
    if n_parts > 1:
        torch.testing.assert_close(stacked.sum(1), torch.ones_like(stacked[:, 0]))
    parts = m._branches(x) if isinstance(m, SelectiveKernel) else m._splits(x)
    torch.testing.assert_close((stacked * parts).sum(1), m(x))


def test_sk_default_is_the_papers_setting():
    m = SelectiveKernel(128, 128)
    convs = [b[0] for b in m.branches]
    assert [(c.kernel_size, c.dilation, c.padding, c.groups) for c in convs] == [((3, 3), (1, 1), (1, 1), 32),
                                                                                  ((3, 3), (2, 2), (2, 2), 32)]
    assert m.fc_reduce.out_channels == 32  # d = max(128 / 16, L = 32)
    assert SelectiveKernel(1024, 1024).fc_reduce.out_channels == 64
    assert all(isinstance(b[2], nn.ReLU) for b in m.branches)


@pytest.mark.parametrize('c1, c2, g, d', [(128, 128, 32, 32), (256, 512, 32, 32), (64, 1024, 16, 64)])
def test_sk_param_count(c1, c2, g, d):
    m = SelectiveKernel(c1, c2, groups=g)
    # two grouped 3x3 convs (no bias) + their BNs, FC C->d (no bias) + BN(d), FC d->2C (no bias)
    assert sum(p.numel() for p in m.parameters()) == 2 * (c1 * c2 * 9 // g + 2 * c2) + c2 * d + 2 * d + 2 * d * c2


@pytest.mark.parametrize('c1, c2, kwargs, attn', [(64, 64, {}, 32), (128, 64, {}, 64), (256, 256, {'groups': 2}, 128),
                                                  (16, 16, {}, 32), (64, 64, {'radix': 4}, 64)])
def test_splitattn_widths_and_param_count(c1, c2, kwargs, attn):
    m = SplitAttn(c1, c2, **kwargs)
    r, g = m.radix, m.groups
    assert m.fc1.out_channels == attn  # max(C_in * radix / 4, 32), the official ResNeSt width
    conv = c1 * c2 * r * 9 // (g * r)
    n = conv + 2 * c2 * r + (c2 * attn // g + attn) + 2 * attn + (attn * c2 * r // g + c2 * r)
    assert sum(p.numel() for p in m.parameters()) == n


def test_splitattn_radix2_conv_costs_what_a_dense_conv_does():
    assert SplitAttn(64, 128).conv.weight.numel() == nn.Conv2d(64, 128, 3).weight.numel()


@pytest.mark.parametrize('c1, c2', [(16, 16), (64, 128), (128, 64)])
def test_selfcalib_param_count(c1, c2):
    m = SelfCalibConv(c1, c2)
    h1, h2 = c1 // 2, c2 // 2
    # K1, K4: h1 -> h2; K2, K3: h1 -> h1; each 3x3 without bias + BN
    n = 9 * (2 * h1 * h2 + 2 * h1 * h1) + 2 * (2 * h2) + 2 * (2 * h1)
    assert sum(p.numel() for p in m.parameters()) == n
    assert SelfCalibConv(c1, c1).k1[0].weight.numel() * 4 == nn.Conv2d(c1, c1, 3).weight.numel()


def test_selfcalib_keeps_both_branches(randomize):
    """Widely copied code keeps only the self-calibration branch; here half the output is K1(X2)."""
    m = randomize(SelfCalibConv(16, 16)).double().eval()
    x = torch.randn(2, 16, 6, 6, dtype=torch.float64)
    out = m(x)
    x2 = x.clone()
    x2[:, 8:] += 1.0  # only X2 changes: only the K1 half of the output moves
    out2 = m(x2)
    torch.testing.assert_close(out2[:, :8], out[:, :8])
    assert not torch.allclose(out2[:, 8:], out[:, 8:])


@pytest.mark.parametrize('make, match', [
    (lambda: SelectiveKernel(16, 20, groups=8), 'groups=8'),
    (lambda: SelectiveKernel(12, 16), 'groups=32'),
    (lambda: SelectiveKernel(32, 32, kernel_sizes=[3], dilations=[1]), 'at least 2'),
    (lambda: SplitAttn(6, 16, radix=4), 'groups\\*radix=4'),
    (lambda: SplitAttn(16, 16, radix=0), 'radix'),
    (lambda: SelfCalibConv(15, 16), 'halves'),
    (lambda: SelfCalibConv(16, 16, upsample_mode='bicubic'), 'upsample_mode'),
])
def test_bad_configurations_raise_clear_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize('name, make, ref, c_out, stride', CASES[::2], ids=IDS[::2])
def test_gradients(name, make, ref, c_out, stride, randomize, check_grads):
    m = randomize(make()).double().train()
    zero = ['fc1.bias'] if isinstance(m, SplitAttn) else []  # cancelled by the train-mode BN after fc1 (official)
    check_grads(m, [torch.randn(2, 16, 4, 5, dtype=torch.float64)], zero_grad_params=zero)


@pytest.mark.parametrize('make', [lambda: SelectiveKernel(4, 4, groups=2, min_rd_channels=2),
                                  lambda: SplitAttn(4, 4, min_rd_channels=2),
                                  lambda: SelfCalibConv(4, 4, pooling_r=2)])
def test_gradcheck(make, randomize):
    m = randomize(make()).double().eval()
    x = torch.randn(2, 4, 3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(m, (x,))
