import pytest
import torch
import torch.nn.functional as F

from yolo_attn.modules import AFF, MSCAM, PooledBatchNorm2d, iAFF

SIZES = [(2, 6, 6), (2, 13, 17), (2, 1, 1), (1, 13, 17)]  # (N, H, W); N=1, 1×1 train: local BN raises


def _branch(seq, v, bn_ref, training):
    conv1, bn1, _, conv2, bn2 = seq
    h = F.relu(bn_ref(torch.einsum('oc,nchw->nohw', conv1.weight.flatten(1), v), bn1, training))
    return bn_ref(torch.einsum('oc,nchw->nohw', conv2.weight.flatten(1), h), bn2, training)


def m_ref(cam, x, bn_ref, training):
    """M(X) = sigmoid(L(X) + g(GAP(X)))."""
    g = _branch(cam.global_att, x.mean((2, 3), keepdim=True), bn_ref, training)
    return torch.sigmoid(_branch(cam.local_att, x, bn_ref, training) + g)


def mscam_ref(m, x, y, bn_ref, training):
    return x * m_ref(m, x, bn_ref, training)


def aff_ref(m, x, y, bn_ref, training):
    w = m_ref(m.mscam, x + y, bn_ref, training)
    return w * x + (1 - w) * y


def iaff_ref(m, x, y, bn_ref, training):
    w1 = m_ref(m.mscam1, x + y, bn_ref, training)
    w2 = m_ref(m.mscam2, w1 * x + (1 - w1) * y, bn_ref, training)
    return w2 * x + (1 - w2) * y


CASES = [(lambda: MSCAM(16), mscam_ref), (lambda: AFF(16, rd_channels=3), aff_ref),
         (lambda: iAFF(16, rd_ratio=1 / 8), iaff_ref)]


def _inputs(m, n, h, w, dtype=torch.float64):
    return [torch.randn(n, 16, h, w, dtype=dtype) for _ in range(1 if isinstance(m, MSCAM) else 2)]


@pytest.mark.parametrize('make, ref', CASES)
@pytest.mark.parametrize('n, h, w', SIZES)
@pytest.mark.parametrize('training', [True, False])
def test_matches_formula(make, ref, n, h, w, training, randomize, bn_ref):
    m = randomize(make()).double().train(training)
    xs = _inputs(m, n, h, w)
    xs0 = [x.clone() for x in xs]
    expected = ref(m, xs[0], xs[-1], bn_ref, training)
    out = m(*xs)
    assert out.shape == xs[0].shape and out.dtype == xs[0].dtype
    torch.testing.assert_close(out, expected, rtol=1e-9, atol=1e-9)
    assert all(torch.equal(a, b) for a, b in zip(xs, xs0))


@pytest.mark.parametrize('make, ref', CASES)
def test_float32_train(make, ref, randomize, bn_ref):
    m = randomize(make()).train()
    xs = _inputs(m, 2, 5, 3, torch.float32)
    expected = ref(m, xs[0], xs[-1], bn_ref, True)
    torch.testing.assert_close(m(*xs), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('make, ref', CASES)
def test_batch1_train_uses_running_stats_after_pooling(make, ref, randomize, bn_ref):
    m = randomize(make()).double().train()
    pooled = [b for b in m.modules() if isinstance(b, PooledBatchNorm2d)]
    local = [b for b in m.modules() if type(b) is torch.nn.BatchNorm2d]
    assert len(pooled) == len(local) > 0
    before = [{k: v.clone() for k, v in b.state_dict().items()} for b in pooled + local]
    xs = _inputs(m, 1, 5, 4)
    expected = ref(m, xs[0], xs[-1], bn_ref, True)
    torch.testing.assert_close(m(*xs), expected, rtol=1e-9, atol=1e-9)
    for b, old in zip(pooled, before):
        torch.testing.assert_close(b.state_dict(), old)
    for b, old in zip(local, before[len(pooled):]):  # local BNs did train on the 20 positions
        assert not torch.allclose(b.running_mean, old['running_mean'])


@pytest.mark.parametrize('c, rd, kwargs', [(16, 4, {}), (64, 16, {}), (64, 8, {'rd_ratio': 1 / 8}),
                                           (32, 5, {'rd_channels': 5})])
def test_param_counts(c, rd, kwargs):
    # per branch: two bias-free 1x1 convs (2·C·rd) + BN(rd) + BN(C); two branches per MS-CAM
    one = 2 * (2 * c * rd + 2 * rd + 2 * c)
    for cls, copies in [(MSCAM, 1), (AFF, 1), (iAFF, 2)]:
        m = cls(c, **kwargs)
        assert sum(p.numel() for p in m.parameters()) == copies * one


def test_iaff_stages_share_no_parameters(randomize, bn_ref):
    m = randomize(iAFF(16)).double().eval()
    ids1 = {id(p) for p in m.mscam1.parameters()}
    assert ids1.isdisjoint(id(p) for p in m.mscam2.parameters())
    x, y = torch.randn(2, 2, 16, 4, 4, dtype=torch.float64)
    out = m(x, y)
    with torch.no_grad():  # the second stage really uses its own global branch
        m.mscam2.global_att[0].weight.mul_(-1)
    assert not torch.allclose(m(x, y), out)
    torch.testing.assert_close(m(x, y), iaff_ref(m, x, y, bn_ref, False))


@pytest.mark.parametrize('cls', [AFF, iAFF])
@pytest.mark.parametrize('training', [True, False])
def test_fusing_a_map_with_itself_returns_it(cls, training, randomize):
    m = randomize(cls(16)).double().train(training)
    x = torch.randn(2, 16, 5, 7, dtype=torch.float64)
    torch.testing.assert_close(m(x, x), x, rtol=1e-12, atol=1e-12)
    y = torch.randn_like(x)
    assert not torch.allclose(m(x, y), x) and not torch.allclose(m(x, y), y)


@pytest.mark.parametrize('cls', [AFF, iAFF])
def test_calling_conventions_and_errors(cls, randomize):
    m = randomize(cls(16)).double().eval()
    x, y = torch.randn(2, 2, 16, 3, 5, dtype=torch.float64)
    out = m(x, y)
    torch.testing.assert_close(m([x, y]), out)
    torch.testing.assert_close(m((x, y)), out)
    torch.testing.assert_close(m.attention_maps([x, y]), m.attention_maps(x, y))
    with pytest.raises(ValueError, match='same shape'):
        m(x, y[:, :, :2])
    with pytest.raises(ValueError, match='same shape'):
        m([x, torch.randn(2, 8, 3, 5, dtype=torch.float64)])
    with pytest.raises(ValueError, match='two inputs'):
        m([x, y, x])
    with pytest.raises(ValueError, match='two inputs'):
        m(x)


@pytest.mark.parametrize('training', [True, False])
def test_attention_maps_are_the_forward_gates(training, randomize):
    x, y = torch.randn(2, 2, 16, 5, 7, dtype=torch.float64)
    cam = randomize(MSCAM(16)).double().train(training)
    maps = cam.attention_maps(x)
    assert set(maps) == {'fusion'} and maps['fusion'].shape == x.shape
    torch.testing.assert_close(x * maps['fusion'], cam(x))

    aff = randomize(AFF(16)).double().train(training)
    w = aff.attention_maps(x, y)['fusion']
    torch.testing.assert_close(w * x + (1 - w) * y, aff(x, y))

    iaff = randomize(iAFF(16)).double().train(training)
    maps = iaff.attention_maps(x, y)
    assert set(maps) == {'fusion1', 'fusion2'}
    w1, w2 = maps['fusion1'], maps['fusion2']
    torch.testing.assert_close(iaff.mscam2.attention_maps(w1 * x + (1 - w1) * y)['fusion'], w2)
    torch.testing.assert_close(w2 * x + (1 - w2) * y, iaff(x, y))
    assert not torch.allclose(w1, w2)


@pytest.mark.parametrize('make', [c[0] for c in CASES])
def test_gradients(make, randomize, check_grads):
    m = randomize(make()).double().train()
    check_grads(m, _inputs(m, 2, 5, 3))


@pytest.mark.parametrize('make', [lambda: MSCAM(4, rd_ratio=1 / 2), lambda: AFF(4, rd_ratio=1 / 2),
                                  lambda: iAFF(4, rd_ratio=1 / 2)])
def test_gradcheck(make, randomize):
    m = randomize(make()).double().eval()
    xs = tuple(torch.randn(2, 4, 3, 2, dtype=torch.float64, requires_grad=True)
               for _ in range(1 if isinstance(m, MSCAM) else 2))
    assert torch.autograd.gradcheck(m, xs)
