import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from yolo_attn.modules import ECA, SE

SIZES = [(2, 6, 6), (2, 13, 17), (2, 1, 1), (1, 13, 17), (1, 1, 1)]  # (N, H, W)


def se_ref(m, x, act=F.relu, gate=torch.sigmoid):
    s = x.mean((2, 3))  # N×C
    w1, w2 = m.fc1.weight.flatten(1), m.fc2.weight.flatten(1)
    e = gate(act(s @ w1.T + m.fc1.bias) @ w2.T + m.fc2.bias)
    return x * e[:, :, None, None]


def eca_ref(m, x):
    s = x.mean((2, 3))  # N×C
    w = m.conv.weight.flatten()
    k = w.numel()
    padded = F.pad(s, ((k - 1) // 2, (k - 1) // 2))
    y = (padded.unfold(1, k, 1) * w).sum(-1)  # cross-correlation along the channel axis
    return x * torch.sigmoid(y)[:, :, None, None]


CASES = [(lambda: SE(16, rd_ratio=1 / 4), se_ref), (lambda: ECA(16, kernel_size=5), eca_ref)]


@pytest.mark.parametrize('make, ref', CASES)
@pytest.mark.parametrize('n, h, w', SIZES)
@pytest.mark.parametrize('training', [True, False])
def test_matches_formula(make, ref, n, h, w, training, randomize):
    m = randomize(make()).double().train(training)
    x = torch.randn(n, 16, h, w, dtype=torch.float64)
    x0 = x.clone()
    expected = ref(m, x)
    out = m(x)
    assert out.shape == x.shape and out.dtype == x.dtype
    torch.testing.assert_close(out, expected, rtol=1e-9, atol=1e-9)
    assert torch.equal(x, x0)
    assert not torch.allclose(out, x)


@pytest.mark.parametrize('make, ref', CASES)
def test_float32(make, ref, randomize):
    m = randomize(make())
    x = torch.randn(2, 16, 5, 3)
    out = m(x)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, ref(m, x), rtol=1e-4, atol=1e-5)


def test_se_other_activations(randomize):
    m = randomize(SE(8, rd_channels=3, act_layer='silu', gate_layer='hard_sigmoid')).double()
    assert m.fc1.out_channels == 3 and isinstance(m.act, nn.SiLU)
    x = torch.randn(2, 8, 4, 5, dtype=torch.float64)
    torch.testing.assert_close(m(x), se_ref(m, x, F.silu, lambda t: F.relu6(t + 3) / 6))


@pytest.mark.parametrize('c, rd', [(64, 4), (32, 2), (8, 1), (100, 6)])
def test_se_width_and_param_count(c, rd):
    m = SE(c)
    assert m.fc1.out_channels == rd
    assert sum(p.numel() for p in m.parameters()) == 2 * c * rd + c + rd


def test_se_param_count_literal():
    assert sum(p.numel() for p in SE(64).parameters()) == 2 * 64 * 4 + 64 + 4 == 580


@pytest.mark.parametrize('c, k', [(64, 3), (256, 5), (512, 5), (1024, 5), (2048, 7), (1, 1), (16, 3)])
def test_eca_adaptive_kernel(c, k):
    m = ECA(c)
    assert m.conv.kernel_size == (k,) and m.conv.padding == ((k - 1) // 2,) and m.conv.bias is None
    assert sum(p.numel() for p in m.parameters()) == k


def test_eca_kernel_override_and_even_rejected():
    assert ECA(2048, kernel_size=3).conv.kernel_size == (3,)
    assert ECA(64, gamma=1, beta=0).conv.kernel_size == (7,)  # t = 6 -> 7
    with pytest.raises(ValueError):
        ECA(64, kernel_size=4)


def test_eca_interaction_is_local_across_channels(randomize):
    m = randomize(ECA(16, kernel_size=3)).double()
    x = torch.randn(1, 16, 4, 4, dtype=torch.float64)
    x2 = x.clone()
    x2[:, 7] += 1.0
    changed = (m.attention_maps(x)['channel'] - m.attention_maps(x2)['channel']).flatten().abs() > 1e-12
    assert changed.nonzero().flatten().tolist() == [6, 7, 8]


@pytest.mark.parametrize('make, ref', CASES)
def test_attention_maps_multiply_back(make, ref, randomize):
    m = randomize(make()).double()
    x = torch.randn(2, 16, 5, 7, dtype=torch.float64)
    maps = m.attention_maps(x)
    assert set(maps) == {'channel'} and maps['channel'].shape == (2, 16, 1, 1)
    assert ((maps['channel'] > 0) & (maps['channel'] < 1)).all()
    torch.testing.assert_close(x * maps['channel'], m(x))


@pytest.mark.parametrize('make, ref', CASES)
def test_gradients(make, ref, randomize, check_grads):
    m = randomize(make()).double().train()
    check_grads(m, [torch.randn(2, 16, 5, 3, dtype=torch.float64)])


@pytest.mark.parametrize('make', [lambda: SE(4, rd_ratio=1 / 2), lambda: ECA(4, kernel_size=3)])
def test_gradcheck(make, randomize):
    m = randomize(make()).double()
    x = torch.randn(2, 4, 3, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(m, (x,))
