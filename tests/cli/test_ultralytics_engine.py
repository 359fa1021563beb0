"""The command-line tools with ultralytics files: the engine comes from the YAML or checkpoint, a file given to the
wrong engine is a clear error (exit 2, nothing written), and train -> val -> detect -> export -> bench works end to
end on ultralytics' own train/val/predict/export."""
import json
from pathlib import Path

import pytest
import yaml

import yolo_attn  # noqa: F401
from yolo_attn import paths
from yolo_attn.cli.engine import choose
from yolo_attn.cli.pipeline import run_cli
from yolo_attn.datasets import shapes
from yolo_attn.errors import UsageError

YAMLS = paths.MODEL_YAMLS / "ultralytics"


def _fail(capsys, tmp_path, command, *argv):
    """Run a command in-process in tmp_path: exit code 2, one message, and no file written there."""
    import importlib

    main = importlib.import_module(f"yolo_attn.cli.{command}").main
    assert run_cli(main, list(map(str, argv))) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == [], list(tmp_path.iterdir())
    return err


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """An ultralytics and a yolov5 checkpoint of untrained models."""
    import torch
    from yolov5.models.yolo import Model

    from yolo_attn.engines.ultralytics.model import build_model, save_checkpoint
    from yolo_attn.engines.yolov5.model import quiet, save_checkpoint as save_yolov5

    root = tmp_path_factory.mktemp("ckpts")
    torch.manual_seed(0)
    ul = save_checkpoint(build_model(YAMLS / "yolo11n-cbam.yaml", nc=4), root / "ul" / "best.pt", {"imgsz": 64})
    with quiet():
        v5 = save_yolov5(Model(str(paths.MODEL_YAMLS / "yolov5s.yaml"), nc=4), root / "v5" / "best.pt",
                         {"imgsz": 64})
    return {"ultralytics": ul, "yolov5": v5}


def chosen(argv, tool):
    """``choose`` with the Engine it returns as its name."""
    engine, rest = choose(argv, tool)
    return engine.name, rest


def test_engine_is_chosen_from_the_files(checkpoints):
    assert chosen(["--cfg", "yolo11n-cbam.yaml", "--epochs", "3"], "train") == (
        "ultralytics", ["--cfg", "yolo11n-cbam.yaml", "--epochs", "3"])
    assert chosen(["--cfg", "yolov5s-cbam.yaml"], "train")[0] == "yolov5"
    assert chosen(["--cfg=yolov8n.yaml"], "train")[0] == "ultralytics"  # model_yamls/ultralytics/ before ultralytics'
    assert chosen(["--weights", str(checkpoints["ultralytics"])], "val")[0] == "ultralytics"
    assert chosen(["--weights", str(checkpoints["yolov5"])], "val")[0] == "yolov5"
    assert chosen(["--cfgs", "yolo11n-se.yaml", "yolo11n-eca.yaml", "--quick"], "bench")[0] == "ultralytics"
    assert chosen(["--engine", "ultralytics", "--cfg", "yolov8s.yaml"], "train") == (
        "ultralytics", ["--cfg", "yolov8s.yaml"])


def test_yolov5_yaml_with_engine_ultralytics(in_tmp, capsys):
    err = _fail(capsys, in_tmp, "train", "--cfg", "yolov5s-cbam.yaml", "--engine", "ultralytics")
    assert "--cfg yolov5s-cbam.yaml is for the yolov5 engine, not ultralytics (given with --engine)" in err


def test_ultralytics_yaml_with_engine_yolov5(in_tmp, capsys):
    err = _fail(capsys, in_tmp, "train", "--cfg", "yolo11n-cbam.yaml", "--engine", "yolov5")
    assert "is for the ultralytics engine, not yolov5" in err


@pytest.mark.parametrize("command", ["val", "detect", "export"])
def test_checkpoint_given_to_the_other_engine(in_tmp, capsys, checkpoints, command):
    for engine, other in (("ultralytics", "yolov5"), ("yolov5", "ultralytics")):
        extra = ["--source", str(checkpoints[engine])] if command == "detect" else []
        err = _fail(capsys, in_tmp, command, "--weights", checkpoints[engine], "--engine", other, *extra)
        assert f"is for the {engine} engine, not {other}" in err


def test_files_of_two_engines(in_tmp, capsys, checkpoints):
    err = _fail(capsys, in_tmp, "train", "--cfg", "yolo11n-cbam.yaml", "--weights", checkpoints["yolov5"])
    assert "the files given are for different engines" in err and "(yolov5)" in err and "(ultralytics)" in err


def test_unknown_setting_and_unknown_cfg(in_tmp, capsys):
    err = _fail(capsys, in_tmp, "train", "--cfg", "yolo11n-cbam.yaml", "--epoch", "3")
    assert "--epoch: not an ultralytics setting. Did you mean epochs?" in err
    err = _fail(capsys, in_tmp, "train", "--cfg", "yolo11n-cbam.yaml", "epochs=many")
    assert "'epochs=many' is of invalid type str" in err
    err = _fail(capsys, in_tmp, "train", "--cfg", "yolo11n-cbma.yaml")
    assert "yolo11n-cbma.yaml" in err and "not found" in err
    err = _fail(capsys, in_tmp, "train", "--cfg", "yolo11n-cbam.yaml", "--nproc-per-node", "2")
    assert "--nproc-per-node: the ultralytics engine trains on several GPUs with its own DDP" in err
    assert "--device 0,1" in err


def test_resume_a_finished_run(in_tmp, capsys, checkpoints):
    err = _fail(capsys, in_tmp, "train", "--resume", checkpoints["ultralytics"])
    assert "is from a finished run" in err and "--weights" in err


def test_detect_on_a_folder_without_images(in_tmp, capsys, checkpoints, tmp_path_factory):
    empty = tmp_path_factory.mktemp("no-images")
    err = _fail(capsys, in_tmp, "detect", "--weights", checkpoints["ultralytics"], "--source", empty)
    assert "ultralytics: No images or videos found in" in err


def test_attention_yaml_without_scale(in_tmp, capsys, tmp_path_factory):
    other = tmp_path_factory.mktemp("cfg") / "mine.yaml"
    other.write_text((YAMLS / "yolo11n-cbam.yaml").read_text())
    data = shapes.generate(tmp_path_factory.mktemp("ds") / "shapes", train=4, val=2, size=64)
    err = _fail(capsys, in_tmp, "train", "--cfg", other, "--data", data, "epochs=1", "imgsz=64")
    assert "its scale is unknown" in err and "yolo11n-mine.yaml" in err


# ------------------------------------------------------------------------------------------ end to end (trains)
@pytest.mark.slow
def test_train_val_detect_export_bench(run_cli, tmp_path):
    """One epoch at 64 px on 16 images: the summary line and file, then every tool on the checkpoint it wrote."""
    data = shapes.generate(tmp_path / "ds", train=16, val=8, size=64)
    r = run_cli("train", "--cfg", "yolo11n-cbam.yaml", "--data", data, "--epochs", "1", "imgsz=64", "batch=8",
                "plots=false")
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    run = tmp_path / "runs" / "train" / "yolo11n-cbam"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["engine"] == "ultralytics" and summary["epochs"] == 1
    assert summary["cfg"] == str((YAMLS / "yolo11n-cbam.yaml").resolve())
    assert f"mAP50 {summary['mAP50']:.4f} mAP50-95 {summary['mAP50-95']:.4f}" in r.stdout
    best = summary["weights"]

    r = run_cli("val", "--weights", best)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    val = json.loads((tmp_path / "runs" / "val" / "yolo11n-cbam" / "summary.json").read_text())
    assert val["imgsz"] == 64 and "mAP50" in val

    r = run_cli("detect", "--weights", best, "--source", data.parent / "images" / "val", "conf=0.001")
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert "detect: 8 image(s)" in r.stdout
    assert len(list((tmp_path / "runs" / "detect" / "yolo11n-cbam").glob("*.jpg"))) == 8

    r = run_cli("export", "--weights", best, "--include", "onnx", "torchscript")
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert r.stdout.count("(ok, limit 0.0001)") == 2
    r = run_cli("detect", "--weights", Path(best).with_suffix(".onnx"), "--source", data.parent / "images" / "val",
                "conf=0.001")
    assert r.returncode == 0 and "detect: 8 image(s)" in r.stdout, (r.stdout + r.stderr)[-3000:]

    r = run_cli("bench", "--cfgs", "yolo11n-cbam.yaml", "--quick", "--runs", tmp_path / "runs" / "train", "--out",
                tmp_path / "bench")
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    rows = {row["model"]: row for row in json.loads((tmp_path / "bench" / "ablation.json").read_text())["rows"]}
    assert set(rows) == {"yolo11n", "yolo11n-cbam"}
    assert rows["yolo11n"]["params"] == 2_624_080 and rows["yolo11n-cbam"]["attention"] == "CBAM×3"
    assert rows["yolo11n-cbam"]["gflops"] > rows["yolo11n"]["gflops"] > 0
    assert rows["yolo11n-cbam"]["mAP50"] == summary["mAP50"]


@pytest.mark.slow
def test_weights_into_a_variant_start_as_the_identity(run_cli, tmp_path):
    """--weights baseline.pt into yolo11n-cbam: every baseline tensor transferred by structure (ultralytics' own
    name matching would drop the head), the three CBAM rows start as the identity."""
    import torch

    from yolo_attn.engines.ultralytics.model import build_model, save_checkpoint

    torch.manual_seed(0)
    base = build_model(YAMLS / "yolo11n.yaml", nc=4)
    weights = save_checkpoint(base, tmp_path / "base" / "best.pt", {"imgsz": 64})
    n = len(base.state_dict())
    data = shapes.generate(tmp_path / "ds", train=8, val=4, size=64)
    r = run_cli("train", "--cfg", "yolo11n-cbam.yaml", "--weights", weights, "--data", data, "epochs=1", "imgsz=64",
                "batch=4", "plots=false")
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    assert "attention rows [5, 8, 11] are new to best.pt; they start as the identity" in out
    assert f"Transferred {n}/{n} source tensors by structure" in out
    from yolo_attn.checkpoints import load_checkpoint
    from yolo_attn.modules import IdentityStart

    trained = load_checkpoint(tmp_path / "runs" / "train" / "yolo11n-cbam" / "weights" / "best.pt")["model"]
    assert [i for i, m in enumerate(trained.model) if isinstance(m, IdentityStart)] == [5, 8, 11]


_NETWORK_SPY = """
import json, socket, sys
attempts = []
def refuse(kind):
    def call(*args, **kwargs):
        attempts.append([kind, repr(args[:2])])
        raise OSError("network disabled by the test")
    return call
socket.getaddrinfo = refuse("getaddrinfo")
socket.socket.connect = refuse("connect")
from yolo_attn.cli.pipeline import run_cli
import importlib
codes = [run_cli(importlib.import_module("yolo_attn.cli." + cmd).main, argv) for cmd, argv in json.loads(sys.argv[1])]
print("RESULT", json.dumps({"codes": codes, "attempts": attempts}))
"""


@pytest.mark.slow
def test_no_network_attempt(tmp_path):
    """train, val, predict and export with every DNS lookup and connection refused and recorded, a fresh ultralytics
    config folder (no Arial.ttf) and no YOLO_OFFLINE from the caller: nothing is attempted."""
    import os
    import subprocess
    import sys

    data = shapes.generate(tmp_path / "ds", train=8, val=4, size=64)
    best = str(tmp_path / "runs" / "train" / "yolo11n-se" / "weights" / "best.pt")
    steps = [("train", ["--cfg", "yolo11n-se.yaml", "--data", str(data), "epochs=1", "imgsz=64", "batch=4"]),
             ("val", ["--weights", best]),
             ("detect", ["--weights", best, "--source", str(data.parent / "images" / "val")]),
             ("export", ["--weights", best])]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("YOLO_", "ULTRALYTICS_"))}
    env.update(YOLO_CONFIG_DIR=str(tmp_path / "config"), PYTHONUNBUFFERED="1")
    r = subprocess.run([sys.executable, "-c", _NETWORK_SPY, json.dumps(steps)], cwd=tmp_path, capture_output=True,
                       text=True, timeout=900, env=env)
    line = next((ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")), None)
    assert line, (r.stdout + r.stderr)[-3000:]
    result = json.loads(line[len("RESULT "):])
    assert result["codes"] == [0, 0, 0, 0], (r.stdout + r.stderr)[-3000:]
    assert result["attempts"] == []
    assert not list((tmp_path / "config").rglob("*.ttf"))  # no font was downloaded
