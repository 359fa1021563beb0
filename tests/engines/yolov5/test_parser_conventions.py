"""Other projects' YAMLs mean what their authors meant: a channel count first on channel-keeping attention rows."""
import copy
import logging
from pathlib import Path

import pytest
import yaml

import yolo_attn  # noqa: F401
from yolo_attn.engines.yolov5 import parser
from yolo_attn.errors import ModelConfigError

MODEL_YAMLS = Path(__file__).resolve().parents[3] / "model_yamls"


def after_sppf(row_args, name, n=1, width=0.5):
    """yolov5s with one row after SPPF (row 9, 1024 channels as written, 512 at width 0.5), Detect re-numbered."""
    from yolo_attn.model_yaml.edit import insert_after

    d = yaml.safe_load((MODEL_YAMLS / "yolov5s.yaml").read_text())
    d["width_multiple"] = width
    d = insert_after(d, [9], name, row_args)
    d["backbone"][10][1] = n
    return d


def nparams(d):
    model, _ = parser.parse_model(d, ch=[3])
    return sum(p.numel() for p in model.parameters()), model


@pytest.fixture
def warnings(quiet_yolov5):
    from yolov5.utils.general import LOGGER

    seen = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: seen.append(record.getMessage())
    LOGGER.addHandler(handler)
    yield seen
    LOGGER.removeHandler(handler)


@pytest.mark.parametrize("name, theirs, ours, n", [
    ("CBAM", [1024], [], 1),
    ("SE", [1024], [], 1),
    ("CA", [1024], [], 1),
    ("CoordAtt", [1024], [], 3),
    ("CBAM", [1024, 3], [{"spatial_kernel_size": 3}], 3),
    ("ECA", [1024, 3], [{"kernel_size": 3}], 1),
    ("SE", [1024, 8], [{"rd_ratio": 0.125}], 1),  # a reduction r = 8
    ("CoordAttention", [1024, 16], [{"rd_ratio": 1 / 16}], 1),
    ("CBAMBlock", [512], [], 1),  # the channels after width_multiple (512 = 1024 × 0.5)
    ("SimAM", [1024], [], 1),
    ("EMA", [1024, 8], [{"groups": 8}], 1),
    ("GAM_Attention", [1024], [], 1),
    ("SpatialGroupEnhance", [1024, 32], [{"groups": 32}], 1),
    ("GlobalContextBlock", [1024, 0.25], [{"rd_ratio": 0.25}], 1),
])
def test_channel_first_rows_build_what_our_spelling_builds(name, theirs, ours, n, warnings):
    count_theirs, model = nparams(after_sppf(theirs, name, n))
    count_ours, _ = nparams(after_sppf(ours, name, n))
    assert count_theirs == count_ours
    assert count_theirs < 20_000_000  # today's misreading, rd_ratio = 1024, built 544.6M parameters
    assert len(warnings) == 1 and "layer 10 (backbone row 10)" in warnings[0]
    assert f"{theirs[0]} as the input channel count" in warnings[0] and "In yolo-attn's spelling: " in warnings[0]


def test_eca_message_says_which_number_meant_what(warnings):
    nparams(after_sppf([1024, 3], "ECA"))
    (message,) = warnings
    assert "1024 as the input channel count (the row's 1024 channels, 512 after width_multiple), dropped" in message
    assert "3 as kernel_size" in message
    assert "[-1, 1, ECA, [{kernel_size: 3}]]" in message


def test_the_message_is_logged_once_per_row(warnings):
    nparams(after_sppf([1024], "SE", n=3))
    assert len(warnings) == 1


@pytest.mark.parametrize("name, args, meant", [
    ("CBAM", [2048], "as rd_ratio"), ("SE", [300], "as rd_ratio"), ("ECA", [4], "as kernel_size"),
    ("SGE", [48], "as groups"),
])
def test_a_number_that_is_neither_is_an_error_naming_both_readings(name, args, meant):
    with pytest.raises(ModelConfigError) as e:
        parser.parse_model(after_sppf(args, name), ch=[3])
    msg = str(e.value)
    assert "layer 10 (backbone row 10)" in msg and f"the first arg {args[0]} is neither" in msg
    assert "1024 as written, 512 after width_multiple" in msg and meant in msg
    assert "write [-1, 1," in msg


def test_our_own_first_hyper_parameter_is_still_positional():
    _, model = nparams(after_sppf([3], "ECA"))
    assert model[10].conv.kernel_size == (3,)
    _, model = nparams(after_sppf([0.25], "CBAM"))
    assert model[10].fc1.out_channels == 128


@pytest.mark.parametrize("args, match", [
    ([1024, 3, 5, 7], "more args than CBAM takes"), ([1024, 0], "reduction r"),
    ([1024, 16, {"rd_ratio": 0.5}], "rd_ratio is given twice"),
])
def test_bad_channel_first_rows(args, match):
    name = "CBAM" if len(args) == 4 else "SE"
    with pytest.raises(ModelConfigError, match=r"layer 10 \(backbone row 10\).*" + match):
        parser.parse_model(after_sppf(args, name), ch=[3])


@pytest.mark.parametrize("name, value", [("rd_ratio", 16), ("rd_ratio", 0), ("rd_ratio", 1), ("spatial_kernel_size", 4),
                                         ("spatial_kernel_size", 999), ("rd_channels", 10 ** 9), ("act_layer", "nope")])
def test_hyper_parameters_out_of_range_are_errors(name, value):
    with pytest.raises(ModelConfigError, match=rf"layer 10 \(backbone row 10\), CBAM: .*{name}"):
        parser.parse_model(after_sppf([{name: value}], "CBAM"), ch=[3])


def test_groups_must_divide_and_even_kernels_are_refused_for_every_layer():
    for name, kwargs in [("SGE", {"groups": 48}), ("EMA", {"groups": 3}), ("ECA", {"kernel_size": 4}),
                         ("TripletAttention", {"kernel_size": 8}), ("SimAM", {"e_lambda": -1})]:
        with pytest.raises(ModelConfigError, match=name):
            parser.parse_model(after_sppf([kwargs], name), ch=[3])


@pytest.mark.parametrize("alias, name", [("SEAttention", "SE"), ("SKAttention", "SelectiveKernel"),
                                         ("SpatialGroupEnhance", "SGE"), ("CBAMBlock", "CBAM"),
                                         ("CoordAttention", "CoordAtt"), ("EfficientChannelAttention", "ECA"),
                                         ("ECAAttention", "ECA"), ("GAM_Attention", "GAM"),
                                         ("GlobalContextBlock", "GCBlock"), ("ContextBlock", "GCBlock"),
                                         ("ShuffleAttention", "ShuffleAttn"), ("simam_module", "SimAM"),
                                         ("NAMAttention", "NAM"), ("TripletAttention", "TripletAttention"),
                                         ("LSKblock", "LSKBlock"), ("CA_Block", "CoordAtt"), ("SELayer", "SE")])
def test_aliases_other_projects_use(alias, name):
    assert yolo_attn.find_layer(alias).name == name


@pytest.mark.parametrize("typed, expected, wrong", [
    ("SEAM", "YOLO-FaceV2", "SECBAM"), ("S2Attention", "S²-MLPv2", "Did you mean"), ("SimAMM", "Did you mean 'SimAM'?", "MSCAM"),
    ("ＣＢＡＭ", "Did you mean 'CBAM'?", None), ("CoordinateAttention", "plain channel attention", "Did you mean"),
])
def test_unknown_names_point_to_the_right_module_or_say_there_is_none(typed, expected, wrong):
    d = after_sppf([], "SE")
    d["backbone"][10][2] = typed
    with pytest.raises(ModelConfigError) as e:
        parser.parse_model(d, ch=[3])
    msg = str(e.value)
    assert expected in msg and (wrong is None or wrong not in msg.split("\n")[0])


def test_unknown_layer_error_lists_only_yolov5_layers():
    d = after_sppf([], "Nope")
    with pytest.raises(ModelConfigError) as e:
        parser.parse_model(d, ch=[3])
    listed = next(line for line in str(e.value).splitlines() if "yolov5 layers:" in line).split(":", 1)[1]
    names = [x.strip() for x in listed.split(",")]
    import torch.nn as nn
    from yolov5.models import common, experimental, yolo

    for n in names:
        cls = getattr(common, n, None) or getattr(experimental, n, None) or getattr(yolo, n)
        assert isinstance(cls, type) and issubclass(cls, nn.Module) and "Model" not in n and n != "AutoShape"
    assert {"Conv", "C3", "SPPF", "Concat", "Detect"} <= set(names)
