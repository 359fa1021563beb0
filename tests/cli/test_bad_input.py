"""User mistakes give a clear message and a non-zero exit, never a traceback, and touch no user file."""
import hashlib
from pathlib import Path

import numpy as np
import pytest
import yaml

from yolo_attn.datasets import shapes

pytestmark = pytest.mark.slow  # each test runs a command in a fresh process (about 6 s of imports)


def _assert_clean_failure(result, *needles):
    out = result.stdout + result.stderr
    assert result.returncode == 2, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    for needle in needles:
        assert needle in out, f"{needle!r} not in:\n{out[-3000:]}"


def _digest(folder):
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def _tiny_dataset(root):
    return shapes.generate(root, train=4, val=2, size=64, seed=3)


def test_unknown_cfg_lists_available(run_cli):
    r = run_cli("train", "--cfg", "yolov5s-cbma.yaml")
    _assert_clean_failure(r, "model cfg 'yolov5s-cbma.yaml' not found", "yolov5s-cbam.yaml")


def test_unknown_data_name(run_cli):
    r = run_cli("train", "--cfg", "yolov5s.yaml", "--data", "no-such-data.yaml")
    _assert_clean_failure(r, "data YAML 'no-such-data.yaml' not found", "Looked at")


def test_unknown_layer_in_yaml(run_cli, tmp_path):
    cfg = yaml.safe_load(Path("model_yamls/yolov5s-cbam.yaml").read_text()) if Path("model_yamls").is_dir() else None
    from yolo_attn.paths import MODEL_YAMLS

    cfg = yaml.safe_load((MODEL_YAMLS / "yolov5s-cbam.yaml").read_text())
    cfg["backbone"][5][2] = "CBMA"
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(cfg))
    data = _tiny_dataset(tmp_path / "ds")
    r = run_cli("train", "--cfg", tmp_path / "bad.yaml", "--data", data, "--epochs", "1", "--imgsz", "64")
    _assert_clean_failure(r, "unknown layer type 'CBMA'", "Did you mean 'CBAM'", "layer 5 (backbone row 5)", "SE")


def test_python_expression_in_yaml_is_not_evaluated(run_cli, tmp_path):
    from yolo_attn.paths import MODEL_YAMLS

    marker = tmp_path / "pwned"
    cfg = yaml.safe_load((MODEL_YAMLS / "yolov5s.yaml").read_text())
    cfg["backbone"][0][3] = [f"__import__('pathlib').Path('{marker}').touch()", 6, 2, 2]
    (tmp_path / "evil.yaml").write_text(yaml.safe_dump(cfg))
    data = _tiny_dataset(tmp_path / "ds")
    r = run_cli("train", "--cfg", tmp_path / "evil.yaml", "--data", data, "--epochs", "1", "--imgsz", "64")
    _assert_clean_failure(r, "looks like a Python expression", "never evaluates")
    assert not marker.exists()


def test_dataset_without_labels(run_cli, tmp_path):
    data = _tiny_dataset(tmp_path / "ds")
    for label in (tmp_path / "ds" / "labels").rglob("*.txt"):
        label.unlink()
    before = _digest(tmp_path / "ds")
    r = run_cli("train", "--cfg", "yolov5s.yaml", "--data", data, "--epochs", "1", "--imgsz", "64")
    _assert_clean_failure(r, "no label files", "labels", "class x_center y_center width height")
    assert _digest(tmp_path / "ds") == before


def test_corrupt_image_is_reported_and_not_rewritten(run_cli, tmp_path):
    data = _tiny_dataset(tmp_path / "ds")
    victim = sorted((tmp_path / "ds" / "images" / "train").glob("*.jpg"))[1]
    victim.write_bytes(victim.read_bytes()[:-300])  # truncated JPEG: yolov5 alone would re-save it in place
    before = _digest(tmp_path / "ds" / "images")
    r = run_cli("train", "--cfg", "yolov5s.yaml", "--data", data, "--epochs", "1", "--imgsz", "64", "--workers", "0")
    _assert_clean_failure(r, victim.name, "truncated JPEG")
    assert _digest(tmp_path / "ds" / "images") == before


def test_missing_weights_offline_says_what_is_missing(run_cli, monkeypatch):
    from yolo_attn import paths

    if paths.online():
        import pytest

        pytest.skip("this check is about offline machines")
    r = run_cli("train", "--cfg", "yolov5s.yaml", "--weights", "yolov5s.pt")
    _assert_clean_failure(r, "yolov5s.pt", "offline", "GitHub releases")


def test_val_rejects_a_file_that_is_not_a_checkpoint(run_cli, tmp_path):
    bogus = tmp_path / "model.pt"
    bogus.write_bytes(np.random.default_rng(0).bytes(1000))
    r = run_cli("val", "--weights", bogus)
    _assert_clean_failure(r, "is not a PyTorch checkpoint")
