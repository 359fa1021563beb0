"""A data YAML's ``download:`` code never runs, whichever route reaches the engines' dataset checks (#22).

Each YAML's download: writes a marker file; its val split is missing, so the engines would run it. Every route
must end in a DatasetError (exit 2 on the command line) that says the download is code, and leave no marker.
"""
import importlib
import sys

import pytest
import yaml

import yolo_attn  # noqa: F401  (installs the engines' patches)
from yolo_attn.cli.pipeline import run_cli
from yolo_attn.datasets import checks
from yolo_attn.errors import DatasetError


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setattr(checks, "online", lambda: False)


def evil_yaml(tmp_path, download=None, name="evil.yaml"):
    """A data YAML with a missing val split whose download: (Python) writes tmp_path/marker."""
    marker = tmp_path / "marker"
    code = download or f"open({str(marker)!r}, 'w').write('ran')"
    (tmp_path / "images").mkdir(exist_ok=True)
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"path": str(tmp_path), "train": "images", "val": "missing/val",
                                    "names": ["a"], "download": code}), encoding="utf-8")
    return path, marker


def refused_as_code(excinfo_or_text, marker):
    text = str(getattr(excinfo_or_text, "value", excinfo_or_text))
    assert "never runs code from a data YAML" in text, text
    assert not marker.exists()


YOLOV5_MODULES = ["yolov5.utils.general", "yolov5.train", "yolov5.val", "yolov5.segment.train",
                  "yolov5.segment.val", "yolov5.utils.dataloaders"]


@pytest.mark.parametrize("module", YOLOV5_MODULES)
def test_yolov5_check_dataset_every_binding(tmp_path, module):
    """Every module that imported check_dataset by name holds the guarded one (train, val: --data, --resume)."""
    check = importlib.import_module(module).check_dataset
    path, marker = evil_yaml(tmp_path)
    with pytest.raises(DatasetError) as e:
        check(str(path))
    refused_as_code(e, marker)
    with pytest.raises(DatasetError) as e:  # an already-read mapping (val.run gets train's dict)
        check(yaml.safe_load(path.read_text()))
    refused_as_code(e, marker)


def test_yolov5_bash_line_and_original_would_run(tmp_path):
    """Proof the test can fail: the original check_dataset runs the code; the guarded one refuses a bash line too."""
    from yolov5.utils import general

    from yolo_attn.engines._patch import original_of

    path, marker = evil_yaml(tmp_path)
    try:
        original_of(general.check_dataset)(str(path))
    except Exception:  # noqa: BLE001  (it still fails after running the download)
        pass
    assert marker.exists()
    marker.unlink()
    path, marker = evil_yaml(tmp_path, download=f"bash -c 'touch {tmp_path / 'marker'}'", name="bash.yaml")
    with pytest.raises(DatasetError) as e:
        general.check_dataset(str(path))
    refused_as_code(e, marker)


ULTRALYTICS_MODULES = ["ultralytics.data.utils", "ultralytics.engine.trainer", "ultralytics.engine.validator",
                       "ultralytics.engine.exporter"]


@pytest.mark.parametrize("module", ULTRALYTICS_MODULES)
def test_ultralytics_check_det_dataset_every_binding(tmp_path, module):
    check = importlib.import_module(module).check_det_dataset
    path, marker = evil_yaml(tmp_path)
    with pytest.raises(DatasetError) as e:
        check(str(path))
    refused_as_code(e, marker)


def test_ultralytics_original_would_run(tmp_path):
    from ultralytics.data import utils

    from yolo_attn.engines._patch import original_of

    path, marker = evil_yaml(tmp_path)
    try:
        original_of(utils.check_det_dataset)(str(path))
    except Exception:  # noqa: BLE001
        pass
    assert marker.exists()


def test_a_present_dataset_is_checked_as_before(tmp_path):
    """The guard changes nothing when the data is on disk: the download is never considered."""
    from ultralytics.data.utils import check_det_dataset
    from yolov5.utils.general import check_dataset

    path, marker = evil_yaml(tmp_path)
    d = yaml.safe_load(path.read_text())
    (tmp_path / "val").mkdir()
    path.write_text(yaml.safe_dump(dict(d, val="val")))
    assert check_dataset(str(path))["nc"] == 1
    assert check_det_dataset(str(path))["nc"] == 1
    assert not marker.exists()


def test_a_plain_url_offline_says_offline(tmp_path, offline):
    from yolov5.utils.general import check_dataset

    path, marker = evil_yaml(tmp_path, download="https://example.invalid/data.zip")
    with pytest.raises(DatasetError, match="offline"):
        check_dataset(str(path))


@pytest.mark.parametrize("download", ["import os", "https://x.invalid/a.zip\nimport os", "https://x/a.zip; rm -rf x",
                                      "bash get.sh", "https://x.invalid/a.yaml", 3, ["https://x/a.zip"]])
def test_only_a_plain_archive_url_may_download(download):
    assert not checks.plain_url(download)


def test_plain_urls():
    assert checks.plain_url("https://github.com/ultralytics/assets/releases/download/v0.0.0/coco8.zip")
    assert checks.plain_url("http://host/data.tar.gz?token=1")


# ------------------------------------------------------------------------------------------- command-line routes
def _cli(capsys, command, argv):
    main = importlib.import_module(f"yolo_attn.cli.{command}").main
    code = run_cli(main, list(map(str, argv)))
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def test_ultralytics_val_data_setting(tmp_path, monkeypatch, capsys):
    """``val --weights UL.pt data=evil.yaml``: the setting route (not the --data flag)."""
    from yolo_attn.engines.ultralytics.model import build_model, save_checkpoint
    from yolo_attn import paths

    monkeypatch.chdir(tmp_path)
    weights = save_checkpoint(build_model(paths.MODEL_YAMLS / "ultralytics" / "yolo11n-cbam.yaml", nc=1),
                              tmp_path / "w" / "best.pt", {"imgsz": 64})
    path, marker = evil_yaml(tmp_path)
    code, err = _cli(capsys, "val", ["--weights", weights, f"data={path}", "imgsz=64", "device=cpu"])
    assert code == 2
    refused_as_code(err, marker)


def test_yolov5_passthrough_val_data(tmp_path, monkeypatch, capsys):
    """``yolo-attn yolov5 val --data evil.yaml`` (yolov5's own val.py, through the passthrough)."""
    from yolov5.models.yolo import Model

    from yolo_attn import paths
    from yolo_attn.cli import yolov5 as cli_yolov5
    from yolo_attn.engines.yolov5.model import quiet, save_checkpoint

    monkeypatch.chdir(tmp_path)
    with quiet():
        weights = save_checkpoint(Model(str(paths.MODEL_YAMLS / "yolov5s.yaml"), nc=1), tmp_path / "w" / "best.pt",
                                  {"imgsz": 64})
    path, marker = evil_yaml(tmp_path)
    code = run_cli(cli_yolov5.main, ["val", "--data", str(path), "--weights", str(weights), "--imgsz", "64",
                                     "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    refused_as_code(err, marker)


def test_ultralytics_train_data_setting(tmp_path, monkeypatch, capsys):
    """``train --cfg UL.yaml data=evil.yaml``: ultralytics' trainer re-raises dataset errors as a RuntimeError; the
    message is still ours, exit 2."""
    monkeypatch.chdir(tmp_path)
    path, marker = evil_yaml(tmp_path)
    code, err = _cli(capsys, "train", ["--cfg", "yolo11n-cbam.yaml", f"data={path}", "epochs=1", "imgsz=64",
                                       "device=cpu"])
    assert code == 2
    refused_as_code(err, marker)


def test_ultralytics_classification_dataset_offline(tmp_path, monkeypatch):
    """check_cls_dataset would fetch ultralytics' archive of a name not on disk: offline, a message instead."""
    import ultralytics.data.utils as utils
    from ultralytics.engine import trainer

    monkeypatch.setattr("yolo_attn.paths.online", lambda: False)
    asked = []
    monkeypatch.setattr(utils, "download", lambda *a, **k: asked.append(a))
    for check in (utils.check_cls_dataset, trainer.check_cls_dataset):
        with pytest.raises(DatasetError, match="offline"):
            check(str(tmp_path / "no-such-dataset"))
    assert asked == []


def test_refuse_overwrite_is_one_rule(tmp_path):
    from yolo_attn.errors import UsageError
    from yolo_attn.runs import refuse_overwrite

    f = tmp_path / "data.yaml"
    f.write_text("x")
    (tmp_path / "hard.yaml").hardlink_to(f)
    for out in (f, tmp_path / "." / "data.yaml", tmp_path / "hard.yaml"):
        with pytest.raises(UsageError, match="would overwrite the input --data"):
            refuse_overwrite("--out", out, {"--data": f})
    refuse_overwrite("--out", tmp_path / "other", {"--data": f, "--cfgs": None})


def test_a_plain_url_online_goes_to_the_engine(tmp_path, monkeypatch):
    """On a networked machine a plain URL is the engine's to fetch (its downloader is called; nothing else runs)."""
    import yolov5.utils.general as general

    monkeypatch.setattr(checks, "online", lambda: True)
    fetched = []
    monkeypatch.setattr(general.torch.hub, "download_url_to_file", lambda url, f: fetched.append(url) or 1 / 0)
    path, marker = evil_yaml(tmp_path, download="https://example.invalid/data.zip")
    with pytest.raises(ZeroDivisionError):
        general.check_dataset(str(path))
    assert fetched == ["https://example.invalid/data.zip"]
