"""The scale of an ultralytics YAML file: from its name (as ultralytics), else its 'scale:' key, else an error; a
yolov5-format YAML is refused naming its engine; lookups by name."""
import shutil

import pytest
import yaml

from ul_helpers import ULTRALYTICS_YAMLS, n_params
from yolo_attn.engines.ultralytics import patches, yamls
from yolo_attn.errors import ModelConfigError, UsageError

CBAM = ULTRALYTICS_YAMLS / "yolo11n-cbam.yaml"


def _copy(tmp_path, name, scale=None, src=CBAM):
    d = yaml.safe_load(src.read_text())
    if scale is not None:
        d["scale"] = scale
    path = tmp_path / name
    path.write_text(yaml.safe_dump(d, sort_keys=False))
    return path


def _width_of(model):
    return model.model[0].conv.out_channels  # 64 * width


@pytest.mark.parametrize("name, first", [("yolo11n-cbam.yaml", 16), ("yolo11s-cbam.yaml", 32),
                                         ("yolo11x_custom.yaml", 96), ("run2m/yolo11l-cbam.yaml", 64)])
def test_scale_from_the_file_name(tmp_path, build, name, first):
    (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
    assert _width_of(build(_copy(tmp_path, name))) == first


def test_scale_key_when_the_name_has_no_letter(tmp_path, build):
    """ultralytics overwrites the key with the (empty) guess from the name and silently builds scale n."""
    from ultralytics.nn import tasks

    path = _copy(tmp_path, "my-model.yaml", scale="s")
    assert _width_of(build(path)) == 32
    assert patches.original(tasks.__name__, "yaml_model_load")(path)["scale"] == ""  # the symptom


def test_a_yaml_whose_scale_cannot_be_told_is_an_error(tmp_path, build):
    for name in ("yolo11-cbam.yaml", "my-model.yaml"):
        with pytest.raises(ModelConfigError, match="its scale is unknown.*Name the file like yolo11n-mine.yaml"):
            build(_copy(tmp_path, name))
    # also without attention layers: a copy of a stock file outside ultralytics' package
    with pytest.raises(ModelConfigError, match="its scale is unknown"):
        build(_copy(tmp_path, "plain.yaml", src=ULTRALYTICS_YAMLS / "yolo11n.yaml"))


def test_name_and_key_that_disagree_and_an_unknown_letter(tmp_path, build):
    with pytest.raises(ModelConfigError, match="file name says scale 'n'.*'scale:' key says 's'"):
        build(_copy(tmp_path, "yolo11n-cbam.yaml", scale="s"))
    d = yaml.safe_load(CBAM.read_text())
    d["scales"] = {"n": d["scales"]["n"], "s": d["scales"]["s"]}
    path = tmp_path / "yolo11x-small.yaml"
    path.write_text(yaml.safe_dump(d))
    with pytest.raises(ModelConfigError, match="scale 'x' is not one of its scales"):
        build(path)


def test_stock_names_keep_ultralytics_behaviour(build):
    from ultralytics import YOLO

    assert n_params(YOLO("yolo11s.yaml").model) == 9_458_752
    assert yamls.yaml_model_load("yolov8m.yaml")["scale"] == "m"


def test_yolov5_yaml_refused_naming_its_engine(tmp_path, build):
    path = shutil.copy(ULTRALYTICS_YAMLS.parent / "yolov5s-cbam.yaml", tmp_path / "yolov5s-cbam.yaml")
    with pytest.raises(ModelConfigError, match="is a yolov5-format YAML .*for the yolov5 engine"):
        build(path)


def test_resolve_cfg_finds_shipped_and_stock_names_and_lists_what_exists():
    assert yamls.resolve_cfg("yolo11n-cbam.yaml") == str(CBAM.resolve())
    assert yamls.resolve_cfg("yolo11n-cbam") == str(CBAM.resolve())
    assert yamls.resolve_cfg("yolov8s-p2.yaml") == "yolov8s-p2.yaml"  # ultralytics finds it in its package
    with pytest.raises(UsageError, match="(?s)not found.*Shipped ultralytics YAMLs: .*yolo11n-cbam.yaml"):
        yamls.resolve_cfg("yolo11n-cbma.yaml")


def test_a_bare_shipped_name_builds_the_shipped_yaml_and_stock_names_stay_stock(monkeypatch, tmp_path,
                                                                               quiet_ultralytics):
    """``YOLO("yolo11n-cbam.yaml")``, a trainer's ``model=`` and a DDP worker's rebuild pass the bare name to
    yaml_model_load: it is the shipped file (ultralytics would look for yolo11-cbam.yaml in its package and fail),
    while yolo11n.yaml, which both ship, stays ultralytics' own."""
    from ultralytics import YOLO

    monkeypatch.chdir(tmp_path)  # no file of that name here
    d = yamls.yaml_model_load("yolo11n-cbam.yaml")
    assert d == dict(yamls.yaml_model_load(str(ULTRALYTICS_YAMLS / "yolo11n-cbam.yaml")), yaml_file="yolo11n-cbam.yaml")
    assert any(type(m).__name__ == "CBAM" for m in YOLO("yolo11n-cbam.yaml").model.modules())
    assert yamls.shipped_yaml("yolo11n.yaml") is None and yamls.shipped_yaml("sub/yolo11n-cbam.yaml") is None
    assert yamls.yaml_model_load("yolo11n.yaml")["yaml_file"].endswith("yolo11n.yaml")
