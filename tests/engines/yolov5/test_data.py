"""The strict per-image guard around yolov5's verify_image_label (patch strict_dataset_checks)."""
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

import yolo_attn  # noqa: F401  (installs the engine adapter)
from yolo_attn.engines import yolov5 as engine
from yolo_attn.errors import DatasetError

import yolov5.utils.dataloaders as dataloaders


def write_image(path, seed=0, size=32):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    cv2.imwrite(str(path), rng.integers(0, 255, (size, size, 3), dtype=np.uint8))
    return path


def make_dataset(root, n=2):
    for k in range(n):
        write_image(root / "images" / "train" / f"{k}.jpg", seed=k)
        lb = root / "labels" / "train" / f"{k}.txt"
        lb.parent.mkdir(parents=True, exist_ok=True)
        lb.write_text("0 0.5 0.5 0.25 0.25\n")
    return root


# ---------------------------------------------------------------------------------------------------------------
# verify_image_label guard


def yolov5s_own_verify():
    """yolov5's verify_image_label, as the engine adapter found it."""
    engine.uninstall()
    try:
        return dataloaders.verify_image_label
    finally:
        engine.install()


def test_the_guard_is_installed():
    own = yolov5s_own_verify()
    assert dataloaders.verify_image_label is not own and dataloaders.verify_image_label.__wrapped__ is own


def labelled_image(tmp_path, name="a.jpg", label="0 0.5 0.5 0.25 0.25\n"):
    im = write_image(tmp_path / "images" / name)
    lb = tmp_path / "labels" / f"{Path(name).stem}.txt"
    lb.parent.mkdir(parents=True, exist_ok=True)
    lb.write_text(label)
    return im, lb


def test_a_good_image_and_label_pass_through(tmp_path):
    im, lb = labelled_image(tmp_path, label="1 0.5 0.5 0.25 0.25\n0 0.2 0.3 0.1 0.1\n")
    out = dataloaders.verify_image_label((str(im), str(lb), "train: "))
    im_file, labels, shape, segments, nm, nf, ne, nc, msg = out
    assert im_file == str(im) and shape == (32, 32) and (nm, nf, ne, nc) == (0, 1, 0, 0) and msg == ""
    labels = labels[np.argsort(labels[:, 0])]
    np.testing.assert_allclose(labels, [[0, 0.2, 0.3, 0.1, 0.1], [1, 0.5, 0.5, 0.25, 0.25]], rtol=1e-6)


def test_an_image_without_a_label_file_is_a_background_image(tmp_path):
    im = write_image(tmp_path / "images" / "a.jpg")
    out = dataloaders.verify_image_label((str(im), str(tmp_path / "labels" / "a.txt"), ""))
    assert out[0] == str(im) and out[1].shape == (0, 5) and out[4] == 1


@pytest.mark.parametrize("damage", ["cut off", "extra bytes"])
def test_a_jpeg_without_its_end_marker_is_refused_and_left_unchanged(tmp_path, damage):
    im, lb = labelled_image(tmp_path)
    data = im.read_bytes()
    im.write_bytes(data[:-2] if damage == "cut off" else data + b"\x00" * 16)
    before = im.read_bytes()
    with pytest.raises(DatasetError) as e:
        dataloaders.verify_image_label((str(im), str(lb), "train: "))
    msg = str(e.value)
    assert msg.startswith(f"{im}: truncated JPEG") and "never changes your files" in msg
    assert im.read_bytes() == before


def test_yolov5s_own_check_rewrites_a_jpeg_with_extra_bytes(tmp_path):
    """The symptom the guard prevents (so the test above can fail): yolov5 re-saves the user's file in place."""
    im, lb = labelled_image(tmp_path)
    im.write_bytes(im.read_bytes() + b"\x00" * 16)
    before = im.read_bytes()
    result = yolov5s_own_verify()((str(im), str(lb), ""))
    assert "corrupt JPEG restored and saved" in result[-1]
    assert im.read_bytes() != before


def test_random_bytes_named_jpg_are_refused_naming_the_file(tmp_path):
    im = tmp_path / "images" / "noise.jpg"
    im.parent.mkdir(parents=True)
    im.write_bytes(np.random.default_rng(0).integers(0, 256, 2048, dtype=np.uint8).tobytes())
    before = im.read_bytes()
    with pytest.raises(DatasetError) as e:
        dataloaders.verify_image_label((str(im), str(tmp_path / "labels" / "noise.txt"), "train: "))
    msg = str(e.value)
    assert msg.startswith(f"{im}: unusable image or label")
    assert "cannot identify image file" in msg
    assert "Fix or remove the image and its label file" in msg
    assert "WARNING" not in msg and "ignoring" not in msg  # yolov5's wording; yolo-attn does not ignore it
    assert im.read_bytes() == before


@pytest.mark.parametrize("label, reason", [("0 0.5 0.5 1.5 0.25\n", "non-normalized"),
                                           ("0 0.5 0.5 0.25\n", "labels require 5 columns"),
                                           ("-1 0.5 0.5 0.2 0.2\n", "negative label values")])
def test_bad_labels_are_refused_naming_the_image_and_the_reason(tmp_path, label, reason):
    im, lb = labelled_image(tmp_path, label=label)
    for prefix in ("", "\x1b[34m\x1b[1mtrain: \x1b[0m"):
        with pytest.raises(DatasetError) as e:
            dataloaders.verify_image_label((str(im), str(lb), prefix))
        msg = str(e.value)
        assert msg.startswith(f"{im}: unusable image or label") and reason in msg
        assert "ignoring" not in msg and "train" not in msg


def test_yolov5_dataset_loading_stops_at_a_corrupt_image(tmp_path, quiet_yolov5):
    """Through yolov5's own dataset class (its process pool calls the guard)."""
    make_dataset(tmp_path, n=3)
    bad = tmp_path / "images" / "train" / "1.jpg"
    bad.write_bytes(bad.read_bytes()[:-2])
    before = bad.read_bytes()
    with pytest.raises(DatasetError, match=f"{bad}: truncated JPEG"):
        dataloaders.LoadImagesAndLabels(str(tmp_path / "images" / "train"), img_size=64, batch_size=1)
    assert bad.read_bytes() == before
    assert not os.path.exists(tmp_path / "labels" / "train.cache")
