"""The safe, registry-aware parse_model of the ultralytics engine: stock models unchanged, registered layers by name
at every scale, bad YAMLs refused with messages naming the row, nothing evaluated."""
import copy
from pathlib import Path

import pytest
import torch
import yaml

import yolo_attn
from ul_helpers import ULTRALYTICS_YAMLS, n_params
from yolo_attn.engines.ultralytics import parser as ul_parser
from yolo_attn.engines.ultralytics.yamls import ultralytics_root
from yolo_attn.errors import ModelConfigError
from yolo_attn.model_yaml.edit import insert_after, load_model_yaml, replace_concat

STOCK_DIR = ultralytics_root() / "cfg" / "models"
STOCK_YAMLS = sorted(STOCK_DIR.rglob("*.yaml"))
QUICK_STOCK = {"yolo11.yaml", "yolov8.yaml", "yolov5.yaml"}  # the rest run in CI (-m slow)


def _stock_dict(path):
    d = yaml.safe_load(Path(path).read_text())
    if d.get("scales"):
        d["scale"] = next(iter(d["scales"]))
    d.setdefault("channels", 3)
    return d


def _structure(model, save):
    rows = [(m.i, m.f, m.type, m.np) for m in model]
    return rows, sorted(save), [(k, tuple(v.shape)) for k, v in model.state_dict().items()]


def _head_legacy(model):
    return getattr(type(model[-1]), "legacy", None)


@pytest.mark.parametrize("path", [p if p.name in QUICK_STOCK else pytest.param(p, marks=pytest.mark.slow)
                                  for p in STOCK_YAMLS], ids=lambda p: p.name)
def test_builder_reproduces_stock_parse_model(path, quiet_ultralytics):
    """parse_with_registry (the builder used for YAMLs with attention) against ultralytics' own parse_model on every
    stock YAML at its first scale: rows, types, 'from', parameter counts, save list, state_dict and the head's
    legacy flag identical."""
    from ultralytics.nn import tasks

    d = _stock_dict(path)
    if any(str(row[2]) == "TorchVision" for row in d["backbone"] + d["head"]):
        pytest.skip("TorchVision rows load torchvision weights (a download)")
    stock = ul_parser.stock_parse_model()
    torch.manual_seed(0)
    want_model, want_save = stock(copy.deepcopy(d), 3, False)
    want_legacy = _head_legacy(want_model)
    torch.manual_seed(0)
    got_model, got_save = ul_parser.parse_with_registry(copy.deepcopy(d), 3, False, ul_parser.validate(d))
    assert _structure(got_model, got_save) == _structure(want_model, want_save)
    assert _head_legacy(got_model) == want_legacy
    assert tasks.Conv.default_act.__class__ is torch.nn.SiLU


@pytest.mark.parametrize("name, params", [("yolo11n.yaml", 2_624_080), ("yolov8n.yaml", 3_157_200),
                                          ("yolov5su.yaml", 9_153_152)])
def test_stock_names_and_shipped_baselines_build_the_stock_models(name, params, build):
    """ultralytics' own names (its parser, through the adapter) and the shipped baseline files: the published
    parameter counts at nc=80."""
    from ultralytics import YOLO

    assert n_params(YOLO(name).model) == params
    assert n_params(build(name, nc=80)) == params


def _yolo11(**changes):
    d = load_model_yaml(STOCK_DIR / "11" / "yolo11.yaml")
    d.update(changes)
    return d


@pytest.mark.parametrize("scale", list("nsmlx"))
def test_one_attention_yaml_builds_at_every_scale(scale, quiet_ultralytics):
    """yolo11 + CBAM after rows 4, 6, 8 at each scale: each CBAM takes the channels of the row before it (width and
    max_channels applied), and the rest of the model is the stock one of that scale."""
    from ultralytics.nn import tasks

    d = insert_after(_yolo11(scale=scale), [4, 6, 8], "CBAM")
    model, _ = tasks.parse_model(copy.deepcopy(d), 3, False)
    stock, _ = ul_parser.stock_parse_model()(_yolo11(scale=scale), 3, False)
    cbam = [i for i, m in enumerate(model) if type(m).__name__ == "CBAM"]
    assert cbam == [5, 8, 11]
    depth, width, max_channels = d["scales"][scale]
    for i, c in zip(cbam, (512, 512, 1024)):
        channels = tasks.make_divisible(min(c, max_channels) * width, 8)
        assert model[i].np == n_params(yolo_attn.create_attn("cbam", channels)), (scale, i, channels)
    assert n_params(model) == n_params(stock) + sum(model[i].np for i in cbam)


def test_channel_changing_layer_follows_width_and_max_channels(quiet_ultralytics):
    """SelectiveKernel replacing the stride-2 Conv at row 7 (1024 channels in the YAML) gets
    make_divisible(min(1024, max_channels) * width, 8) output channels, as ultralytics' own Conv would."""
    from ultralytics.nn import tasks

    for scale, expected in (("n", 256), ("m", 512), ("x", 768)):
        d = _yolo11(scale=scale)
        d["backbone"][7] = [-1, 1, "SelectiveKernel", [1024, {"stride": 2}]]
        model, _ = tasks.parse_model(copy.deepcopy(d), 3, False)
        stock, _ = ul_parser.stock_parse_model()(_yolo11(scale=scale), 3, False)
        assert model[8].cv1.conv.in_channels == stock[8].cv1.conv.in_channels == expected


def test_registry_rows_go_through_the_registry_and_stock_rows_through_stock(build, monkeypatch):
    """A YAML without registered layers is built by ultralytics' own parse_model (once on the meta device for its
    sizes, then for real); with them, by ours."""
    stock, calls = ul_parser.stock_parse_model(), []
    monkeypatch.setattr(ul_parser, "stock_parse_model",
                        lambda: lambda *a: calls.append(torch.empty(0).device.type) or stock(*a))
    build("yolo11n.yaml")
    assert calls == ["meta", "cpu"]
    build("yolo11n-cbam.yaml")
    assert calls == ["meta", "cpu"]


# ---------------------------------------------------------------------------------------------------- bad input
def _write(tmp_path, name, d):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(d, sort_keys=False))
    return path


def test_unknown_layer_names_the_row_and_suggests(tmp_path, build):
    d = insert_after(_yolo11(), [4], "CBMA")
    with pytest.raises(ModelConfigError) as e:
        build(_write(tmp_path, "yolo11n-typo.yaml", d))
    msg = str(e.value)
    assert "layer 5 (backbone row 5), CBMA: unknown layer type 'CBMA'" in msg
    assert "Did you mean 'CBAM'?" in msg and "ultralytics layers: " in msg and "C3k2" in msg


def test_unknown_layer_in_a_yaml_without_attention_is_explained_too(tmp_path, build):
    """Stock ultralytics raises a bare KeyError: 'Cnov'."""
    d = _yolo11()
    d["backbone"][0][2] = "Cnov"
    with pytest.raises(ModelConfigError, match=r"layer 0 \(backbone row 0\), Cnov: unknown layer type 'Cnov'.*"
                                                r"Did you mean 'Conv'"):
        build(_write(tmp_path, "yolo11n-x.yaml", d))


@pytest.mark.parametrize("field, value", [
    ("activation", "__import__('builtins').setattr(__import__('builtins'), 'YOLO_ATTN_PWNED', 1) or nn.SiLU()"),
    ("arg", "__import__('builtins').setattr(__import__('builtins'), 'YOLO_ATTN_PWNED', 1)"),
])
def test_yaml_text_is_never_evaluated(tmp_path, build, field, value):
    """ultralytics evals the activation: key (code execution from a YAML); an arg that is an expression is an error
    here (ultralytics would pass the text on as a string)."""
    import builtins

    d = _yolo11()
    if field == "activation":
        d["activation"] = value
    else:
        d["head"][0][3] = [value, 2, "nearest"]
    with pytest.raises(ModelConfigError, match="activation|expression"):
        build(_write(tmp_path, "yolo11n-payload.yaml", d))
    assert not hasattr(builtins, "YOLO_ATTN_PWNED")


def test_an_internal_name_as_arg_is_refused(tmp_path, build):
    """ultralytics substitutes any local variable of its parser: the arg 'd' passes the whole YAML dict."""
    d = _yolo11()
    d["head"][0][3] = ["d", 2, "nearest"]
    with pytest.raises(ModelConfigError, match="'d' is not a value"):
        build(_write(tmp_path, "yolo11n-d.yaml", d))


def test_activation_is_parsed_and_restored_even_after_a_failed_build(tmp_path, build):
    """Stock parse_model restores Conv.default_act only on success: a failed build left ReLU for every later model."""
    from ultralytics.nn import tasks

    d = _yolo11(activation="torch.nn.ReLU()", scale="n")
    model = build(d)
    assert isinstance(model.model[0].act, torch.nn.ReLU)
    assert isinstance(tasks.Conv.default_act, torch.nn.SiLU)
    bad = insert_after(d, [4], "CBAM")
    bad["backbone"][5][3] = [{"no_such_parameter": 1}]
    with pytest.raises(ModelConfigError, match="cannot build it"):
        build(bad)
    assert isinstance(tasks.Conv.default_act, torch.nn.SiLU)
    # the symptom: ultralytics' own parser, failing on an unknown name after the activation was set
    stock_bad = _yolo11(activation="nn.ReLU()", scale="n")
    stock_bad["backbone"][3][2] = "NoSuchLayer"
    try:
        with pytest.raises(KeyError):
            ul_parser.stock_parse_model()(stock_bad, 3, False)
        assert isinstance(tasks.Conv.default_act, torch.nn.ReLU)
    finally:
        tasks.Conv.default_act = torch.nn.SiLU()


def test_fusion_of_unequal_channels_names_both_rows(build):
    """AFF on the Concat at row 12 of yolo11n: the upsampled row 11 has 256 channels, row 6 has 128."""
    d = replace_concat(_yolo11(scale="n"), "AFF", rows=[12])
    with pytest.raises(ModelConfigError, match=r"layer 12 \(head row 1\), AFF: inputs have different channel counts: "
                                               r"layer 11 gives 256, layer 6 gives 128"):
        build(d)


def test_bad_from_and_a_fusion_with_one_input(build):
    d = insert_after(_yolo11(scale="n"), [4], "CBAM")
    d["backbone"][5][0] = 7
    with pytest.raises(ModelConfigError, match="'from' index 7 does not name an earlier layer"):
        build(d)
    d = _yolo11(scale="n")
    d["head"][1][2] = "AFF"
    d["head"][1][0] = -1
    with pytest.raises(ModelConfigError, match=r"takes 'from' as \[a, b\]"):
        build(d)


def test_a_row_that_cannot_run_is_named(build):
    """AFF fusing P4 (row 6) with P3 (row 4), equal channels at scale n but different resolutions: the shape check
    names the row instead of a traceback from the stride computation."""
    d = _yolo11(scale="n")
    d["head"][1] = [[4, 6], 1, "AFF", []]
    with pytest.raises(ModelConfigError, match=r"layer 12 \(head row 1\), AFF: cannot run on its input"):
        build(d)


def test_a_yolov5_yaml_is_refused_naming_its_engine(build):
    d = load_model_yaml(ULTRALYTICS_YAMLS.parent / "yolov5s-cbam.yaml")
    with pytest.raises(ModelConfigError, match="yolov5-format YAML .*anchors.*for the yolov5 engine"):
        build(ULTRALYTICS_YAMLS.parent / "yolov5s-cbam.yaml")
    with pytest.raises(ModelConfigError, match="yolov5-format YAML"):
        build(d)


def test_attention_dict_without_a_scale_is_an_error(build):
    d = insert_after(_yolo11(), [4], "SE")
    with pytest.raises(ModelConfigError, match="scale is unknown"):
        build(d)
