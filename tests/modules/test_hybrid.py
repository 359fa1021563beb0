import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from yolo_attn.modules import CBAM, CoordAtt

SIZES = [(2, 6, 6), (2, 13, 17), (2, 1, 1), (1, 13, 17), (1, 1, 1)]  # (N, H, W)


def cbam_ref(m, x, bn_ref, training, order=('mean', 'max')):
    w1, w2 = m.fc1.weight.flatten(1), m.fc2.weight.flatten(1)

    def mlp(v):
        return F.relu(v @ w1.T + m.fc1.bias) @ w2.T + m.fc2.bias

    mc = torch.sigmoid(mlp(x.mean((2, 3))) + mlp(x.amax((2, 3))))[:, :, None, None]
    x1 = x * mc
    pooled = {'mean': x1.mean(1, keepdim=True), 'max': x1.amax(1, keepdim=True)}
    k = m.spatial_conv.weight.shape[-1]
    z = F.conv2d(torch.cat([pooled[o] for o in order], 1), m.spatial_conv.weight, padding=k // 2)
    return x1 * torch.sigmoid(bn_ref(z, m.spatial_bn, training))


def coordatt_ref(m, x, bn_ref, training):
    h = x.shape[2]
    cat = torch.cat([x.mean(3), x.mean(2)], 2)  # N×C×(H+W)
    y = torch.einsum('mc,ncl->nml', m.conv1.weight.flatten(1), cat) + m.conv1.bias[:, None]
    y = bn_ref(y[..., None], m.bn1, training)[..., 0]
    y = y * torch.clamp(y + 3, 0, 6) / 6
    a_h = torch.sigmoid(torch.einsum('cm,nml->ncl', m.conv_h.weight.flatten(1), y[:, :, :h]) + m.conv_h.bias[:, None])
    a_w = torch.sigmoid(torch.einsum('cm,nml->ncl', m.conv_w.weight.flatten(1), y[:, :, h:]) + m.conv_w.bias[:, None])
    return x * a_h[:, :, :, None] * a_w[:, :, None, :]


CASES = [(lambda: CBAM(16, rd_ratio=1 / 4, spatial_kernel_size=3), cbam_ref),
         (lambda: CBAM(16, rd_channels=3), cbam_ref),
         (lambda: CoordAtt(16, min_rd_channels=4), coordatt_ref)]


@pytest.mark.parametrize('make, ref', CASES)
@pytest.mark.parametrize('n, h, w', SIZES)
@pytest.mark.parametrize('training', [True, False])
def test_matches_formula(make, ref, n, h, w, training, randomize, bn_ref):
    m = randomize(make()).double().train(training)
    x = torch.randn(n, 16, h, w, dtype=torch.float64)
    x0 = x.clone()
    expected = ref(m, x, bn_ref, training)
    out = m(x)
    assert out.shape == x.shape and out.dtype == x.dtype
    torch.testing.assert_close(out, expected, rtol=1e-9, atol=1e-9)
    assert torch.equal(x, x0)


@pytest.mark.parametrize('make, ref', CASES)
def test_float32_train(make, ref, randomize, bn_ref):
    m = randomize(make()).train()
    x = torch.randn(2, 16, 5, 3)
    expected = ref(m, x, bn_ref, True)
    torch.testing.assert_close(m(x), expected, rtol=1e-4, atol=1e-5)


def test_cbam_spatial_pooling_order_is_mean_max(randomize, bn_ref):
    m = randomize(CBAM(16, rd_ratio=1 / 4)).double().eval()
    x = torch.randn(2, 16, 6, 5, dtype=torch.float64)
    out = m(x)
    torch.testing.assert_close(out, cbam_ref(m, x, bn_ref, False))
    assert not torch.allclose(out, cbam_ref(m, x, bn_ref, False, order=('max', 'mean')))


def test_cbam_batch1_1x1_train_leaves_spatial_stats(randomize):
    m = randomize(CBAM(16, rd_ratio=1 / 4)).double().train()
    before = {k: v.clone() for k, v in m.spatial_bn.state_dict().items()}
    m(torch.randn(1, 16, 1, 1, dtype=torch.float64))
    torch.testing.assert_close(m.spatial_bn.state_dict(), before)
    m(torch.randn(1, 16, 4, 4, dtype=torch.float64))  # several positions: ordinary BN update
    assert not torch.allclose(m.spatial_bn.running_mean, before['running_mean'])


@pytest.mark.parametrize('c, rd, k', [(32, 2, 7), (64, 4, 3), (16, 1, 7)])
def test_cbam_param_count(c, rd, k):
    m = CBAM(c, spatial_kernel_size=k)
    assert m.fc1.out_channels == rd and m.spatial_conv.padding == (k // 2, k // 2)
    assert m.spatial_conv.bias is None and isinstance(m.spatial_bn, nn.BatchNorm2d)
    # shared MLP with biases + k×k conv on 2 maps (no bias) + BN(1)
    assert sum(p.numel() for p in m.parameters()) == 2 * c * rd + c + rd + 2 * k * k + 2


@pytest.mark.parametrize('c, kwargs, mip', [(64, {}, 8), (512, {}, 16), (1024, {}, 32),
                                            (64, {'min_rd_channels': 4}, 4), (64, {'rd_ratio': 1 / 4}, 16)])
def test_coordatt_width_and_param_count(c, kwargs, mip):
    m = CoordAtt(c, **kwargs)
    assert m.conv1.out_channels == mip and isinstance(m.act, nn.Hardswish)
    # conv1 (bias) + BN + conv_h, conv_w (bias)
    assert sum(p.numel() for p in m.parameters()) == c * mip + mip + 2 * mip + 2 * (mip * c + c)


def test_coordatt_gate_is_rank_one_per_channel(randomize):
    m = randomize(CoordAtt(16, min_rd_channels=4)).double().eval()
    x = torch.rand(2, 16, 7, 9, dtype=torch.float64) + 0.5  # positive, so gate = out / x
    gate = m(x) / x
    s = torch.linalg.svdvals(gate)  # per (n, c) H×W matrix
    assert (s[..., 1:] < 1e-10 * s[..., :1]).all()
    assert (s[..., 0] > 0).all()
    # not trivially rank one (constant): the gate varies along both H and W
    assert gate.std(2).max() > 1e-2 and gate.std(3).max() > 1e-2
    maps = m.attention_maps(x)
    assert maps['h'].shape == (2, 16, 7, 1) and maps['w'].shape == (2, 16, 1, 9)
    torch.testing.assert_close(gate, maps['h'] * maps['w'])


@pytest.mark.parametrize('make', [c[0] for c in CASES])
@pytest.mark.parametrize('training', [True, False])
def test_attention_maps_multiply_back(make, training, randomize):
    m = randomize(make()).double().train(training)
    x = torch.randn(2, 16, 5, 7, dtype=torch.float64)
    maps = m.attention_maps(x)
    out = m(x)
    if isinstance(m, CBAM):
        assert maps['channel'].shape == (2, 16, 1, 1) and maps['spatial'].shape == (2, 1, 5, 7)
        torch.testing.assert_close(x * maps['channel'] * maps['spatial'], out)
    else:
        torch.testing.assert_close(x * maps['h'] * maps['w'], out)
    for v in maps.values():
        assert ((v > 0) & (v < 1)).all()


def test_cbam_gradients(randomize, check_grads):
    m = randomize(CBAM(16, rd_ratio=1 / 4)).double().train()
    check_grads(m, [torch.randn(2, 16, 5, 3, dtype=torch.float64)])


def test_coordatt_gradients(randomize, check_grads):
    m = randomize(CoordAtt(16, min_rd_channels=4)).double()
    x = torch.randn(2, 16, 5, 3, dtype=torch.float64)
    check_grads(m.train(), [x], zero_grad_params=['conv1.bias'])  # cancelled by train-mode BN
    m.zero_grad()
    check_grads(m.eval(), [x])


@pytest.mark.parametrize('make', [lambda: CBAM(4, rd_ratio=1 / 2, spatial_kernel_size=3),
                                  lambda: CoordAtt(4, min_rd_channels=2)])
def test_gradcheck(make, randomize):
    m = randomize(make()).double().eval()
    x = torch.randn(2, 4, 3, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(m, (x,))


def test_cbam_spatial_bn_has_the_official_momentum(randomize):
    """Official BasicConv: BatchNorm2d(eps=1e-5, momentum=0.01): running statistics move 1% per step."""
    m = randomize(CBAM(16, rd_ratio=1 / 4)).double().train()
    assert m.spatial_bn.momentum == 0.01 and m.spatial_bn.eps == 1e-5
    x = torch.randn(2, 16, 5, 4, dtype=torch.float64)
    before = m.spatial_bn.running_mean.clone()
    seen = []
    m.spatial_conv.register_forward_hook(lambda mod, i, o: seen.append(o.detach()))
    m(x)
    torch.testing.assert_close(m.spatial_bn.running_mean, 0.99 * before + 0.01 * seen[0].mean((0, 2, 3)))


@pytest.mark.parametrize('make', [c[0] for c in CASES])
@pytest.mark.parametrize('training', [True, False])
def test_trace_records_one_graph_with_and_without_grad(make, training):
    """torch.jit.trace's check re-runs the module; an in-place branch on the grad mode made the graphs differ."""
    torch.manual_seed(0)
    m = make().train(training)
    x = torch.randn(2, 16, 5, 7)
    traced = torch.jit.trace(m, x, check_inputs=[(torch.randn(2, 16, 5, 7),)])
    x2 = torch.randn(2, 16, 6, 3)
    torch.testing.assert_close(traced(x2), m(x2))
