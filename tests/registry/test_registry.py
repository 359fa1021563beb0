"""The layer registry and the timm-style factory."""
import inspect

import pytest
import torch
from torch import nn

import yolo_attn
from yolo_attn import modules
from yolo_attn.errors import ModelConfigError
from yolo_attn.registry import layers
from yolo_attn.registry.layers import LayerSpec

CHANNEL_CHANGING = {"DoubleAttn", "SelectiveKernel", "SplitAttn", "SelfCalibConv"}


@pytest.fixture
def isolated_registry(monkeypatch):
    """A copy of the registry for tests that register layers: the global one is restored afterwards."""
    monkeypatch.setattr(layers, "_REGISTRY", dict(layers._REGISTRY))
    return layers._REGISTRY


class Gate(nn.Module):
    def __init__(self, channels, scale=1.0):
        super().__init__()
        self.w = nn.Parameter(torch.full((1, channels, 1, 1), float(scale)))

    def forward(self, x):
        return x * self.w


def test_builtin_layers_are_registered_once_each_as_module_classes():
    specs = yolo_attn.registered_layers()
    assert [s.cls for s in specs] == list(modules.LAYERS)  # every shipped class, in declaration order
    assert len({s.name.lower() for s in specs}) == len(specs)
    for spec in specs:
        assert inspect.isclass(spec.cls) and issubclass(spec.cls, nn.Module), spec.name
    assert yolo_attn.layer_names() == [s.name for s in specs]


@pytest.mark.parametrize("name", ["CBAM", "cbam", "Cbam", "cBaM"])
def test_names_are_case_insensitive(name):
    m = yolo_attn.create_attn(name, 32)
    assert type(m) is modules.CBAM
    assert m.fc1.in_channels == 32 and m.fc2.out_channels == 32
    assert yolo_attn.find_layer(name) is yolo_attn.find_layer("CBAM")


@pytest.mark.parametrize("alias, cls", [("CA", modules.CoordAtt), ("ca", modules.CoordAtt),
                                        ("MS-CAM", modules.MSCAM), ("ms-cam", modules.MSCAM)])
def test_aliases_resolve_to_their_layer(alias, cls):
    assert yolo_attn.find_layer(alias).cls is cls
    assert type(yolo_attn.create_attn(alias, 16)) is cls


@pytest.mark.parametrize("name", [s.name for s in yolo_attn.registered_layers()
                                  if not s.changes_channels and not s.members])
def test_create_attn_builds_a_working_layer_of_the_given_width(name):
    m = yolo_attn.create_attn(name, 128).eval()  # the default groups of SGE (64), EMA (32), ShuffleAttn (2·64) divide it
    x = torch.randn(2, 128, 8, 8)
    with torch.no_grad():
        y = m(x, torch.randn_like(x)) if yolo_attn.find_layer(name).inputs == 2 else m(x)
    assert y.shape == x.shape


@pytest.mark.parametrize("name", sorted(CHANNEL_CHANGING))
def test_create_attn_channel_changing_layers_take_the_output_channels_next(name):
    assert yolo_attn.find_layer(name).changes_channels
    m = yolo_attn.create_attn(name, 64, 96).eval()
    with torch.no_grad():
        assert m(torch.randn(2, 64, 8, 8)).shape == (2, 96, 8, 8)
        assert yolo_attn.create_attn(name, 64).eval()(torch.randn(1, 64, 4, 4)).shape == (1, 64, 4, 4)


def test_create_attn_gate_chain_and_groups():
    gate = yolo_attn.create_attn("attngate", 16, 32)  # skip channels, gate channels
    x, g = torch.randn(2, 16, 8, 8), torch.randn(2, 32, 4, 4)
    assert gate(x, g).shape == x.shape and gate([x, g]).shape == x.shape
    chain = yolo_attn.create_attn("chain", 16, "se", ["cbam", {"rd_ratio": 0.25}])
    assert [type(c) for c in chain.children()] == [modules.SE, modules.CBAM]
    assert yolo_attn.create_attn("sge", 128).groups == 64 and yolo_attn.create_attn("SGE", 16, 4).groups == 4


@pytest.mark.parametrize("alias, name", [("A2", "DoubleAttn"), ("sk", "SelectiveKernel"), ("SKConv", "SelectiveKernel"),
                                         ("splat", "SplitAttn"), ("SelfCalibratedConv", "SelfCalibConv"),
                                         ("AttentionGate", "AttnGate"), ("nl", "NonLocal"), ("SCSE", "scSE")])
def test_new_aliases(alias, name):
    assert yolo_attn.find_layer(alias).name == name


def test_the_2020_self_calibrated_conv_is_not_named_scconv():
    """SCConv is the 2023 spatial/channel reconstruction conv: the name must not resolve to Liu et al. 2020."""
    assert yolo_attn.find_layer("SCConv") is None
    assert "2023" in modules.SelfCalibConv.__doc__ and "Liu" in modules.SelfCalibConv.__doc__


def test_create_attn_passes_hyper_parameters_through():
    m = yolo_attn.create_attn("se", 64, rd_ratio=1 / 4)
    assert type(m) is modules.SE
    convs = [c for c in m.modules() if isinstance(c, nn.Conv2d)]
    assert convs[0].out_channels == 16  # 64 * 1/4


def test_unknown_name_lists_known_names_and_suggests_the_closest():
    with pytest.raises(ModelConfigError) as e:
        yolo_attn.create_attn("cbma", 32)
    msg = str(e.value)
    assert "'cbma'" in msg
    assert "Did you mean 'CBAM'?" in msg
    for name in yolo_attn.layer_names():
        assert name in msg


def test_unknown_name_without_a_close_match_still_lists_known_names():
    with pytest.raises(ModelConfigError) as e:
        yolo_attn.create_attn("transformer", 32)
    msg = str(e.value)
    assert "Did you mean" not in msg
    assert "Known: " + ", ".join(yolo_attn.layer_names()) in msg


def test_find_layer_returns_none_for_unknown_names():
    assert yolo_attn.find_layer("nope") is None
    assert yolo_attn.find_layer(None) is None


def test_two_input_layers_are_exactly_aff_iaff_and_the_attention_gate():
    assert {s.name for s in yolo_attn.registered_layers() if s.inputs == 2} == {"AFF", "iAFF", "AttnGate"}
    assert all(s.inputs == 1 for s in yolo_attn.registered_layers() if s.name not in ("AFF", "iAFF", "AttnGate"))
    assert [s.name for s in yolo_attn.registered_layers() if s.out_from_first] == ["AttnGate"]
    assert {s.name for s in yolo_attn.registered_layers() if s.changes_channels} == CHANNEL_CHANGING


def test_every_layer_names_its_paper_and_implements_the_attention_contract():
    for spec in yolo_attn.registered_layers():
        if spec.family != "composite":
            assert "Paper:" in (spec.cls.__doc__ or ""), spec.name
        assert spec.has_gates and issubclass(spec.cls, modules.AttentionModule), spec.name


def _expected_hyper_parameters(cls, n_channel_args=1):
    """Independently: every constructor parameter after `channels` that a YAML row can set by name."""
    params = list(inspect.signature(cls).parameters.values())[n_channel_args:]
    return {p.name: p.default for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


@pytest.mark.parametrize("spec", yolo_attn.registered_layers(), ids=lambda s: s.name)
def test_hyper_parameters_match_the_constructor(spec):
    hp = spec.hyper_parameters
    assert hp == _expected_hyper_parameters(spec.cls, spec.channel_args)
    assert "channels" not in hp and "self" not in hp and "in_channels" not in hp and "out_channels" not in hp
    # every listed hyper-parameter is accepted by name with its default value
    channel_args = (128,) * spec.channel_args
    members = ("se",) if spec.members else ()
    m = yolo_attn.registry.build(spec, *channel_args, *members,
                                 **{k: v for k, v in hp.items() if v is not inspect.Parameter.empty})
    assert isinstance(m, spec.cls)


def test_hyper_parameters_skip_the_output_channels_of_channel_changing_layers():
    class Proj(nn.Module):
        def __init__(self, c1, c2, k=1, *, bias=False):
            super().__init__()
            self.conv = nn.Conv2d(c1, c2, k, bias=bias)

    spec = LayerSpec("Proj", Proj, 1, "", "test", changes_channels=True)
    assert spec.hyper_parameters == {"k": 1, "bias": False}  # keyword-only args can be set from a YAML mapping
    assert LayerSpec("Proj", Proj, 1, "", "test").hyper_parameters == {"c2": inspect.Parameter.empty, "k": 1,
                                                                         "bias": False}


def test_register_adds_a_layer_found_case_insensitively(isolated_registry):
    spec = yolo_attn.register(LayerSpec("MyGate", Gate, 1, "test", "channel", aliases=("gate2",)))
    assert yolo_attn.find_layer("mygate") is spec and yolo_attn.find_layer("GATE2") is spec
    assert "MyGate" in yolo_attn.layer_names()
    assert type(yolo_attn.create_attn("MYGATE", 4, 2.0)) is Gate
    # re-registering the very same spec is a no-op
    assert yolo_attn.register(spec) is spec
    assert yolo_attn.layer_names().count("MyGate") == 1


@pytest.mark.parametrize("name", ["CBAM", "cbam", "se"])
def test_registering_a_duplicate_name_raises(isolated_registry, name):
    before = dict(isolated_registry)
    with pytest.raises(ValueError, match="already registered"):
        yolo_attn.register(LayerSpec(name, Gate, 1, "test", "channel"))
    assert isolated_registry == before
    assert yolo_attn.find_layer(name).cls is not Gate


def test_registering_a_duplicate_alias_raises_and_registers_nothing(isolated_registry):
    before = dict(isolated_registry)
    with pytest.raises(ValueError, match="'ca' is already registered for CoordAtt"):
        yolo_attn.register(LayerSpec("NewGate", Gate, 1, "test", "channel", aliases=("CA",)))
    # the new name must not be left half-registered
    assert yolo_attn.find_layer("NewGate") is None
    assert isolated_registry == before


def test_register_rejects_non_module_classes_and_bad_input_counts(isolated_registry):
    with pytest.raises(TypeError, match="nn.Module"):
        yolo_attn.register(LayerSpec("Fn", lambda c: c, 1, "test", "channel"))
    with pytest.raises(TypeError, match="nn.Module"):
        yolo_attn.register(LayerSpec("Obj", object, 1, "test", "channel"))
    with pytest.raises(ValueError, match="inputs must be 1 or 2"):
        yolo_attn.register(LayerSpec("Three", Gate, 3, "test", "channel"))
    assert yolo_attn.find_layer("Fn") is None and yolo_attn.find_layer("Three") is None


def test_out_from_first_is_only_for_two_input_channel_keeping_layers(isolated_registry):
    spec = LayerSpec("Gate2", Gate, 2, "test", "gate", out_from_first=True)
    assert spec.channel_args == 2
    with pytest.raises(ValueError, match="out_from_first"):
        yolo_attn.register(LayerSpec("Bad1", Gate, 1, "test", "gate", out_from_first=True))
    with pytest.raises(ValueError, match="out_from_first"):
        yolo_attn.register(LayerSpec("Bad2", Gate, 2, "test", "gate", changes_channels=True, out_from_first=True))
    assert yolo_attn.find_layer("Bad1") is None and yolo_attn.find_layer("Bad2") is None


def test_names_of_other_projects_never_shadow_a_layer_we_ship():
    from yolo_attn.registry.elsewhere import ELSEWHERE

    shadowed = sorted(key for key in ELSEWHERE if yolo_attn.find_layer(key) is not None)
    assert not shadowed, f"ELSEWHERE says yolo-attn lacks {shadowed}, but they are registered layers: remove them"
    assert yolo_attn.find_layer("LSKA") is not None and "lska" not in ELSEWHERE  # the check can see a shipped layer
