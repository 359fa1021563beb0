"""SECBAM and Chain: compositions of registered layers, checked against the members' formulas."""
import pytest
import torch
import torch.nn.functional as F

from yolo_attn import create_attn
from yolo_attn.modules import CBAM, ECA, SE, SECBAM, Chain, scSE

SIZES = [(2, 6, 6), (2, 5, 7), (2, 1, 1), (1, 5, 7), (1, 1, 1)]


def se_ref(m, x):
    s = x.mean((2, 3))
    e = torch.sigmoid(F.relu(s @ m.fc1.weight.flatten(1).T + m.fc1.bias) @ m.fc2.weight.flatten(1).T + m.fc2.bias)
    return x * e[:, :, None, None]


def cbam_ref(m, x, bn_ref, training):
    def mlp(v):
        return F.relu(v @ m.fc1.weight.flatten(1).T + m.fc1.bias) @ m.fc2.weight.flatten(1).T + m.fc2.bias

    x1 = x * torch.sigmoid(mlp(x.mean((2, 3))) + mlp(x.amax((2, 3))))[:, :, None, None]
    k = m.spatial_conv.weight.shape[-1]
    z = F.conv2d(torch.cat([x1.mean(1, keepdim=True), x1.amax(1, keepdim=True)], 1), m.spatial_conv.weight,
                 padding=k // 2)
    return x1 * torch.sigmoid(bn_ref(z, m.spatial_bn, training))


@pytest.mark.parametrize('n, h, w', SIZES)
@pytest.mark.parametrize('training', [True, False])
def test_secbam_is_cbam_after_se(n, h, w, training, randomize, bn_ref):
    m = randomize(SECBAM(16, rd_ratio=1 / 4, spatial_kernel_size=3)).double().train(training)
    x = torch.randn(n, 16, h, w, dtype=torch.float64)
    x0 = x.clone()
    torch.testing.assert_close(m(x), cbam_ref(m.cbam, se_ref(m.se, x), bn_ref, training), rtol=1e-9, atol=1e-9)
    assert torch.equal(x, x0)


def test_secbam_members_and_params():
    m = SECBAM(64)
    assert type(m.se) is SE and type(m.cbam) is CBAM
    assert m.se.fc1.out_channels == m.cbam.fc1.out_channels == 4 and m.cbam.spatial_conv.kernel_size == (7, 7)
    assert sum(p.numel() for p in m.parameters()) == (sum(p.numel() for p in SE(64).parameters())
                                                      + sum(p.numel() for p in CBAM(64).parameters()))


def test_chain_of_se_and_cbam_equals_secbam(randomize):
    secbam = randomize(SECBAM(16)).double().eval()
    chain = create_attn('chain', 16, 'se', 'cbam').double().eval()
    renamed = {k.replace('se.', '0.', 1).replace('cbam.', '1.', 1): v for k, v in secbam.state_dict().items()}
    chain.load_state_dict(renamed)  # strict: the same parameters, named 0.* and 1.*
    x = torch.randn(2, 16, 5, 7, dtype=torch.float64)
    torch.testing.assert_close(chain(x), secbam(x), rtol=0, atol=0)
    maps, ref = chain.attention_maps(x), secbam.attention_maps(x)
    assert list(maps) == ['0.channel', '1.channel', '1.spatial']
    assert list(ref) == ['se.channel', 'cbam.channel', 'cbam.spatial']
    for a, b in zip(maps.values(), ref.values()):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize('training', [True, False])
def test_chain_applies_members_in_order_with_their_args(training, randomize, bn_ref):
    m = randomize(create_attn('chain', 16, ['SE', {'rd_ratio': 0.25}], ['eca', 5], 'cbam')).double().train(training)
    assert [type(c) for c in m.children()] == [SE, ECA, CBAM]
    assert m.get_submodule('0').fc1.out_channels == 4
    assert m.get_submodule('1').conv.kernel_size == (5,)
    x = torch.randn(2, 16, 5, 6, dtype=torch.float64)
    eca = m.get_submodule('1')
    y = se_ref(m.get_submodule('0'), x)
    s = F.pad(y.mean((2, 3)), (2, 2)).unfold(1, 5, 1) @ eca.conv.weight.flatten()
    y = y * torch.sigmoid(s)[:, :, None, None]
    torch.testing.assert_close(m(x), cbam_ref(m.get_submodule('2'), y, bn_ref, training), rtol=1e-9, atol=1e-9)
    assert list(m.state_dict())[0].startswith('0.')


@pytest.mark.parametrize('layers, match', [
    ((), 'at least one'),
    (('se', 'aff'), 'AFF cannot be chained'),
    (('selectivekernel',), 'SelectiveKernel cannot be chained'),
    (('attngate',), 'AttnGate cannot be chained'),
    (('sse',), "unknown layer 'sse'"),
    ((3,), 'layer name'),
])
def test_chain_refuses_what_it_cannot_chain(layers, match):
    with pytest.raises(ValueError, match=match):
        create_attn('chain', 16, *layers)


def test_chain_gradients_and_nesting(randomize, check_grads):
    m = randomize(create_attn('chain', 16, 'scse', ['chain', ['se', {'rd_ratio': 0.5}], 'eca'])).double().train()
    assert type(m.get_submodule('1')) is Chain and type(m.get_submodule('0')) is scSE
    check_grads(m, [torch.randn(2, 16, 4, 3, dtype=torch.float64)])
    with pytest.raises(ValueError, match='single input'):
        m.attention_maps(torch.randn(1, 16, 2, 2), torch.randn(1, 16, 2, 2))
