"""CPCA checked against its formula, written out with functional ops from the module's own weights."""
import pytest
import torch
import torch.nn.functional as F

from yolo_attn.modules import CPCA

SIZES = [(2, 13, 17), (1, 13, 17), (2, 7, 7), (1, 7, 7), (2, 1, 1), (1, 1, 1), (1, 25, 3)]
C = 8


def sig(t):
    return 1 / (1 + torch.exp(-t))


def cpca_ref(m, x):
    c = x.shape[1]
    wp, bp = m.conv.weight[:, :, 0, 0], m.conv.bias

    def proj(t):  # the one shared 1×1 conv P
        return torch.einsum('oc,nchw->nohw', wp, t) + bp[:, None, None]

    def mlp(t):  # N×C
        h = torch.clamp(t @ m.ca.fc1.weight[:, :, 0, 0].T + m.ca.fc1.bias, min=0)
        return sig(h @ m.ca.fc2.weight[:, :, 0, 0].T + m.ca.fc2.bias)

    u = proj(x)
    u = 0.5 * u * (1 + torch.erf(u / 2 ** 0.5))  # GELU
    w = mlp(u.mean((2, 3))) + mlp(u.amax((2, 3)))
    v = u * w[:, :, None, None]

    def dw(t, conv, pad):
        return F.conv2d(t, conv.weight, conv.bias, padding=pad, groups=c)

    t = dw(v, m.dconv5_5, 2)
    s = t
    for k in (7, 11, 21):
        s = s + dw(dw(t, getattr(m, f'dconv1_{k}'), (0, k // 2)), getattr(m, f'dconv{k}_1'), (k // 2, 0))
    return proj(proj(s) * v)


@pytest.mark.parametrize('n, h, w', SIZES)
@pytest.mark.parametrize('training', [True, False])
def test_matches_formula(n, h, w, training, randomize):
    m = randomize(CPCA(C)).double().train(training)
    x = torch.randn(n, C, h, w, dtype=torch.float64)
    torch.testing.assert_close(m(x), cpca_ref(m, x), rtol=1e-9, atol=1e-9)


def test_one_projection_is_shared_and_the_count_is_the_official_one():
    """MODULES.md: 13,328 at 64 channels; 1.5·C² + 112.25·C (127,040 at 256)."""
    m = CPCA(64)
    assert sum(p.numel() for p in m.parameters()) == 13_328
    assert sum(p.numel() for p in CPCA(256).parameters()) == 127_040
    assert [n for n, _ in m.named_parameters() if '.' not in n.replace('.weight', '').replace('.bias', '')].count(
        'conv.weight') == 1
    assert m.ca.fc1.out_channels == 16  # C // channelAttention_reduce, reduce 4


def test_official_state_dict_names():
    names = {n for n, _ in CPCA(16).named_parameters()}
    assert {'conv.weight', 'ca.fc1.weight', 'ca.fc2.bias', 'dconv5_5.weight', 'dconv1_7.weight', 'dconv7_1.weight',
            'dconv1_11.weight', 'dconv11_1.weight', 'dconv1_21.weight', 'dconv21_1.bias'} <= names
    assert len(names) == 2 * 10


def test_reduction_from_other_projects_yaml_args():
    assert CPCA.LAYER_INFO.foreign_args == ('reduction',)
    assert CPCA(64, rd_ratio=1 / 8).ca.fc1.out_channels == 8


def test_maps(randomize):
    m = randomize(CPCA(C)).double().eval()
    x = torch.randn(2, C, 6, 5, dtype=torch.float64)
    maps = m.applied_gates(x)
    assert maps['channel'].shape == (2, C, 1, 1) and maps['spatial'].shape == (2, C, 6, 5)
    assert ((maps['channel'] > 0) & (maps['channel'] < 2)).all()
    with pytest.raises(ValueError):
        m.attention_maps(x, x)


def test_gradients(randomize, check_grads):
    check_grads(randomize(CPCA(C)).double(), [torch.randn(2, C, 5, 6, dtype=torch.float64)])
