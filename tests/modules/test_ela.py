"""ELA checked against its formula, written out with functional ops from the module's own weights."""
import pytest
import torch
import torch.nn.functional as F

from yolo_attn.errors import ModelConfigError
from yolo_attn.modules import ELA

SIZES = [(2, 13, 17), (1, 13, 17), (2, 7, 7), (1, 7, 7), (2, 1, 1), (1, 1, 1), (1, 1, 9)]  # (N, H, W)
VERSIONS = {'T': (5, 32, 32), 'B': (7, 32, 16), 'S': (5, 4, 16), 'L': (7, 4, 16)}  # phi -> (k, groups at 32 ch, GN)


def sig(t):
    return 1 / (1 + torch.exp(-t))


def ela_ref(m, x):
    """a = σ(GN(Conv1d(z))) for z = mean over W and mean over H, one conv and one GroupNorm for both."""
    k, groups, gn = VERSIONS[m.phi]
    w = m.conv.weight

    def gate(z):  # N×C×L
        t = F.conv1d(z, w, padding=k // 2, groups=groups)
        n, c, length = t.shape
        g = t.reshape(n, gn, -1)
        g = (g - g.mean(2, keepdim=True)) / torch.sqrt(g.var(2, unbiased=False, keepdim=True) + m.gn.eps)
        return sig(g.reshape(n, c, length) * m.gn.weight[:, None] + m.gn.bias[:, None])

    return x * gate(x.mean(3))[:, :, :, None] * gate(x.mean(2))[:, :, None, :]


def build(phi, randomize, channels=32):
    m = randomize(ELA(channels, phi))
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        m.gn.weight.copy_(torch.rand(channels, generator=g) + 0.5)
        m.gn.bias.copy_(torch.randn(channels, generator=g))
    return m.double()


@pytest.mark.parametrize('phi', 'TBSL')
@pytest.mark.parametrize('n, h, w', SIZES)
@pytest.mark.parametrize('training', [True, False])
def test_matches_formula(phi, n, h, w, training, randomize):
    m = build(phi, randomize).train(training)
    x = torch.randn(n, 32, h, w, dtype=torch.float64)
    expected = ela_ref(m, x)
    out = m(x)
    assert out.shape == x.shape and out.dtype == x.dtype
    torch.testing.assert_close(out, expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize('phi, kernel, groups', [('T', 5, 64), ('B', 7, 64), ('S', 5, 8), ('L', 7, 8)])
def test_the_four_versions_and_their_parameter_counts(phi, kernel, groups):
    """MODULES.md's table, at 64 channels: B 576, T 448, S 2,688, L 3,712 (k·C·C/groups + 2·C)."""
    m = ELA(64, phi)
    assert m.conv.kernel_size == (kernel,) and m.conv.groups == groups and m.conv.bias is None
    assert m.gn.num_groups == (32 if phi == 'T' else 16)
    assert sum(p.numel() for p in m.parameters()) == {'T': 448, 'B': 576, 'S': 2688, 'L': 3712}[phi]


def test_default_is_elab_and_phi_is_case_insensitive():
    assert ELA(64).phi == 'B' and ELA(64, 'l').phi == 'L'
    assert list(ELA.LAYER_INFO.hyper_parameters) == ['phi'] and ELA.LAYER_INFO.foreign_args == ('phi',)


def test_gates_and_maps(randomize):
    m = build('B', randomize).eval()
    x = torch.randn(2, 32, 6, 9, dtype=torch.float64)
    maps = m.attention_maps(x)
    assert maps['h'].shape == (2, 32, 6, 1) and maps['w'].shape == (2, 32, 1, 9)
    torch.testing.assert_close(m.applied_gates(x)['h⊗w'] * x, m(x))
    with pytest.raises(ValueError):
        m.attention_maps(x, x)


@pytest.mark.parametrize('channels, phi, match', [
    (48, 'T', "multiple of 32; 48 channels is not \\(phi 'B', 'S', 'L' would fit\\)"),
    (40, 'B', 'multiple of 16; 40 channels is not'),
    (64, 'X', "phi='X' is not an ELA version; choose one of 'T', 'B', 'S', 'L'"),
    (64, 7, "phi=7 is not an ELA version")])
def test_bad_configurations_are_refused(channels, phi, match):
    with pytest.raises(ModelConfigError, match=match):
        ELA(channels, phi)


def test_a_single_value_per_group_in_training_gives_the_shift(randomize):
    """ELA-T at 32 channels, 1×1, batch 1: one value per GroupNorm group (nn.GroupNorm raises there)."""
    m = build('T', randomize).train()
    x = torch.randn(1, 32, 1, 1, dtype=torch.float64)
    torch.testing.assert_close(m(x), x * (sig(m.gn.bias) ** 2).reshape(1, -1, 1, 1))


def test_gradients(randomize, check_grads):
    check_grads(build('B', randomize).train(), [torch.randn(2, 32, 5, 3, dtype=torch.float64)])
