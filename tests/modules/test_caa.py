"""CAA checked against its formula, written out with functional ops from the module's own weights."""
import pytest
import torch
import torch.nn.functional as F

from yolo_attn.errors import ModelConfigError
from yolo_attn.modules import CAA

SIZES = [(2, 13, 17), (1, 13, 17), (2, 7, 7), (1, 7, 7), (2, 1, 1), (1, 1, 1), (1, 3, 30)]
C = 8


def sig(t):
    return 1 / (1 + torch.exp(-t))


def caa_ref(m, x, bn_ref, training):
    c = x.shape[1]
    pooled = F.conv2d(x, torch.full((c, 1, 7, 7), 1 / 49, dtype=x.dtype), padding=3, groups=c)  # zeros counted

    def conv_bn_silu(t, unit):
        t = bn_ref(torch.einsum('oc,nchw->nohw', unit.conv.weight[:, :, 0, 0], t), unit.bn, training)
        return t * sig(t)

    kh, kv = m.h_conv.kernel_size[1], m.v_conv.kernel_size[0]
    t = conv_bn_silu(pooled, m.conv1)
    t = F.conv2d(t, m.h_conv.weight, m.h_conv.bias, padding=(0, kh // 2), groups=c)
    t = F.conv2d(t, m.v_conv.weight, m.v_conv.bias, padding=(kv // 2, 0), groups=c)
    return x * sig(conv_bn_silu(t, m.conv2))


@pytest.mark.parametrize('kernels', [(11, 11), (5, 13)])
@pytest.mark.parametrize('n, h, w', SIZES)
@pytest.mark.parametrize('training', [True, False])
def test_matches_formula(kernels, n, h, w, training, randomize, bn_ref):
    m = randomize(CAA(C, *kernels)).double().train(training)
    x = torch.randn(n, C, h, w, dtype=torch.float64)
    expected = caa_ref(m, x, bn_ref, training)
    torch.testing.assert_close(m(x), expected, rtol=1e-9, atol=1e-9)


def test_parameter_count_is_the_yolo_forms():
    """MODULES.md: 9,984 at 64 channels with BN + SiLU (9,856 inside PKINet, plain convs); 2C² + 28C at k 11."""
    assert sum(p.numel() for p in CAA(64).parameters()) == 9_984
    assert sum(p.numel() for p in CAA(256).parameters()) == 2 * 256 ** 2 + 28 * 256


def test_bn_settings_and_names():
    m = CAA(16)
    assert m.conv1.bn.eps == 1e-3 and m.conv1.bn.momentum == 0.03 and m.conv1.conv.bias is None
    assert {n for n, _ in m.named_parameters()} == {
        'conv1.conv.weight', 'conv1.bn.weight', 'conv1.bn.bias', 'h_conv.weight', 'h_conv.bias', 'v_conv.weight',
        'v_conv.bias', 'conv2.conv.weight', 'conv2.bn.weight', 'conv2.bn.bias'}


@pytest.mark.parametrize('kwargs', [{'h_kernel_size': 10}, {'v_kernel_size': 0}, {'h_kernel_size': 11.0}])
def test_even_or_bad_kernels_are_refused(kwargs):
    with pytest.raises(ModelConfigError, match='must be an odd positive integer'):
        CAA(16, **kwargs)


def test_the_gate_lies_in_0_1(randomize):
    m = randomize(CAA(C)).double().eval()
    x = torch.randn(2, C, 9, 9, dtype=torch.float64)
    a = m.applied_gates(x)['anchor']
    assert ((a > 0) & (a < 1)).all()
    torch.testing.assert_close(x * a, m(x))


def test_gradients(randomize, check_grads):
    check_grads(randomize(CAA(C)).double().train(), [torch.randn(2, C, 5, 6, dtype=torch.float64)])
