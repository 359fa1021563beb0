"""YAML rows for the issue-3 layers: channel-changing convs, the two-input attention gate, Chain."""
import copy
from pathlib import Path

import pytest
import torch
import yaml

import yolo_attn  # noqa: F401
from yolo_attn import modules
from yolo_attn.errors import ModelConfigError
from yolo_attn.engines.yolov5 import parser

from yolov5.models.common import C3, SPPF, Conv  # noqa: E402

MODEL_YAMLS = Path(__file__).resolve().parents[3] / "model_yamls"
SCALES = {"n": (0.33, 0.25), "s": (0.33, 0.5), "l": (1.0, 1.0), "x": (1.33, 1.25)}


def load(name, scale="s"):
    d = yaml.safe_load((MODEL_YAMLS / name).read_text())
    d["depth_multiple"], d["width_multiple"] = SCALES[scale]
    return d


def with_row(d, section, index, row):
    d = copy.deepcopy(d)
    d[section][index] = row
    return d


@pytest.mark.parametrize("name, cls", [("yolov5s-selectivekernel.yaml", modules.SelectiveKernel),
                                       ("yolov5s-splitattn.yaml", modules.SplitAttn),
                                       ("yolov5s-selfcalibconv.yaml", modules.SelfCalibConv)])
@pytest.mark.parametrize("scale", ["n", "x"])
def test_conv_like_layers_scale_their_output_with_width(name, cls, scale):
    model, _ = parser.parse_model(load(name, scale), ch=[3])
    gw = SCALES[scale][1]
    for row, c_in, c_out in [(3, 128, 256), (5, 256, 512), (7, 512, 1024)]:
        m, nxt = model[row], model[row + 1]
        assert type(m) is cls and type(nxt) is C3
        assert nxt.cv1.conv.in_channels == int(c_out * gw)  # the consumer reads the scaled output channels
        x = torch.zeros(2, int(c_in * gw), 8, 8)
        with torch.no_grad():
            assert m.eval()(x).shape == (2, int(c_out * gw), 4, 4)  # stride 2 kept from the Conv it replaces


@pytest.mark.parametrize("scale, c", [("n", 256), ("l", 1024)])
def test_double_attention_row_scales_its_output(scale, c):
    model, _ = parser.parse_model(load("yolov5s-doubleattn.yaml", scale), ch=[3])
    a2, nxt = model[10], model[11]
    assert type(model[9]) is SPPF and type(a2) is modules.DoubleAttn and type(nxt) is Conv
    assert a2.conv_a.in_channels == a2.conv_out.out_channels == nxt.conv.in_channels == c
    assert isinstance(a2.shortcut, torch.nn.Identity)


def test_double_attention_can_change_the_channel_count(build_small):
    d = with_row(load("yolov5s-doubleattn.yaml", "n"), "backbone", 10, [-1, 1, "A2", [2048, {"c_m": 16}]])
    model = build_small(d)
    a2 = model.model[10]
    assert (a2.conv_a.in_channels, a2.conv_out.out_channels, a2.conv_a.out_channels) == (256, 512, 16)
    assert model.model[11].conv.in_channels == 512


def test_attention_gate_rows_take_skip_and_gate_of_different_channels(build_small):
    d = load("yolov5s-attngate.yaml", "s")
    assert d["head"][2] == [[6, 10], 1, "AttnGate", []]
    d["head"][2] = [[6, 9], 1, "AttnGate", [{"rd_channels": 16}]]  # gate from SPPF: 512 channels vs the skip's 256
    model = build_small(d)
    gate = model.model[12]
    assert type(gate) is modules.AttnGate and gate.f == [6, 9]
    assert (gate.w_x.in_channels, gate.w_g.in_channels, gate.w_x.out_channels) == (256, 512, 16)
    assert model.model[13].f == [-2, 12] and model.model[14].cv1.conv.in_channels == 256 + 256  # Concat unchanged
    model.eval()
    with torch.no_grad():
        out, _ = model(torch.rand(1, 3, 64, 64))
    assert out.shape == (1, 252, 85) and torch.isfinite(out).all()


def test_attention_gate_with_swapped_inputs_names_the_row(build_small):
    d = with_row(load("yolov5s-attngate.yaml"), "head", 2, [[10, 6], 1, "AttnGate", []])
    with pytest.raises(ModelConfigError, match=r"layer 12 \(head row 2\), AttnGate: cannot run on its input\(s\) .*"
                                               r"the gating signal \(4×4\) is finer than the skip feature \(2×2\)"
                                               r".*Swap"):
        build_small(d)  # the parser's shape check meets the shapes


@pytest.mark.parametrize("f, match", [
    ([6, 6], r"both inputs are layer 6.*\[skip, gate\]"),
    ([-6, 6], r"both inputs are layer 6"),
    (6, r"AttnGate takes 'from' as \[skip, gate\] \(two inputs\)"),
])
def test_attention_gate_from_errors(f, match):
    d = with_row(load("yolov5s-attngate.yaml"), "head", 2, [f, 1, "AttnGate", []])
    with pytest.raises(ModelConfigError, match=r"layer 12 \(head row 2\), AttnGate: " + match):
        parser.parse_model(d, ch=[3])


def test_attention_gate_cannot_repeat():
    d = with_row(load("yolov5s-attngate.yaml"), "head", 2, [[6, 10], 2, "AttnGate", []])
    with pytest.raises(ModelConfigError, match="cannot be repeated"):
        parser.parse_model(d, ch=[3])


def test_chain_row_with_member_args(build_small):
    d = with_row(load("yolov5s-cbam.yaml", "n"), "backbone", 5, [-1, 1, "Chain", ["se", ["cbam", {"rd_ratio": 0.25}]]])
    model = build_small(d)
    chain = model.model[5]
    assert type(chain) is modules.Chain
    se, cbam = chain.children()
    assert se.fc1.in_channels == 64 and cbam.fc1.out_channels == 16


@pytest.mark.parametrize("args, match", [(["se", "aff"], "AFF cannot be chained"), ([], "at least one"),
                                         (["se", {"rd_ratio": 0.5}], "rd_ratio")])
def test_bad_chain_rows_name_the_row(args, match):
    d = with_row(load("yolov5s-cbam.yaml"), "backbone", 5, [-1, 1, "Chain", args])
    with pytest.raises(ModelConfigError, match=r"layer 5 \(backbone row 5\), Chain: cannot build it .*" + match):
        parser.parse_model(d, ch=[3])


def test_sk_groups_that_do_not_divide_name_the_row():
    d = with_row(load("yolov5s-selectivekernel.yaml", "n"), "backbone", 3,
                 [-1, 1, "SelectiveKernel", [256, {"stride": 2, "groups": 48}]])
    with pytest.raises(ModelConfigError, match=r"layer 3 \(backbone row 3\), SelectiveKernel: .*groups=48"):
        parser.parse_model(d, ch=[3])


def test_channel_changing_rows_need_their_output_channels():
    d = with_row(load("yolov5s-splitattn.yaml"), "backbone", 3, [-1, 1, "SplitAttn", [{"stride": 2}]])
    with pytest.raises(ModelConfigError, match="takes its output channels as the first arg"):
        parser.parse_model(d, ch=[3])


def test_fusing_maps_of_different_resolutions_is_named_by_its_row(build_small):
    d = load("yolov5s-aff.yaml", "s")
    d["head"][2] = [[10, 6], 1, "AFF", []]  # P5 (row 10, 256 channels at s) with P4 (row 6, 256): not upsampled
    with pytest.raises(ModelConfigError, match=r"layer 12 \(head row 2\), AFF: cannot run on its input\(s\) of "
                                               r"shape \(1, 256, 2, 2\), \(1, 256, 4, 4\)"):
        build_small(d)
