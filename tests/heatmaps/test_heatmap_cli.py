"""scripts/heatmap.sh (yolo_attn.cli.heatmap): files written, records, and clear errors (exit 2, no traceback)."""
import json

import cv2
import numpy as np
import pytest

from heatmap_helpers import STOCK_YOLOV5S
from yolo_attn.cli.pipeline import run_cli
from yolo_attn.cli.heatmap import main
from yolo_attn.heatmaps.metrics import box_mask


def _run(capsys, *argv):
    code = run_cli(main, [str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("cfg", ["yolov5s-coordatt.yaml", STOCK_YOLOV5S])
def test_writes_a_picture_per_detection_an_overview_records_and_arrays(checkpoint, image_file, tmp_path, capsys, cfg):
    weights = checkpoint(cfg)
    src = tmp_path / "images"
    src.mkdir()
    for k, (h, w) in enumerate([(72, 120), (90, 60)]):
        image_file(f"images/im{k}.jpg", h=h, w=w, seed=k)
    out = tmp_path / "out"
    code, stdout, stderr = _run(capsys, "--weights", weights, "--source", src, "--out", out, "--conf", "0.01",
                                "--max-det", "3", "--save-npy", "--method", "gradcam++", "--target", "class")
    assert code == 0, stderr
    assert "heatmaps: gradcam++, target class, layers row" in stdout and "heatmaps/s" in stdout
    for k, (h, w) in enumerate([(72, 120), (90, 60)]):
        entry = json.loads((out / f"im{k}.json").read_text())
        assert (entry["width"], entry["height"]) == (w, h) and entry["input_size"] == [64, 64]
        assert entry["method"] == "gradcam++" and entry["target"] == "class"
        assert cv2.imread(str(out / entry["overview"])) is not None
        assert len(entry["detections"]) == 3
        for rec in entry["detections"]:
            x1, y1, x2, y2 = rec["box"]
            assert 0 <= x1 <= x2 <= w and 0 <= y1 <= y2 <= h  # original pixels
            assert rec["name"] in ("circle", "square", "triangle", "cross") and 0 < rec["conf"] <= 1
            heat = np.load(out / rec["npy"])
            assert heat.shape == (h, w) and heat.dtype == np.float32 and 0 <= heat.min() <= heat.max() <= 1
            pic = cv2.imread(str(out / rec["png"]))
            assert pic is not None and max(pic.shape[:2]) >= 480  # small images are drawn enlarged


def test_renormalize_keeps_heat_inside_the_box_and_attention_draws_gates(checkpoint, image_file, tmp_path, capsys):
    weights = checkpoint("yolov5s-cbam.yaml")
    img = image_file()
    out = tmp_path / "out"
    code, stdout, stderr = _run(capsys, "--weights", weights, "--source", img, "--out", out, "--conf", "0.01",
                                "--max-det", "2", "--renormalize", "--save-npy", "--attention", "--layer", "attention")
    assert code == 0, stderr
    entry = json.loads((out / "img.json").read_text())
    assert entry["renormalized"] and entry["layers"] == ["model.5", "model.8", "model.11"]
    for rec in entry["detections"]:
        heat = np.load(out / rec["npy"])
        inside = box_mask(heat.shape, rec["box"])
        assert heat[~inside].max(initial=0) == 0 and heat[inside].max() == pytest.approx(1, abs=1e-3)
    assert (out / "img_attention.png").stat().st_size > 5000
    gates = np.load(out / "img_attention.npz")
    assert {"row5_CBAM_spatial", "row5_CBAM_channel", "row11_CBAM_spatial"} <= set(gates.files)


@pytest.mark.parametrize("args,message", [
    (["--weights", "missing.pt"], "missing.pt does not exist"),
    (["--method", "scorecam"], "not supported for detections"),
    (["--method", "gradcm"], "unknown; choose one of gradcam"),
    (["--layer", "24"], "row 24 is Detect"),
    (["--layer", "model.99"], "not a row index, a module name"),
    (["--target", "score"], "invalid choice: 'score'"),
    (["--conf", "1.5"], "--conf must be in [0, 1]"),
    (["--source", "nowhere/"], "no such file or folder"),
    (["--attention"], "no attention layers"),
])
def test_mistakes_stop_with_a_message_and_exit_code_2(checkpoint, image_file, tmp_path, capsys, args, message):
    opts = {"--weights": checkpoint("yolov5s.yaml"), "--source": image_file(), "--out": tmp_path / "out",
            "--conf": "0.01"}
    flags = [a for a in args if a == "--attention"]
    pairs = [a for a in args if a != "--attention"]
    opts.update(zip(pairs[::2], pairs[1::2]))
    code, stdout, stderr = _run(capsys, *[x for kv in opts.items() for x in kv], *flags)
    assert code == 2, stdout + stderr
    assert message in stderr and "Traceback" not in stderr


def test_a_file_that_is_not_an_image(checkpoint, tmp_path, capsys):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    code, _, stderr = _run(capsys, "--weights", checkpoint("yolov5s.yaml"), "--source", bad, "--out", tmp_path / "o")
    assert code == 2 and "cannot read image" in stderr and "bad.jpg" in stderr


def test_help_lists_methods_and_targets(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    assert "gradcam++" in text and "conf,class,box,all" in text and "--attention" in text


def test_the_speed_benchmark_runs_and_compares_the_same_maps(checkpoint, image_file, capsys):
    from yolo_attn.benchmarks.heatmap_speed import main as bench_main

    assert bench_main(["--weights", str(checkpoint("yolov5s-cbam.yaml")), "--source", str(image_file()),
                       "--detections", "1", "4", "--repeats", "1", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    for name in ("one-at-a-time, full backward", "one-at-a-time, layers only", "replicated batch",
                 "vectorised"):
        assert out.count(name + " ") >= 2
    chose = [line for line in out.splitlines() if "default (strategy 'auto') chose:" in line]
    assert len(chose) == 2 and "for the 1 detection(s)" in chose[0] and "(fastest here: " in chose[1]
    assert "4 detections, layers row 5 CBAM, row 8 CBAM, row 12 SPPF" in out and "heatmaps/s" in out
