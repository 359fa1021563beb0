"""SGE and scSE against their papers' formulas, written out from each module's own weights."""
import pytest
import torch
import torch.nn as nn

from yolo_attn.modules import SGE, scSE

SIZES = [(2, 6, 6), (2, 5, 7), (2, 1, 1), (1, 5, 7), (1, 1, 1)]  # (N, H, W)


def randomize_sge(m, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        m.weight.copy_(torch.randn(m.weight.shape, generator=g))
        m.bias.copy_(torch.randn(m.bias.shape, generator=g))
    return m


def sge_ref(m, x):
    """Per group: c = sum over the group's channels of g * x (g its GAP), standardised over positions with the
    population std (+eps), a = w * c_hat + b, out = group * sigmoid(a)."""
    n, c, h, w = x.shape
    groups = m.weight.shape[1]
    per = c // groups
    out = torch.empty_like(x)
    for b in range(n):
        for k in range(groups):
            grp = x[b, k * per:(k + 1) * per]  # per×H×W
            sim = (grp * grp.mean((1, 2))[:, None, None]).sum(0)  # H×W
            centred = sim - sim.mean()
            std = torch.sqrt((centred ** 2).sum() / sim.numel())
            a = m.weight[0, k, 0, 0] * centred / (std + m.eps) + m.bias[0, k, 0, 0]
            out[b, k * per:(k + 1) * per] = grp * torch.sigmoid(a)
    return out


def scse_ref(m, x, combine='add'):
    s = x.mean((2, 3))
    hidden = torch.relu(s @ m.fc1.weight[:, :, 0, 0].T + m.fc1.bias)
    channel = torch.sigmoid(hidden @ m.fc2.weight[:, :, 0, 0].T + m.fc2.bias)[:, :, None, None]
    spatial = torch.sigmoid(torch.einsum('c,nchw->nhw', m.spatial.weight[0, :, 0, 0], x) + m.spatial.bias)[:, None]
    a, b = x * channel, x * spatial
    return a + b if combine == 'add' else torch.maximum(a, b)


@pytest.mark.parametrize('groups', [1, 4, 16])
@pytest.mark.parametrize('n, h, w', SIZES)
@pytest.mark.parametrize('training', [True, False])
def test_sge_matches_formula(groups, n, h, w, training):
    m = randomize_sge(SGE(16, groups=groups)).double().train(training)
    x = torch.randn(n, 16, h, w, dtype=torch.float64)
    x0 = x.clone()
    out = m(x)
    assert out.shape == x.shape and torch.isfinite(out).all()
    torch.testing.assert_close(out, sge_ref(m, x), rtol=1e-9, atol=1e-9)
    assert torch.equal(x, x0)


def test_sge_uses_the_population_std_not_the_unbiased_one():
    m = randomize_sge(SGE(16, groups=4)).double()
    x = torch.randn(2, 16, 3, 4, dtype=torch.float64)
    out = m(x)
    with torch.no_grad():  # the official code's torch.std (unbiased) gives a different result
        xg = x.reshape(2, 4, 4, 3, 4)
        sim = (xg * xg.mean((3, 4), keepdim=True)).sum(2).flatten(2)
        t = (sim - sim.mean(2, keepdim=True)) / (sim.std(2, keepdim=True) + 1e-5)
        gate = torch.sigmoid(t.reshape(2, 4, 3, 4) * m.weight + m.bias)
        official = (xg * gate[:, :, None]).reshape_as(x)
    assert not torch.allclose(out, official)
    one = m(torch.randn(2, 16, 1, 1, dtype=torch.float64))  # the unbiased std would be NaN here
    assert torch.isfinite(one).all()


def test_sge_init_params_and_groups():
    m = SGE(128)
    assert m.groups == 64 and sum(p.numel() for p in m.parameters()) == 2 * 64
    assert (m.weight == 0).all() and (m.bias == 1).all()  # official init: a uniform sigmoid(1) gate
    x = torch.randn(2, 128, 4, 4)
    torch.testing.assert_close(m(x), x * torch.sigmoid(torch.tensor(1.0)))
    with pytest.raises(ValueError, match='groups=64'):
        SGE(96)


def test_sge_gate_is_one_map_per_group():
    m = randomize_sge(SGE(16, groups=4)).double()
    x = torch.rand(2, 16, 5, 6, dtype=torch.float64) + 0.5
    maps = m.attention_maps(x)
    assert set(maps) == {'spatial'} and maps['spatial'].shape == (2, 4, 5, 6)
    gate = (m(x) / x).reshape(2, 4, 4, 5, 6)
    torch.testing.assert_close(gate, maps['spatial'][:, :, None].expand_as(gate))


@pytest.mark.parametrize('kwargs', [{}, {'rd_channels': 3}, {'combine': 'max'}])
@pytest.mark.parametrize('n, h, w', SIZES)
@pytest.mark.parametrize('training', [True, False])
def test_scse_matches_formula(kwargs, n, h, w, training, randomize):
    m = randomize(scSE(16, **kwargs)).double().train(training)
    x = torch.randn(n, 16, h, w, dtype=torch.float64)
    x0 = x.clone()
    out = m(x)
    torch.testing.assert_close(out, scse_ref(m, x, kwargs.get('combine', 'add')), rtol=1e-9, atol=1e-9)
    assert torch.equal(x, x0)


def test_scse_maps_widths_and_params(randomize):
    m = randomize(scSE(16)).double()
    x = torch.randn(2, 16, 5, 7, dtype=torch.float64)
    maps = m.attention_maps(x)
    assert maps['channel'].shape == (2, 16, 1, 1) and maps['spatial'].shape == (2, 1, 5, 7)
    torch.testing.assert_close(x * maps['channel'] + x * maps['spatial'], m(x))
    assert scSE(64).fc1.out_channels == 32  # r = 2
    c, rd = 64, 32
    assert sum(p.numel() for p in scSE(c).parameters()) == 2 * c * rd + rd + c + c + 1
    with pytest.raises(ValueError, match='combine'):
        scSE(16, combine='mean')


@pytest.mark.parametrize('make', [lambda: randomize_sge(SGE(16, groups=4)), lambda: scSE(16)])
def test_gradients(make, randomize, check_grads):
    m = randomize(make()).double().train()
    check_grads(m, [torch.randn(2, 16, 4, 3, dtype=torch.float64)])


@pytest.mark.parametrize('make', [lambda: randomize_sge(SGE(4, groups=2)), lambda: scSE(4)])
def test_gradcheck(make, randomize):
    m = randomize(make()).double()
    x = torch.randn(2, 4, 3, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(m, (x,))


def test_single_input_only():
    x = torch.randn(1, 16, 3, 3)
    for m in (SGE(16, groups=4), scSE(16)):
        with pytest.raises(ValueError, match='single input'):
            m.attention_maps(x, x)
    assert isinstance(scSE(8).act, nn.ReLU)
