"""scripts/detect.sh (yolo_attn.cli.detect): yolov5's detect.py on an attention variant's checkpoint and on its ONNX
export; the boxes it writes are the model's own; bad input is refused clearly."""
import os
import re
import subprocess
from pathlib import Path

import pytest
import torch
import yaml

from yolo_attn.engines.yolov5.model import save_checkpoint
from yolo_attn.cli import detect as detect_cli
from yolo_attn.cli.pipeline import run_cli as run_main
from yolo_attn.datasets import shapes

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def tiny_aff(tmp_path, quiet_yolov5):
    """A small yolov5s-aff (AFF fuses two maps: the two-input layer kind) with plausible, varied confidences."""
    from yolov5.models.yolo import Model

    d = yaml.safe_load((REPO / "model_yamls" / "yolov5s-aff.yaml").read_text())
    d["depth_multiple"], d["width_multiple"] = 0.33, 0.25
    torch.manual_seed(0)
    model = Model(d, nc=4).eval()
    return save_checkpoint(model, tmp_path / "run" / "weights" / "best.pt", opt={"imgsz": 64})


def expected_labels(weights, image):
    """detect.py's --save-txt --save-conf rows for a 64x64 image at 64 px, computed here from the model itself."""
    import cv2
    from yolov5.models.experimental import attempt_load
    from yolov5.utils.general import non_max_suppression, scale_boxes, xyxy2xywh

    model = attempt_load(str(weights), device="cpu", fuse=True)
    x = torch.from_numpy(cv2.imread(str(image))[:, :, ::-1].transpose(2, 0, 1).copy()).float()[None] / 255
    with torch.no_grad():
        det = non_max_suppression(model(x)[0], 0.001, 0.45, max_det=1000)[0]
    xywh = xyxy2xywh(scale_boxes((64, 64), det[:, :4].clone(), (64, 64)).round()) / 64
    return sort_rows(torch.cat([det[:, 5:6], xywh, det[:, 4:5]], 1))


def sort_rows(t):
    return torch.tensor(sorted(t.tolist(), key=lambda r: (-round(r[5], 4), *r[:5])))


def read_labels(path):
    return sort_rows(torch.tensor([[float(v) for v in line.split()] for line in path.read_text().splitlines()]))


def test_detect_draws_the_models_own_boxes_and_runs_the_onnx_export(tiny_aff, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # runs/ goes here
    shapes.generate(tmp_path / "ds", train=1, val=2, size=64, seed=7)
    images = tmp_path / "ds" / "images" / "val"
    torch.set_num_threads(1)
    assert run_main(detect_cli.main, ["--weights", str(tiny_aff), "--source", str(images), "--save-txt",
                                      "--save-conf", "--conf-thres", "0.001"]) == 0
    out = capsys.readouterr().out
    save_dir = tmp_path / "runs" / "detect" / "run"  # named after the training run
    total = 0
    for image in sorted(images.glob("*.jpg")):
        assert (save_dir / image.name).is_file()  # the annotated copy
        got, expected = read_labels(save_dir / "labels" / f"{image.stem}.txt"), expected_labels(tiny_aff, image)
        assert len(got) > 0 and got.shape == expected.shape
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-4)
        total += len(got)
    counted = re.search(r"^detect: 2 image\(s\), (\d+) box\(es\): ", out, re.M)
    assert counted and int(counted.group(1)) == total, out[-1500:]
    assert f"Results saved to {save_dir}" in out

    from yolov5 import export

    onnx_file = export.run(weights=str(tiny_aff), include=["onnx"], imgsz=[64], opset=12)[0]
    assert run_main(detect_cli.main, ["--weights", onnx_file, "--source", str(images), "--save-txt", "--save-conf",
                                      "--conf-thres", "0.001"]) == 0
    assert f"Results saved to {tmp_path / 'runs' / 'detect' / 'run2'}" in capsys.readouterr().out
    for image in sorted(images.glob("*.jpg")):  # onnxruntime: the same boxes, up to float rounding
        onnx_rows = read_labels(tmp_path / "runs" / "detect" / "run2" / "labels" / f"{image.stem}.txt")
        pt_rows = read_labels(save_dir / "labels" / f"{image.stem}.txt")
        assert onnx_rows.shape == pt_rows.shape
        torch.testing.assert_close(onnx_rows, pt_rows, rtol=0, atol=1.01 / 64)  # a pixel of rounding at most


@pytest.mark.slow
def test_detect_refuses_bad_input_clearly(tiny_aff, tmp_path, capsys, monkeypatch):
    (tmp_path / "bad.pt").write_bytes(b"\x00" * 64)
    env = dict({k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, OMP_NUM_THREADS="1")
    r = subprocess.run([str(REPO / "scripts" / "detect.sh"), "--weights", "bad.pt", "--source", "."], cwd=tmp_path,
                       capture_output=True, text=True, timeout=300, env=env)  # the script, in a process of its own
    assert r.returncode == 2, (r.stdout + r.stderr)[-2000:]
    assert f"yolo-attn: error: {tmp_path / 'bad.pt'} is not a yolov5/yolo-attn checkpoint: it is not a PyTorch " \
           f"checkpoint (a torch.save archive) at all" in r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    monkeypatch.chdir(tmp_path)
    assert run_main(detect_cli.main, ["--weights", str(tiny_aff), "--source", "no_such_folder"]) == 2
    err = capsys.readouterr().err
    assert "--source no_such_folder: not found" in err and "Traceback" not in err
    assert run_main(detect_cli.main, ["--weights", str(tiny_aff)]) == 2
    assert "--source PATH" in capsys.readouterr().err
