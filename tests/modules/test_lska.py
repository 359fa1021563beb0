"""LSKA checked against its formula, written out with functional ops from the module's own weights."""
import pytest
import torch
import torch.nn.functional as F

from yolo_attn.errors import ModelConfigError
from yolo_attn.modules import LSKA

SIZES = [(2, 13, 17), (1, 13, 17), (2, 7, 7), (1, 1, 1), (2, 1, 5)]
TABLE = {7: (3, 3, 2), 11: (3, 5, 2), 23: (5, 7, 3), 35: (5, 11, 3), 41: (5, 13, 3), 53: (5, 17, 3)}
C = 8


def lska_ref(m, x):
    k0, k1, d = TABLE[m.k_size]
    c = x.shape[1]
    a = F.conv2d(x, m.conv0h.weight, m.conv0h.bias, padding=(0, k0 // 2), groups=c)
    a = F.conv2d(a, m.conv0v.weight, m.conv0v.bias, padding=(k0 // 2, 0), groups=c)
    a = F.conv2d(a, m.conv_spatial_h.weight, m.conv_spatial_h.bias, padding=(0, d * (k1 // 2)), dilation=d, groups=c)
    a = F.conv2d(a, m.conv_spatial_v.weight, m.conv_spatial_v.bias, padding=(d * (k1 // 2), 0), dilation=d, groups=c)
    a = torch.einsum('oc,nchw->nohw', m.conv1.weight[:, :, 0, 0], a) + m.conv1.bias[:, None, None]
    return x * a


@pytest.mark.parametrize('k_size', sorted(TABLE))
@pytest.mark.parametrize('n, h, w', SIZES)
def test_matches_formula(k_size, n, h, w, randomize):
    m = randomize(LSKA(C, k_size)).double()
    x = torch.randn(n, C, h, w, dtype=torch.float64)
    for training in (True, False):  # no norm: the same in both
        torch.testing.assert_close(m.train(training)(x), lska_ref(m, x), rtol=1e-9, atol=1e-9)
    k0, k1, d = TABLE[k_size]
    assert m.conv0h.kernel_size == (1, k0) and m.conv_spatial_v.kernel_size == (k1, 1)
    assert m.conv_spatial_h.dilation == (d, d)  # as the official code (a no-op along the 1-wide axis)


@pytest.mark.parametrize('k_size, expected', [(23, 5952), (7, 5184)])
def test_parameter_count_at_64_channels(k_size, expected):
    """MODULES.md: 5,952 (k 23), 5,184 (k 7): C² + C·(2·k0 + 2·k1) + 5·C."""
    assert sum(p.numel() for p in LSKA(64, k_size).parameters()) == expected
    assert sum(p.numel() for p in LSKA(256).parameters()) == 256 ** 2 + 29 * 256  # ≈ 73k


def test_default_is_the_released_kernel_23():
    assert LSKA(16).k_size == 23 and LSKA.LAYER_INFO.foreign_args == ('k_size',)


@pytest.mark.parametrize('k_size', [9, 21, 0, 23.0, True, '23'])
def test_kernel_sizes_outside_the_official_table_are_refused(k_size):
    with pytest.raises(ModelConfigError, match='choose one of 7, 11, 23, 35, 41, 53'):
        LSKA(16, k_size)


def test_the_gate_is_unbounded_and_readable(randomize):
    m = randomize(LSKA(C)).double().eval()
    x = torch.randn(2, C, 9, 9, dtype=torch.float64)
    a = m.attention_maps(x)['attention']
    assert (a < 0).any() and (a > 1).any()
    torch.testing.assert_close(x * m.applied_gates(x)['attention'], m(x))


def test_gradients(randomize, check_grads):
    check_grads(randomize(LSKA(4, 7)).double(), [torch.randn(2, 4, 5, 6, dtype=torch.float64)])
