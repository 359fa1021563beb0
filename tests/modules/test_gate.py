"""The attention gate against Attention U-Net's formula, written out from the module's own weights."""
import pytest
import torch

from yolo_attn.modules import AttnGate

# (N, skip H×W, gate H×W): 2× coarser, odd sizes, equal, a 1×1 gate, batch 1
SHAPES = [(2, (6, 6), (3, 3)), (2, (13, 17), (7, 9)), (2, (5, 7), (5, 7)), (2, (4, 5), (1, 1)),
          (1, (13, 17), (7, 9)), (1, (1, 1), (1, 1))]


def bilinear_matrix(n_out, n_in):
    """Half-pixel bilinear resampling weights (align_corners=False), one row per target cell."""
    m = torch.zeros(n_out, n_in, dtype=torch.float64)
    for i in range(n_out):
        src = max((i + 0.5) * n_in / n_out - 0.5, 0.0)
        i0 = min(int(src), n_in - 1)
        i1, lam = min(i0 + 1, n_in - 1), src - i0
        m[i, i0] += 1 - lam
        m[i, i1] += lam
    return m


def gate_ref(m, x, g):
    """alpha = sigmoid(psi(relu(W_x x + Up(W_g g + b_g))) + b_psi); out = x * alpha."""
    qx = torch.einsum('oc,nchw->nohw', m.w_x.weight[:, :, 0, 0], x)
    qg = torch.einsum('oc,nchw->nohw', m.w_g.weight[:, :, 0, 0], g) + m.w_g.bias[:, None, None]
    uh, uw = bilinear_matrix(x.shape[2], g.shape[2]), bilinear_matrix(x.shape[3], g.shape[3])
    qg = torch.einsum('ia,ncab,jb->ncij', uh.to(x.dtype), qg, uw.to(x.dtype))
    q = torch.relu(qx + qg)
    alpha = torch.sigmoid(torch.einsum('c,nchw->nhw', m.psi.weight[0, :, 0, 0], q) + m.psi.bias)[:, None]
    return x * alpha


@pytest.mark.parametrize('n, xs, gs', SHAPES)
@pytest.mark.parametrize('training', [True, False])
@pytest.mark.parametrize('kwargs', [{}, {'rd_channels': 3}])
def test_matches_formula(n, xs, gs, training, kwargs, randomize):
    m = randomize(AttnGate(16, 8, **kwargs)).double().train(training)
    x = torch.randn(n, 16, *xs, dtype=torch.float64)
    g = torch.randn(n, 8, *gs, dtype=torch.float64)
    x0, g0 = x.clone(), g.clone()
    out = m(x, g)
    assert out.shape == x.shape
    torch.testing.assert_close(out, gate_ref(m, x, g), rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(m([x, g]), out)
    assert torch.equal(x, x0) and torch.equal(g, g0)


def test_float32(randomize):
    m = randomize(AttnGate(16, 8))
    x, g = torch.randn(2, 16, 6, 8), torch.randn(2, 8, 3, 4)
    torch.testing.assert_close(m(x, g), gate_ref(m.double(), x.double(), g.double()).float(), rtol=1e-4, atol=1e-5)


def test_the_gate_depends_on_the_gating_signal(randomize):
    """A tutorial gates x with itself; here the gating signal really changes alpha."""
    m = randomize(AttnGate(16, 8)).double()
    x = torch.randn(2, 16, 6, 6, dtype=torch.float64)
    g1, g2 = torch.randn(2, 2, 8, 3, 3, dtype=torch.float64)
    a1, a2 = m.attention_maps(x, g1)['gate'], m.attention_maps(x, g2)['gate']
    assert a1.shape == (2, 1, 6, 6) and ((a1 > 0) & (a1 < 1)).all()
    assert not torch.allclose(a1, a2)
    torch.testing.assert_close(x * a1, m(x, g1))


def test_widths_and_param_count():
    m = AttnGate(64, 128)
    assert m.w_x.out_channels == m.w_g.out_channels == 32  # F_int = C_x / 2
    assert m.w_x.bias is None and m.w_g.bias is not None and m.psi.bias is not None
    assert sum(p.numel() for p in m.parameters()) == 64 * 32 + 128 * 32 + 32 + 32 + 1


def test_shape_errors_are_clear(randomize):
    m = AttnGate(16, 8)
    x, g = torch.randn(2, 16, 6, 6), torch.randn(2, 8, 3, 3)
    with pytest.raises(ValueError, match='finer than the skip'):
        m(torch.randn(2, 16, 3, 3), torch.randn(2, 8, 6, 6))
    with pytest.raises(ValueError, match='16 channels and a gating map with 8'):
        m(g, x)
    with pytest.raises(ValueError, match='same N'):
        m(x, g[:1])
    with pytest.raises(ValueError, match='two inputs'):
        m(x)


def test_gradients(randomize, check_grads):
    m = randomize(AttnGate(16, 8)).double().train()
    check_grads(m, [torch.randn(2, 16, 6, 5, dtype=torch.float64), torch.randn(2, 8, 3, 3, dtype=torch.float64)])


def test_gradcheck(randomize):
    m = randomize(AttnGate(4, 3, rd_channels=2)).double()
    x = torch.randn(2, 4, 4, 3, dtype=torch.float64, requires_grad=True)
    g = torch.randn(2, 3, 2, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(m, (x, g))
