"""add_attention / replace_modules on torchvision ResNets: published parameter counts, unchanged weight names.

Published figures reproduced (parameters, counted on the meta device: no memory, no forward, no download):
  ResNet-50 25.56M (torchvision: 25,557,032)
  SE-ResNet-50, r=16, SE on every bottleneck's residual branch before the sum: 28.1M (Hu et al., Table) -> 28,088,024
  CBAM-ResNet-50, r=16, 7x7: 28.09M (Woo et al., Table) -> 28,089,624
  ECA-ResNet-50: "about 80" extra parameters -> exactly 80 with the official per-stage kernels 3, 5, 5, 7; the
    adaptive formula on the bottlenecks' output widths (256..2048) gives 5, 5, 5, 7, i.e. 86
  SKNet-50 = ResNeXt-50 32x4d with each bottleneck's 3x3 conv (+ its BN, ReLU) replaced by SK[M=2, G=32, r=16, L=32]:
    the SK paper's Table 2 gives 27.5M (4.47 GFLOPs) -> 27,479,784 (and 4.46 G multiply-adds at 224 px).
    The 26.15M sometimes quoted for "SK-ResNet-50" is not reproduced: no configuration tried gives it (ResNeXt-50 +
    SK with 3x3/5x5 branches: 29.99M; SK with G=32 in ResNet-50's narrower, non-grouped bottlenecks: 15.32M;
    with G=1: 37.25M), and the paper's own table lists 27.5M for its ResNeXt-style SKNet-50.
"""
import copy
import io

import pytest
import torch
import torchvision
from torch import nn

import yolo_attn  # noqa: F401
from yolo_attn.errors import ModelConfigError
from yolo_attn.inject import add_attention, count_parameters, remove_attention, replace_modules, select_modules
from yolo_attn.modules import CBAM, ECA, SE, SelectiveKernel

RESNET50 = 25_557_032


def meta(arch="resnet50"):
    with torch.device("meta"):
        return getattr(torchvision.models, arch)(weights=None)


def test_resnet50_baseline():
    assert count_parameters(meta()) == RESNET50
    assert round(RESNET50 / 1e6, 2) == 25.56


def test_se_resnet50_matches_the_published_28_1m():
    m = meta()
    names = add_attention(m, "se", after="layer*.*.bn3")
    assert len(names) == 16 and names[0] == "layer1.0.bn3" and names[-1] == "layer4.2.bn3"
    n = count_parameters(m)
    # per bottleneck with C outputs: FC C -> C/16 and C/16 -> C, both with bias
    assert n - RESNET50 == sum(k * (2 * c * (c // 16) + c + c // 16) for k, c in [(3, 256), (4, 512), (6, 1024),
                                                                               (3, 2048)])
    assert n == 28_088_024 and round(n / 1e6, 1) == 28.1


def test_cbam_resnet50_matches_the_published_28_09m():
    m = meta()
    add_attention(m, "cbam", after="layer*.*.bn3")
    n = count_parameters(m)
    assert n == 28_089_624 and round(n / 1e6, 2) == 28.09
    assert all(type(m.get_submodule(f"{name}.attn")) is CBAM for name, _ in select_modules(m, "layer*.*.bn3"))


def test_eca_resnet50_adds_about_80_parameters():
    m = meta()
    for stage, k in zip((1, 2, 3, 4), (3, 5, 5, 7)):  # the official ECA-ResNet-50 kernels
        add_attention(m, "eca", after=f"layer{stage}.*.bn3", kernel_size=k)
    assert count_parameters(m) - RESNET50 == 3 * 3 + 4 * 5 + 6 * 5 + 3 * 7 == 80
    adaptive = meta()
    add_attention(adaptive, "eca", after="layer*.*.bn3")  # k from the paper's formula: 5, 5, 5, 7
    assert [adaptive.get_submodule(f"layer{s}.0.bn3.attn").conv.kernel_size[0] for s in (1, 2, 3, 4)] == [5, 5, 5, 7]
    assert count_parameters(adaptive) - RESNET50 == 86


def sknet50():
    m = meta("resnext50_32x4d")
    assert count_parameters(m) == 25_028_904
    replaced = replace_modules(m, "layer*.*.conv2", lambda name, c: SelectiveKernel(
        c.in_channels, c.out_channels, stride=c.stride[0], groups=c.groups))
    replace_modules(m, "layer*.*.bn2", lambda name, bn: nn.Identity())  # SK has its own BN (and ReLU) per branch
    assert len(replaced) == 16
    return m


def test_sknet50_matches_the_papers_27_5m():
    m = sknet50()
    assert type(m.layer3[0].conv2) is SelectiveKernel and m.layer3[0].conv2.branches[0][0].stride == (2, 2)
    n = count_parameters(m)
    assert n == 27_479_784 and round(n / 1e6, 1) == 27.5


# ---------------------------------------------------------------------------------------------------------------
# Weight names, behaviour, robustness (real tensors, tiny inputs)


@pytest.fixture(scope="module")
def resnet50():
    torch.manual_seed(0)
    return torchvision.models.resnet50(weights=None).eval()


def test_existing_weights_keep_their_names_and_tensors(resnet50):
    m = copy.deepcopy(resnet50)
    before = m.state_dict()
    add_attention(m, "se", after="layer*.*.bn3")
    after = m.state_dict()
    new = [k for k in after if k not in before]
    assert list(k for k in after if k in before) == list(before)  # same keys, same order
    assert all(after[k].data_ptr() == v.data_ptr() for k, v in before.items())  # the very same tensors
    assert new and all(".bn3.attn." in k for k in new)
    assert "layer1.0.bn3.attn.fc1.weight" in new
    fresh = copy.deepcopy(m)
    result = fresh.load_state_dict(resnet50.state_dict(), strict=False)  # an original checkpoint loads
    assert sorted(result.missing_keys) == sorted(new) and result.unexpected_keys == []


def test_the_attention_runs_after_the_chosen_module(resnet50):
    m = copy.deepcopy(resnet50)
    add_attention(m, "se", after="layer*.*.bn3")
    block = m.layer2[0]
    se = block.bn3.attn
    assert type(se) is SE and se.fc1.in_channels == 512 and not se.training
    x = torch.randn(1, 256, 9, 7)
    with torch.no_grad():
        out = torch.relu(block.bn1(block.conv1(x)))
        out = torch.relu(block.bn2(block.conv2(out)))
        out = block.bn3.forward(block.conv3(out))  # .forward: the BN alone, without the hook
        expected = torch.relu(se(out) + block.downsample(x))
        torch.testing.assert_close(block(x), expected)
        torch.testing.assert_close(block.bn3(block.conv3(torch.relu(block.bn2(block.conv2(torch.relu(
            block.bn1(block.conv1(x)))))))), se(out))


def test_whole_model_forward_deepcopy_pickle_and_removal(resnet50):
    m = copy.deepcopy(resnet50)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        plain = m(x)
        add_attention(m, "cbam", after="layer*.*.bn3", rd_ratio=1 / 8)
        assert m.layer1[0].bn3.attn.fc1.out_channels == 32
        out = m(x)
        assert out.shape == plain.shape and not torch.allclose(out, plain)
        twin = copy.deepcopy(m)
        torch.testing.assert_close(twin(x), out)
        m.layer4[2].bn3.attn.fc2.bias.add_(1.0)  # the copy has its own attention, not a hook onto the original
        torch.testing.assert_close(twin(x), out)
        buf = io.BytesIO()
        torch.save(twin, buf)
        buf.seek(0)
        loaded = torch.load(buf, weights_only=False)
        torch.testing.assert_close(loaded(x), out)
        freed = remove_attention(loaded)
        assert len(freed) == 16
        assert list(loaded.state_dict()) == list(resnet50.state_dict())
        torch.testing.assert_close(loaded(x), plain)


def test_choose_by_callable_or_class_with_explicit_channels():
    torch.manual_seed(0)
    m = torchvision.models.resnet18(weights=None).double().train()
    names = add_attention(m, "eca", after=lambda name, mod: name.endswith("bn2") and name.startswith("layer4"))
    assert names == ["layer4.0.bn2", "layer4.1.bn2"]
    attn = m.layer4[0].bn2.attn
    assert type(attn) is ECA and attn.conv.weight.dtype == torch.float64 and attn.training
    blocks = add_attention(m, "se", after=torchvision.models.resnet.BasicBlock,
                           channels=lambda name, block: block.bn2.num_features)
    assert len(blocks) == 8 and m.layer3[1].attn.fc1.in_channels == 256
    m.eval()
    assert not m.layer3[1].attn.training
    with torch.no_grad():
        assert m(torch.randn(1, 3, 32, 32, dtype=torch.float64)).shape == (1, 1000)


def test_a_custom_module_class_can_be_added():
    m = meta("resnet18")
    add_attention(m, lambda c: nn.BatchNorm2d(c), after="layer1.*.bn2", name="extra")
    assert type(m.layer1[0].bn2.extra) is nn.BatchNorm2d and m.layer1[0].bn2.extra.weight.is_meta


@pytest.mark.parametrize("layer, after, kwargs, error, match", [
    ("se", "nothing.*", {}, ValueError, "no submodule"),
    ("aff", "layer*.*.bn2", {}, ValueError, "AFF cannot be added"),
    ("selectivekernel", "layer*.*.bn2", {}, ValueError, "replace_modules"),
    ("cbma", "layer*.*.bn2", {}, ModelConfigError, "Did you mean 'CBAM'"),
    ("se", "layer1.0", {}, TypeError, "pass channels="),
    ("se", 42, {}, TypeError, "glob pattern"),
])
def test_clear_errors(layer, after, kwargs, error, match):
    with pytest.raises(error, match=match):
        add_attention(meta("resnet18"), layer, after, **kwargs)


def test_refuses_to_shadow_an_attribute_and_adds_nothing():
    m = meta("resnet18")
    add_attention(m, "se", after="layer1.0.bn1")
    before = list(m.state_dict())
    with pytest.raises(ValueError, match="already has an attribute 'attn'"):
        add_attention(m, "eca", after="layer1.*.bn1")
    assert list(m.state_dict()) == before
    add_attention(m, "eca", after="layer1.*.bn1", name="eca")
    assert type(m.layer1[0].bn1.eca) is ECA


def test_replace_modules_keeps_other_names_and_refuses_non_modules():
    m = meta("resnet18")
    before = set(m.state_dict())
    replace_modules(m, "layer1.0.conv1", lambda name, conv: nn.Conv2d(64, 64, 3, padding=1, bias=True))
    after = set(m.state_dict())
    assert after - before == {"layer1.0.conv1.bias"} and before <= after
    with pytest.raises(TypeError, match="not an nn.Module"):
        replace_modules(m, "fc", lambda name, mod: 3)
