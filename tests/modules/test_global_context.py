"""Non-local and A² checked against the papers' formulas, written out from each module's own weights."""
import pytest
import torch
import torch.nn as nn

from yolo_attn.modules import DoubleAttn, NonLocal, PooledBatchNorm2d

SIZES = [(2, 6, 6), (2, 5, 7), (2, 1, 1), (1, 5, 7), (1, 1, 1)]  # (N, H, W)


def conv1x1(conv, x):
    """A 1x1 convolution written as a sum over input channels."""
    y = torch.einsum('oc,nchw->nohw', conv.weight[:, :, 0, 0], x)
    return y if conv.bias is None else y + conv.bias[:, None, None]


def nonlocal_ref(m, x, bn_ref, training):
    """z = BN(W_z y) + x, y_i = sum_j softmax_j(theta_i . phi_j) g_j, by explicit position loops."""
    n, c, h, w = x.shape
    theta, phi, g = (conv1x1(conv, x).flatten(2) for conv in (m.theta, m.phi, m.g))  # N×C'×P
    scale = theta.shape[1] ** -0.5 if m.scale != 1.0 else 1.0  # 1/sqrt(d) when the module scales
    p = h * w
    y = torch.zeros_like(g)
    for b in range(n):
        for i in range(p):
            logits = torch.stack([(theta[b, :, i] * phi[b, :, j]).sum() for j in range(p)]) * scale
            f = torch.exp(logits - logits.max())
            f = f / f.sum()
            y[b, :, i] = (g[b] * f[None, :]).sum(1)
    z = conv1x1(m.w_z, y.reshape(n, -1, h, w))
    return bn_ref(z, m.bn, training) + x


def _softmax(t, dim):
    e = torch.exp(t - t.amax(dim, keepdim=True))
    return e / e.sum(dim, keepdim=True)


def a2_ref(m, x, bn_ref, training):
    """Gather G[k, j] = sum_p A[k, p] softmax_p(B[j, p]); distribute Z[k, p] = sum_j G[k, j] softmax_j(V[j, p])."""
    n, c, h, w = x.shape
    a, b, v = (conv1x1(conv, x).flatten(2) for conv in (m.conv_a, m.conv_b, m.conv_v))
    gather = _softmax(b, 2)  # over positions
    distribute = _softmax(v, 1)  # over descriptors
    out = []
    for s in range(n):
        g = torch.stack([torch.stack([(a[s, k] * gather[s, j]).sum() for j in range(b.shape[1])])
                         for k in range(a.shape[1])])  # c_m × c_n
        out.append(g @ distribute[s])
    z = conv1x1(m.conv_out, torch.stack(out).reshape(n, -1, h, w))
    if m.shortcut is None:
        return z
    if isinstance(m.shortcut, nn.Identity):
        return z + x
    return z + bn_ref(conv1x1(m.shortcut[0], x), m.shortcut[1], training)


CASES = [(lambda: NonLocal(16, use_scale=False), nonlocal_ref, 16),
         (lambda: NonLocal(16, rd_channels=5), nonlocal_ref, 16),
         (lambda: DoubleAttn(16), a2_ref, 16), (lambda: DoubleAttn(16, 24, c_m=6, c_n=3), a2_ref, 24),
         (lambda: DoubleAttn(16, 8, residual=False), a2_ref, 8)]


@pytest.mark.parametrize('make, ref, c_out', CASES)
@pytest.mark.parametrize('n, h, w', SIZES)
@pytest.mark.parametrize('training', [True, False])
def test_matches_formula(make, ref, c_out, n, h, w, training, randomize, bn_ref):
    m = randomize(make()).double().train(training)
    x = torch.randn(n, 16, h, w, dtype=torch.float64)
    x0 = x.clone()
    expected = ref(m, x, bn_ref, training)
    out = m(x)
    assert out.shape == (n, c_out, h, w) and out.dtype == x.dtype
    torch.testing.assert_close(out, expected, rtol=1e-9, atol=1e-9)
    assert torch.equal(x, x0)


@pytest.mark.parametrize('make, ref, c_out', CASES)
def test_float32_train(make, ref, c_out, randomize, bn_ref):
    m = randomize(make()).train()
    x = torch.randn(2, 16, 5, 3)
    torch.testing.assert_close(m(x), ref(m, x, bn_ref, True), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('training', [True, False])
def test_fresh_nonlocal_block_is_the_identity(training):
    torch.manual_seed(0)
    m = NonLocal(16).double().train(training)
    assert (m.bn.weight == 0).all() and (m.bn.bias == 0).all()
    x = torch.randn(2, 16, 5, 7, dtype=torch.float64)
    torch.testing.assert_close(m(x), x, rtol=0, atol=0)
    assert not (NonLocal(16, zero_init=False).bn.weight == 0).any()


def test_nonlocal_affinity_is_a_softmax_over_key_positions(randomize):
    m = randomize(NonLocal(16)).double().eval()
    x = torch.randn(2, 16, 3, 5, dtype=torch.float64)
    f = m.attention_maps(x)['affinity']
    assert f.shape == (2, 15, 3, 5) and (f > 0).all()
    torch.testing.assert_close(f.sum((2, 3)), torch.ones(2, 15, dtype=torch.float64))
    # the forward uses exactly these weights: y_i = sum_j f[i, j] g_j
    g = conv1x1(m.g, x).flatten(2)
    y = torch.einsum('nij,ncj->nci', f.flatten(2), g).reshape(2, -1, 3, 5)
    torch.testing.assert_close(m.bn(m.w_z(y)) + x, m(x))


def test_nonlocal_relates_distant_positions(randomize):
    """A change at one corner moves the output at the opposite corner (a 1x1 conv stack could not)."""
    m = randomize(NonLocal(16)).double().eval()
    # small, seeded activations: with randomised weights, logits of unit-size inputs saturate the softmax (a one-hot
    # row ignores the corner unless the corner is its argmax), which made the outcome depend on the global RNG
    x = 0.1 * torch.randn(1, 16, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    x2 = x.clone()
    x2[0, :, 0, 0] += 1.0
    assert (m(x2) - m(x))[0, :, 5, 5].abs().max() > 1e-6


def test_a2_maps_are_softmaxes_over_positions_and_descriptors(randomize):
    m = randomize(DoubleAttn(16, c_m=6, c_n=3)).double().eval()
    x = torch.randn(2, 16, 4, 5, dtype=torch.float64)
    maps = m.attention_maps(x)
    assert set(maps) == {'gather', 'distribute'}
    assert maps['gather'].shape == maps['distribute'].shape == (2, 3, 4, 5)
    ones = torch.ones(2, dtype=torch.float64)
    torch.testing.assert_close(maps['gather'].sum((2, 3)), ones[:, None].expand(2, 3))  # over positions
    torch.testing.assert_close(maps['distribute'].sum(1), ones[:, None, None].expand(2, 4, 5))  # over descriptors
    a = conv1x1(m.conv_a, x).flatten(2)
    g = torch.einsum('nkp,njp->nkj', a, maps['gather'].flatten(2))
    z = torch.einsum('nkj,njp->nkp', g, maps['distribute'].flatten(2)).reshape(2, -1, 4, 5)
    torch.testing.assert_close(m.conv_out(z) + x, m(x))


def test_a2_distribution_is_not_over_positions(randomize):
    """Widely copied code normalises V over positions; the paper normalises over descriptors."""
    m = randomize(DoubleAttn(16, c_m=6, c_n=3)).double().eval()
    x = torch.randn(2, 16, 4, 5, dtype=torch.float64)
    a, b, v = (conv1x1(conv, x).flatten(2) for conv in (m.conv_a, m.conv_b, m.conv_v))
    g = torch.einsum('nkp,njp->nkj', a, _softmax(b, 2))
    wrong = m.conv_out(torch.einsum('nkj,njp->nkp', g, _softmax(v, 2)).reshape(2, -1, 4, 5)) + x
    assert not torch.allclose(m(x), wrong)


@pytest.mark.parametrize('c, kwargs, inner', [(16, {}, 8), (64, {}, 32), (64, {'rd_ratio': 1 / 4}, 16),
                                              (10, {'rd_channels': 3}, 3)])
def test_nonlocal_param_count(c, kwargs, inner):
    m = NonLocal(c, **kwargs)
    assert m.theta.out_channels == m.phi.out_channels == m.g.out_channels == inner
    assert isinstance(m.bn, PooledBatchNorm2d)
    # theta (with bias), phi, g, W_z (no bias), BN(C)
    assert sum(p.numel() for p in m.parameters()) == 4 * c * inner + inner + 2 * c


@pytest.mark.parametrize('c1, c2, kwargs, cm, cn', [(64, 64, {}, 16, 16), (64, 128, {}, 16, 16),
                                                    (32, 32, {'c_m': 8, 'c_n': 4}, 8, 4)])
def test_a2_widths_and_param_count(c1, c2, kwargs, cm, cn):
    m = DoubleAttn(c1, c2, **kwargs)
    assert (m.conv_a.out_channels, m.conv_b.out_channels, m.conv_v.out_channels) == (cm, cn, cn)
    # conv_a, conv_v, conv_out with bias, conv_b without; a projection shortcut (conv + BN) when c2 != c1
    n = c1 * cm + cm + c1 * cn + c1 * cn + cn + cm * c2 + c2 + (0 if c1 == c2 else c1 * c2 + 2 * c2)
    assert sum(p.numel() for p in m.parameters()) == n
    assert DoubleAttn(c1).conv_out.out_channels == c1


@pytest.mark.parametrize('make', [lambda: NonLocal(16), lambda: DoubleAttn(16, 24, c_m=6, c_n=3)])
def test_gradients(make, randomize, check_grads):
    m = randomize(make()).double().train()
    check_grads(m, [torch.randn(2, 16, 4, 3, dtype=torch.float64)])


@pytest.mark.parametrize('make', [lambda: NonLocal(4, rd_channels=2), lambda: DoubleAttn(4, 6, c_m=2, c_n=3)])
def test_gradcheck(make, randomize):
    m = randomize(make()).double().eval()
    x = torch.randn(2, 4, 3, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(m, (x,))


def test_single_input_only(randomize):
    x = torch.randn(1, 16, 3, 3)
    for m in (NonLocal(16), DoubleAttn(16)):
        with pytest.raises(ValueError, match='single input'):
            m.attention_maps(x, x)


def test_nonlocal_scales_logits_by_default_as_the_official_code():
    assert NonLocal(16).scale == pytest.approx(8 ** -0.5)  # 1/sqrt(d), d = 16/2 inner channels
    assert NonLocal(16, rd_channels=5).scale == pytest.approx(5 ** -0.5)
    assert NonLocal(16, use_scale=False).scale == 1.0
