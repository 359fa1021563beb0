"""The safe parse_model that yolov5 builds every model through once ``yolo_attn`` is imported."""
import contextlib
import copy
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

import yolo_attn
from shipped_params import each_shipped
from yolo_attn import modules
from yolo_attn.errors import ModelConfigError
from yolo_attn.engines.yolov5 import parser
from yolo_attn.registry import layers
from yolo_attn.registry.layers import LayerSpec

from yolov5.models import yolo  # noqa: E402  (after yolo_attn, as users do)
from yolov5.models.common import C3, Concat, Conv

REPO = Path(__file__).resolve().parents[3]
MODEL_YAMLS = REPO / "model_yamls"
YOLOV5_MODELS = Path(yolo.__file__).parent
SCALES = {"n": (0.33, 0.25), "s": (0.33, 0.5), "m": (0.67, 0.75), "l": (1.0, 1.0), "x": (1.33, 1.25)}
SHIPPED = sorted(p.name for p in MODEL_YAMLS.glob("*.yaml"))
# shipped variant: (attention layers, rows added to yolov5s, yolov5s rows it replaces); default: 3 inserted layers
VARIANT_SHAPE = {"yolov5s-aff.yaml": (4, 0, (12, 16, 19, 22)), "yolov5s-iaff.yaml": (4, 0, (12, 16, 19, 22)),
                 "yolov5s-nonlocal.yaml": (1, 1, ()), "yolov5s-doubleattn.yaml": (1, 1, ()),
                 "yolov5s-shsa.yaml": (1, 1, ()), "yolov5s-bilevelroutingattention.yaml": (1, 1, ()),
                 "yolov5s-dattention.yaml": (1, 1, ()),
                 "yolov5s-attngate.yaml": (2, 2, ()), "yolov5s-selectivekernel.yaml": (3, 0, (3, 5, 7)),
                 "yolov5s-splitattn.yaml": (3, 0, (3, 5, 7)), "yolov5s-selfcalibconv.yaml": (3, 0, (3, 5, 7)),
                 **{f"yolov5s-c3{n}.yaml": (0, 0, (2, 4, 6, 8)) for n in ("se", "cbam", "coordatt", "ema")}}


def load(path):
    return yaml.safe_load(Path(path).read_text())


def scaled(d, scale):
    d = copy.deepcopy(d)
    d["depth_multiple"], d["width_multiple"] = SCALES[scale]
    return d


def yolov5s():
    return load(MODEL_YAMLS / "yolov5s.yaml")


def nparams(model):
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(scope="module")
def original_parse_model():
    """yolov5 7.0.14's own eval-based parse_model, as the engine adapter found it."""
    from yolo_attn.engines import yolov5 as engine

    engine.uninstall()
    try:
        original = yolo.parse_model
    finally:
        engine.install()
    assert original is not parser.parse_model and original.__module__ == "yolov5.models.yolo"
    return original


@pytest.fixture
def restore_default_act(monkeypatch):
    """yolov5's own parse_model sets Conv.default_act class-wide when a YAML has 'activation:'."""
    monkeypatch.setattr(Conv, "default_act", Conv.default_act)


# ---------------------------------------------------------------------------------------------------------------
# The stock model, built through yolov5's Model class


def test_import_installs_the_safe_parser():
    assert yolo.parse_model is parser.parse_model


@pytest.mark.parametrize("cfg", [YOLOV5_MODELS / "yolov5s.yaml", MODEL_YAMLS / "yolov5s.yaml"],
                         ids=["yolov5-package", "model_yamls"])
def test_stock_yolov5s_has_the_published_parameter_count(cfg, quiet_yolov5):
    model = yolo.Model(str(cfg))
    assert nparams(model) == 7_235_389
    assert model.yaml["nc"] == 80 and model.model[-1].nc == 80
    assert model.stride.tolist() == [8.0, 16.0, 32.0]


@pytest.mark.parametrize("name", each_shipped(SHIPPED))
def test_every_shipped_yaml_builds_through_yolov5s_model_class(name, quiet_yolov5):
    torch.manual_seed(0)
    model = yolo.Model(str(MODEL_YAMLS / name), nc=3)  # yolov5's constructor, as train/val/detect use it
    assert model.yaml_file == name and model.yaml["nc"] == 3 and model.model[-1].nc == 3
    assert model.stride.tolist() == [8.0, 16.0, 32.0]
    assert sum(m.np for m in model.model) == nparams(model)
    attention = [m for m in model.model if m.type.startswith("yolo_attn.modules.")]
    assert len(attention) == (0 if name == "yolov5s.yaml" else VARIANT_SHAPE.get(name, (3,))[0])
    model.eval()
    with torch.no_grad():
        out, _ = model(torch.rand(1, 3, 64, 64))
    assert out.shape == (1, 252, 8) and torch.isfinite(out).all()


# cheap stock YAMLs covering Conv/C3/SPPF, Segment, GhostConv, C3TR, MaxPool/ZeroPad, an 'activation:' key, P6
STOCK = ["yolov5s.yaml", "yolov5n.yaml", "segment/yolov5n-seg.yaml", "hub/yolov5s-ghost.yaml",
         "hub/yolov5s-transformer.yaml", "hub/yolov3-tiny.yaml", "hub/yolov5s-LeakyReLU.yaml", "hub/yolov5n6.yaml"]


@pytest.mark.parametrize("name", STOCK)
def test_stock_yamls_parse_exactly_like_yolov5s_own_parser(name, original_parse_model, quiet_yolov5,
                                                           restore_default_act):
    d = load(YOLOV5_MODELS / name)
    ours, our_save = parser.parse_model(copy.deepcopy(d), ch=[3])
    theirs, their_save = original_parse_model(copy.deepcopy(d), ch=[3])
    assert our_save == their_save
    assert [(m.i, m.f, m.type, m.np) for m in ours] == [(m.i, m.f, m.type, m.np) for m in theirs]
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert str(ours) == str(theirs)  # same modules with the same constructor arguments


def test_stock_yolov5s_layer_types_per_row():
    d = load(YOLOV5_MODELS / "yolov5s.yaml")
    model, save = parser.parse_model(copy.deepcopy(d), ch=[3])
    expected = []
    for row in d["backbone"] + d["head"]:
        name = row[2]
        expected.append("torch.nn.modules.upsampling.Upsample" if name == "nn.Upsample"
                        else f"yolov5.models.{'yolo' if name == 'Detect' else 'common'}.{name}")
    assert [m.type for m in model] == expected
    assert save == [4, 6, 10, 14, 17, 20, 23]


# ---------------------------------------------------------------------------------------------------------------
# Every shipped YAML at every scale


def _check_forward(model, nc=80):
    assert model.stride.tolist() == [8.0, 16.0, 32.0]
    model.eval()
    with torch.no_grad():
        out, feats = model(torch.rand(1, 3, 64, 64))
    assert out.shape == (1, 3 * (8 * 8 + 4 * 4 + 2 * 2), nc + 5)
    assert torch.isfinite(out).all()
    assert [tuple(f.shape[2:4]) for f in feats] == [(8, 8), (4, 4), (2, 2)]


@pytest.mark.parametrize("name", each_shipped(SHIPPED))
def test_every_shipped_yaml_builds_and_runs_at_every_scale(name, build_small):
    base = load(MODEL_YAMLS / name)
    counts = {}
    for scale in SCALES:
        torch.manual_seed(0)
        model = build_small(scaled(base, scale))  # includes yolov5's batch-1 forward in train mode
        _check_forward(model)
        counts[scale] = nparams(model)
        del model
    assert counts["n"] < counts["s"] < counts["m"] < counts["l"] < counts["x"]
    if name == "yolov5s.yaml":  # the published sizes of YOLOv5n/s/m/l/x (nc=80)
        assert counts == {"n": 1_872_157, "s": 7_235_389, "m": 21_190_557, "l": 46_563_709, "x": 86_749_405}


@pytest.mark.parametrize("name", each_shipped(sorted(set(SHIPPED) - {"yolov5s.yaml"})))
def test_shipped_attention_variants_only_add_attention_to_the_baseline(name):
    base, _ = parser.parse_model(yolov5s(), ch=[3])
    variant, _ = parser.parse_model(load(MODEL_YAMLS / name), ch=[3])
    attention = tuple(spec.cls for spec in yolo_attn.registered_layers())
    n_att = sum(isinstance(m, attention) for m in variant)
    n, added, replaced = VARIANT_SHAPE.get(name, (3, 3, ()))
    assert n_att == n and len(variant) == len(base) + added
    if name in ("yolov5s-aff.yaml", "yolov5s-iaff.yaml"):
        assert not any(isinstance(m, Concat) for m in variant)
        return  # the C3 after each fusion reads C channels instead of 2C
    others = [[p.shape for p in m.parameters()] for m in variant if not isinstance(m, attention)
              and m.i not in replaced]
    assert others == [[p.shape for p in m.parameters()] for m in base if m.i not in replaced]


# ---------------------------------------------------------------------------------------------------------------
# Channel and depth rules for attention rows


@pytest.mark.parametrize("scale, channels", [("n", (64, 128, 256)), ("l", (256, 512, 1024))])
def test_attention_keeps_its_input_channels_under_width_multiple(scale, channels):
    model, _ = parser.parse_model(scaled(load(MODEL_YAMLS / "yolov5s-cbam.yaml"), scale), ch=[3])
    for cbam_row, c in zip((5, 8, 11), channels):
        cbam, c3, nxt = model[cbam_row], model[cbam_row - 1], model[cbam_row + 1]
        assert type(cbam) is modules.CBAM and type(c3) is C3
        assert c3.cv3.conv.out_channels == c
        assert cbam.fc1.in_channels == cbam.fc2.out_channels == c
        assert (nxt.cv1 if type(nxt).__name__ == "SPPF" else nxt).conv.in_channels == c


def _with_row(d, section, index, row):
    d = copy.deepcopy(d)
    d[section][index] = row
    return d


def _with_cbam_repeats(n):
    d = load(MODEL_YAMLS / "yolov5s-cbam.yaml")
    return _with_row(d, "backbone", 5, [-1, n, "CBAM", []])


def test_depth_multiple_repeats_attention_rows():
    d = _with_cbam_repeats(3)
    d["depth_multiple"], d["width_multiple"] = 1.0, 0.25
    model, _ = parser.parse_model(d, ch=[3])
    assert isinstance(model[5], nn.Sequential) and len(model[5]) == 3
    assert all(type(m) is modules.CBAM and m.fc1.in_channels == 64 for m in model[5])
    assert model[5].np == 3 * sum(p.numel() for p in model[5][0].parameters())

    d["depth_multiple"] = 0.33  # round(3 * 0.33) = 1: a single layer, as for yolov5's own layers
    model, _ = parser.parse_model(d, ch=[3])
    assert type(model[5]) is modules.CBAM


def test_attention_kwargs_from_a_yaml_mapping():
    d = _with_row(load(MODEL_YAMLS / "yolov5s-cbam.yaml"), "backbone", 5,
                  [-1, 1, "CBAM", [{"rd_ratio": 0.25, "spatial_kernel_size": 3}]])
    model, _ = parser.parse_model(d, ch=[3])
    assert model[5].fc1.out_channels == 32  # 128 * 0.25
    assert model[5].spatial_conv.kernel_size == (3, 3)


def test_bad_attention_kwargs_name_the_row_and_the_hyper_parameters():
    d = _with_row(load(MODEL_YAMLS / "yolov5s-cbam.yaml"), "backbone", 5, [-1, 1, "CBAM", [{"ratio": 0.25}]])
    with pytest.raises(ModelConfigError) as e:
        parser.parse_model(d, ch=[3])
    msg = str(e.value)
    assert "layer 5 (backbone row 5), CBAM" in msg and "'ratio'" in msg
    assert "rd_ratio=0.0625" in msg and "spatial_kernel_size=7" in msg


class _Proj(nn.Module):
    """A registered layer that changes the channel count (its first YAML arg)."""

    def __init__(self, c1, c2):
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, 1)

    def forward(self, x):
        return self.conv(x)


def test_user_registered_layers_build_and_channel_changing_ones_scale_with_width(monkeypatch, build_small):
    monkeypatch.setattr(layers, "_REGISTRY", dict(layers._REGISTRY))
    yolo_attn.register(LayerSpec("Proj", _Proj, 1, "test", "test", changes_channels=True))
    d = _with_row(load(MODEL_YAMLS / "yolov5s-cbam.yaml"), "backbone", 5, [-1, 1, "proj", [512]])
    d["width_multiple"] = 0.25
    model = build_small(d)
    assert type(model.model[5]) is _Proj
    assert (model.model[5].conv.in_channels, model.model[5].conv.out_channels) == (64, 128)  # 512 * 0.25
    assert model.model[6].conv.in_channels == 128
    _check_forward(model)


# ---------------------------------------------------------------------------------------------------------------
# Safety: nothing in a YAML is evaluated


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")
def test_expression_args_are_refused_and_never_executed(tmp_path, quiet_yolov5, original_parse_model):
    marker = tmp_path / "pwned"
    payload = f"__import__('os').system('touch {marker}')"
    d = _with_row(yolov5s(), "backbone", 1, [-1, 1, "Conv", [payload, 3, 2]])
    cfg = tmp_path / "evil.yaml"
    cfg.write_text(yaml.safe_dump(d))

    with pytest.raises(ModelConfigError) as e:
        yolo.Model(str(cfg))
    msg = str(e.value)
    assert "layer 1 (backbone row 1), Conv" in msg
    assert "looks like a Python expression" in msg and "never evaluates" in msg and payload in msg
    assert not marker.exists()

    # the test can fail: yolov5's own parser runs the payload
    with contextlib.suppress(Exception):
        original_parse_model(copy.deepcopy(d), ch=[3])
    assert marker.exists()


@pytest.mark.parametrize("arg", ["2*3", "nc*2", "[1, 2][0]", "open('x')", "lambda: 0"])
def test_arithmetic_and_calls_in_args_are_refused(arg):
    d = _with_row(load(MODEL_YAMLS / "yolov5s-cbam.yaml"), "backbone", 5, [-1, 1, "CBAM", [arg]])
    with pytest.raises(ModelConfigError, match=r"layer 5 \(backbone row 5\), CBAM: argument .* looks like a Python "
                                               r"expression"):
        parser.parse_model(d, ch=[3])


def test_yaml_symbols_are_substituted_without_eval():
    d = yolov5s()
    d["nc"] = 3
    model, _ = parser.parse_model(d, ch=[3])
    detect = model[-1]
    assert detect.nc == 3 and detect.no == 8
    assert detect.anchors.shape == (3, 3, 2)
    up = model[11]
    assert type(up) is nn.Upsample and up.size is None and up.scale_factor == 2 and up.mode == "nearest"


def test_activation_key_accepts_torch_activations(restore_default_act, quiet_yolov5):
    before = Conv.default_act
    d = yolov5s()
    d["activation"] = "nn.LeakyReLU(0.1)"
    model, _ = parser.parse_model(d, ch=[3])
    convs = [m for m in model.modules() if type(m) is Conv]
    assert len(convs) > 50 and all(type(c.act) is nn.LeakyReLU and c.act.negative_slope == 0.1 for c in convs)
    d["activation"] = "nn.Hardswish(inplace=True)"
    model, _ = parser.parse_model(d, ch=[3])
    assert type(model[1].act) is nn.Hardswish and model[1].act.inplace is True
    assert Conv.default_act is before


def test_activation_key_applies_to_its_own_model_only(restore_default_act, original_parse_model):
    leaky = yolov5s()
    leaky["activation"] = "nn.LeakyReLU(0.1)"
    parser.parse_model(leaky, ch=[3])
    model, _ = parser.parse_model(yolov5s(), ch=[3])  # no 'activation:': yolov5's default, SiLU
    assert type(model[0].act) is nn.SiLU
    # the test can fail: with yolov5's own parser the next model silently inherits LeakyReLU
    original_parse_model(copy.deepcopy(leaky), ch=[3])
    model, _ = original_parse_model(yolov5s(), ch=[3])
    assert type(model[0].act) is nn.LeakyReLU


@pytest.mark.parametrize("act", ["os.system('x')", "__import__('os').system('x')", "nn.LeakyReLU(__import__('os'))",
                                 "nn.NotALayer()", "nn.SiLU", "nn.SiLU(1, 2, 3)", "nn.LeakyReLU(bogus=1)",
                                 "nn.SiLU(", "torch.nn.SiLU()"])
def test_activation_key_refuses_anything_else(act, restore_default_act):
    before = Conv.default_act
    d = yolov5s()
    d["activation"] = act
    with pytest.raises(ModelConfigError) as e:
        parser.parse_model(d, ch=[3])
    assert "model YAML 'activation:'" in str(e.value) and repr(act) in str(e.value)
    assert Conv.default_act is before


# ---------------------------------------------------------------------------------------------------------------
# Clear errors, found before anything is built


def test_unknown_layer_fails_before_building_anything(monkeypatch):
    built = []
    init = Conv.__init__

    def recording_init(self, *args, **kwargs):
        built.append(args)
        init(self, *args, **kwargs)

    monkeypatch.setattr(Conv, "__init__", recording_init)
    d = _with_row(yolov5s(), "head", 2, [[-1, 6], 1, "Concatt", [1]])
    with pytest.raises(ModelConfigError) as e:
        parser.parse_model(d, ch=[3])
    msg = str(e.value)
    assert "layer 12 (head row 2)" in msg and "unknown layer type 'Concatt'" in msg
    assert "Did you mean 'Concat'?" in msg
    assert "attention layers (yolo-attn): SE, ECA, CBAM, CoordAtt, MSCAM, AFF, iAFF, NonLocal" in msg
    assert "C3" in msg and "nn.Upsample" in msg
    assert built == []
    parser.parse_model(yolov5s(), ch=[3])  # the spy itself works
    assert len(built) > 0


def test_attention_names_in_yamls_are_case_insensitive():
    d = load(MODEL_YAMLS / "yolov5s-cbam.yaml")
    d["backbone"][5] = [-1, 1, "cbam", []]
    d["backbone"][8] = [-1, 1, "se", []]
    model, _ = parser.parse_model(d, ch=[3])
    assert type(model[5]) is modules.CBAM and type(model[8]) is modules.SE


@pytest.mark.parametrize("section, index, row, i, bad", [
    ("head", 2, [[-1, 99], 1, "Concat", [1]], 12, 99),
    ("backbone", 3, [-50, 1, "Conv", [256, 3, 2]], 3, -50),
    ("backbone", 3, [3, 1, "Conv", [256, 3, 2]], 3, 3),
])
def test_bad_from_index_names_the_row_and_the_valid_range(section, index, row, i, bad):
    d = _with_row(yolov5s(), section, index, row)
    with pytest.raises(ModelConfigError) as e:
        parser.parse_model(d, ch=[3])
    msg = str(e.value)
    assert f"layer {i} ({section} row {index})" in msg
    assert f"'from' index {bad} does not name an earlier layer" in msg
    assert f"-1..-{i} (relative) or 0..{i - 1} (absolute)" in msg


def test_first_row_must_read_the_image():
    d = _with_row(yolov5s(), "backbone", 0, [0, 1, "Conv", [64, 6, 2, 2]])
    with pytest.raises(ModelConfigError) as e:
        parser.parse_model(d, ch=[3])
    msg = str(e.value)
    assert "layer 0 (backbone row 0)" in msg and "-1" in msg
    assert "-1..-0" not in msg and "0..-1" not in msg  # no empty ranges


@pytest.mark.parametrize("row, expected", [
    ([-1, 1, "Conv"], "expected [from, number, module, args]"),
    ([-1, 0, "Conv", [128, 3, 2]], "'number' must be a positive integer, got 0"),
    ([-1, 1, "Conv", []], "the first arg must be the output channel count"),
    ([[-1, 0], 1, "Conv", [128, 3, 2]], "this layer takes one 'from' index, got [-1, 0]"),
    ([-1, 1, 5, []], "the layer type must be a name, got 5"),
    ([[-1, "a"], 1, "Conv", [128]], "'from' must be an integer or a list of integers"),
])
def test_malformed_rows_name_the_row(row, expected):
    d = _with_row(yolov5s(), "backbone", 1, row)
    with pytest.raises(ModelConfigError) as e:
        parser.parse_model(d, ch=[3])
    assert "layer 1 (backbone row 1)" in str(e.value) and expected in str(e.value)


@pytest.mark.parametrize("field", ["nc", "anchors", "depth_multiple", "width_multiple", "backbone", "head"])
def test_missing_model_fields_are_named(field):
    d = yolov5s()
    del d[field]
    with pytest.raises(ModelConfigError, match=f"the '{field}:' field is missing"):
        parser.parse_model(d, ch=[3])


@pytest.mark.parametrize("args", [[], ["nc"]])
def test_detect_without_nc_and_anchors_is_a_clear_error(args):
    d = _with_row(yolov5s(), "head", 14, [[17, 20, 23], 1, "Detect", args])
    with pytest.raises(ModelConfigError) as e:
        parser.parse_model(d, ch=[3])
    msg = str(e.value)
    assert "layer 24 (head row 14), Detect" in msg and "[nc, anchors]" in msg


def test_build_errors_show_the_yaml_args():
    d = _with_row(yolov5s(), "head", 1, [-1, 1, "nn.MaxPool2d", [3, 1, 1, 1, 2, 3, 4, 5]])
    with pytest.raises(ModelConfigError) as e:
        parser.parse_model(d, ch=[3])
    msg = str(e.value)
    assert "layer 11 (head row 1), nn.MaxPool2d: cannot build it with args [3, 1, 1, 1, 2, 3, 4, 5]" in msg


def test_aff_with_unequal_channels_names_the_row_sources_and_channels():
    d = load(MODEL_YAMLS / "yolov5s-aff.yaml")
    d["head"][2] = [[-1, 4], 1, "AFF", []]  # layer 11 gives 256 channels, layer 4 gives 128 (yolov5s)
    with pytest.raises(ModelConfigError) as e:
        parser.parse_model(d, ch=[3])
    msg = str(e.value)
    assert "layer 12 (head row 2), AFF" in msg
    assert "layer 11 gives 256" in msg and "layer 4 gives 128" in msg


def test_aff_with_a_single_input_is_a_clear_error():
    d = load(MODEL_YAMLS / "yolov5s-aff.yaml")
    d["head"][2] = [-1, 1, "AFF", []]
    with pytest.raises(ModelConfigError) as e:
        parser.parse_model(d, ch=[3])
    msg = str(e.value)
    assert "layer 12 (head row 2), AFF" in msg and "two inputs" in msg and "[a, b]" in msg


def test_single_input_attention_with_two_inputs_is_a_clear_error():
    d = load(MODEL_YAMLS / "yolov5s-aff.yaml")
    d["head"][2] = [[-1, 6], 1, "SE", []]
    with pytest.raises(ModelConfigError, match=r"layer 12 \(head row 2\), SE: a single-input layer takes one 'from'"):
        parser.parse_model(d, ch=[3])


@pytest.mark.parametrize("depth", [0.33, 1.0])
def test_fusion_rows_cannot_repeat_at_any_depth(depth):
    d = load(MODEL_YAMLS / "yolov5s-aff.yaml")
    d["head"][2] = [[-1, 6], 3, "AFF", []]
    d["depth_multiple"] = depth
    with pytest.raises(ModelConfigError, match=r"layer 12 \(head row 2\), AFF: a fusion layer cannot be repeated"):
        parser.parse_model(d, ch=[3])


def test_aff_model_builds_with_yolov5s_batch1_train_forward(quiet_yolov5):
    """yolov5's Model() runs a batch-1 forward in train mode: BatchNorm after global pooling must not fail."""
    torch.manual_seed(0)
    model = yolo.Model(str(MODEL_YAMLS / "yolov5s-aff.yaml"))
    assert model.training
    affs = [m for m in model.model if type(m) is modules.AFF]
    assert len(affs) == 4 and [m.f for m in affs] == [[-1, 6], [-1, 4], [-1, 14], [-1, 10]]
    assert model.stride.tolist() == [8.0, 16.0, 32.0]
    # the C3 after each AFF reads C channels, not 2C
    assert [model.model[m.i + 1].cv1.conv.in_channels for m in affs] == [256, 128, 128, 256]
    model.eval()
    with torch.no_grad():
        out, _ = model(torch.rand(1, 3, 64, 64))
    assert out.shape == (1, 252, 85) and torch.isfinite(out).all()
