"""End to end through yolov5's own train/val: a tiny run on a tiny generated dataset (minutes, CPU)."""
import json
import re
from pathlib import Path

import pytest
import yaml

from yolo_attn.datasets import shapes

SUMMARY = re.compile(r"^mAP50 (\d\.\d{4}) mAP50-95 (\d\.\d{4})$", re.M)


@pytest.mark.slow
def test_train_then_val_print_and_save_the_summary(run_cli, tmp_path):
    data = shapes.generate(tmp_path / "ds", train=16, val=8, size=64, seed=5)
    r = run_cli("train", "--cfg", "yolov5s-cbam.yaml", "--data", data, "--epochs", "2", "--imgsz", "64",
                "--batch-size", "8", "--workers", "0", "--noplots", "--noval")
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    line = SUMMARY.findall(out)
    assert line, out[-2000:]
    summary = json.loads((tmp_path / "runs" / "train" / "yolov5s-cbam" / "summary.json").read_text())
    assert (f"{summary['mAP50']:.4f}", f"{summary['mAP50-95']:.4f}") == line[-1]
    assert 0.0 <= summary["mAP50-95"] <= summary["mAP50"] <= 1.0
    assert summary["epochs"] == 2
    best = Path(summary["weights"])
    assert best.is_file()

    r = run_cli("val", "--weights", best, "--workers", "0")
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    assert SUMMARY.findall(out), out[-2000:]
    val_summary = json.loads((tmp_path / "runs" / "val" / "yolov5s-cbam" / "summary.json").read_text())
    assert val_summary["imgsz"] == 64  # taken from the checkpoint's training options
    val_data = Path(val_summary["data"])  # the data YAML the run recorded, copied into the validation's folder
    assert val_data == tmp_path / "runs" / "val" / "yolov5s-cbam" / "data.yaml"
    assert yaml.safe_load(val_data.read_text()) == yaml.safe_load(Path(data).read_text())
    # the same weights, data and image size as training's final validation of best.pt (conf 0.001; iou 0.6)
    assert abs(val_summary["mAP50"] - summary["mAP50"]) < 0.02
