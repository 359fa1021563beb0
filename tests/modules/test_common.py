import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import yolo_attn.modules as mods
from yolo_attn.modules import PooledBatchNorm2d, get_act_layer, make_rd_channels

KNOWN = ['relu', 'relu6', 'silu', 'swish', 'hard_swish', 'hswish', 'sigmoid', 'hard_sigmoid',
         'gelu', 'tanh', 'identity']


def test_every_shipped_layer_is_declared_exported_and_registered():
    from yolo_attn.registry import registered_layers

    assert [spec.cls for spec in registered_layers()][:len(mods.LAYERS)] == list(mods.LAYERS)
    for cls in mods.LAYERS:
        assert issubclass(cls, mods.AttentionModule) and cls.LAYER_INFO.name == cls.__name__
        assert cls.__name__ in mods.__all__
    for name in mods.__all__:
        assert getattr(mods, name) is not None


@pytest.mark.parametrize('name, fn', [
    ('relu', F.relu), ('relu6', F.relu6), ('silu', F.silu), ('swish', F.silu),
    ('hard_swish', lambda t: t * F.relu6(t + 3) / 6), ('hswish', lambda t: t * F.relu6(t + 3) / 6),
    ('sigmoid', torch.sigmoid), ('hard_sigmoid', lambda t: F.relu6(t + 3) / 6),
    ('gelu', F.gelu), ('tanh', torch.tanh), ('identity', lambda t: t + 0)])
def test_get_act_layer_names_compute_their_function(name, fn):
    t = torch.linspace(-5, 5, 41, dtype=torch.float64)
    act = get_act_layer(name)()
    assert isinstance(act, nn.Module)
    torch.testing.assert_close(act(t), fn(t))


def test_get_act_layer_case_and_classes():
    assert get_act_layer('SiLU') is nn.SiLU
    assert get_act_layer(nn.Mish) is nn.Mish


def test_get_act_layer_unknown_name_lists_known():
    with pytest.raises(ValueError) as err:
        get_act_layer('__import__("os")')
    for name in KNOWN:
        assert name in str(err.value)


@pytest.mark.parametrize('bad', [nn.ReLU(), 3, int])
def test_get_act_layer_rejects_non_module_classes(bad):
    with pytest.raises(TypeError):
        get_act_layer(bad)


@pytest.mark.parametrize('args, kwargs, expected', [
    ((64, 1 / 16), {}, 4), ((64, 1 / 16), {'rd_channels': 10}, 10), ((8, 1 / 16), {}, 1),
    ((8, 1 / 16), {'min_channels': 8}, 8), ((512, 1 / 32), {'min_channels': 8}, 16),
    ((100, 1 / 16), {}, 6), ((98, 1 / 49), {}, 2), ((96, 1 / 4), {}, 24)])
def test_make_rd_channels(args, kwargs, expected):
    assert make_rd_channels(*args, **kwargs) == expected


def _bn_pair(c, seed=0):
    g = torch.Generator().manual_seed(seed)
    ref = nn.BatchNorm2d(c)
    with torch.no_grad():
        ref.weight.copy_(torch.rand(c, generator=g) + 0.5)
        ref.bias.copy_(torch.randn(c, generator=g))
        ref.running_mean.copy_(torch.randn(c, generator=g))
        ref.running_var.copy_(torch.rand(c, generator=g) + 0.5)
    pooled = PooledBatchNorm2d(c)
    pooled.load_state_dict(ref.state_dict())
    return ref, pooled


@pytest.mark.parametrize('shape', [(2, 3, 1, 1), (4, 3, 5, 7), (1, 3, 2, 1)])
@pytest.mark.parametrize('training', [True, False])
def test_pooled_bn_equals_batchnorm_when_bn_works(shape, training):
    ref, pooled = _bn_pair(3)
    ref.train(training)
    pooled.train(training)
    x = torch.randn(shape)
    for _ in range(2):
        torch.testing.assert_close(pooled(x), ref(x))
    torch.testing.assert_close(pooled.state_dict(), ref.state_dict())


def test_pooled_bn_single_value_uses_running_stats_without_update():
    ref, pooled = _bn_pair(3)
    pooled.train()
    x = torch.randn(1, 3, 1, 1)
    with pytest.raises(ValueError):
        ref.train()(x)  # why the fallback exists
    before = {k: v.clone() for k, v in pooled.state_dict().items()}
    out = pooled(x)
    expected = ((x - before['running_mean'].view(1, 3, 1, 1)) / torch.sqrt(before['running_var'].view(1, 3, 1, 1) + 1e-5)
                * before['weight'].view(1, 3, 1, 1) + before['bias'].view(1, 3, 1, 1))
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(pooled.state_dict(), before)
    assert pooled.training
    out.sum().backward()
    assert pooled.weight.grad.abs().min() > 0 and pooled.bias.grad.abs().min() > 0


@pytest.mark.parametrize('cls', [mods.SE, mods.ECA, mods.CBAM, mods.CoordAtt, mods.MSCAM])
def test_single_input_attention_maps_reject_second_input(cls):
    x = torch.randn(2, 16, 3, 3)
    with pytest.raises(ValueError):
        cls(16).attention_maps(x, x)


@pytest.mark.parametrize('cls', [mods.SE, mods.ECA, mods.CBAM, mods.CoordAtt, mods.MSCAM, mods.AFF, mods.iAFF])
def test_inplace_activations_as_set_by_yolov5(cls, randomize):
    """yolov5's initialize_weights sets inplace=True on ReLU/Hardswish/SiLU...: same results."""
    import copy
    m = randomize(cls(16)).double().train()
    m2 = copy.deepcopy(m)
    acts = [a for a in m2.modules() if hasattr(a, 'inplace')]
    assert acts or cls is mods.ECA
    for a in acts:
        a.inplace = True
    xs = [torch.randn(2, 16, 5, 4, dtype=torch.float64, requires_grad=True)
          for _ in range(2 if cls in (mods.AFF, mods.iAFF) else 1)]
    xs0 = [x.detach().clone() for x in xs]
    outs = [mod(*xs) for mod in (m, m2)]
    torch.testing.assert_close(outs[0], outs[1])
    grads = [torch.autograd.grad(o.square().sum(), xs) for o in outs]
    torch.testing.assert_close(grads[0], grads[1])
    assert all(torch.equal(x, x0) for x, x0 in zip(xs, xs0))
