"""Data-YAML preflight (``prepare``) and the strict per-image guard around yolov5's verify_image_label."""
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

import yolo_attn  # noqa: F401  (installs the guard)
from yolo_attn.datasets import checks
from yolo_attn.errors import DatasetError

import yolov5.utils.dataloaders as dataloaders
import yolov5.utils.general as general


def write_image(path, seed=0, size=32):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    cv2.imwrite(str(path), rng.integers(0, 255, (size, size, 3), dtype=np.uint8))
    return path


def make_dataset(root, splits=("train", "val"), labels=True, n=2):
    for split in splits:
        for k in range(n):
            write_image(root / "images" / split / f"{k}.jpg", seed=k)
            if labels:
                lb = root / "labels" / split / f"{k}.txt"
                lb.parent.mkdir(parents=True, exist_ok=True)
                lb.write_text("0 0.5 0.5 0.25 0.25\n")
    return root


def write_yaml(file, **data):
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(yaml.safe_dump(data, sort_keys=False))
    return file


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setattr(checks, "_online", lambda: False)


@pytest.fixture
def cleanup():
    made = []
    yield made
    for p in made:
        if Path(p).is_file() and Path(p).name.startswith("yolo-attn-"):
            Path(p).unlink()


# ---------------------------------------------------------------------------------------------------------------
# prepare()


def test_relative_path_is_resolved_against_the_yaml_folder_and_the_yaml_is_untouched(tmp_path, monkeypatch, cleanup):
    make_dataset(tmp_path / "sets" / "mine")
    cfg = write_yaml(tmp_path / "sets" / "mine.yaml", path="mine", train="images/train", val="images/val",
                     names={0: "thing"})
    original = cfg.read_bytes()
    monkeypatch.chdir(tmp_path)  # neither the working directory nor yolov5's folder should matter
    out = checks.prepare(cfg)
    cleanup.append(out)
    assert cfg.read_bytes() == original
    assert out != cfg
    data = yaml.safe_load(Path(out).read_text())
    assert data == {"path": str((tmp_path / "sets" / "mine").resolve()), "train": "images/train",
                    "val": "images/val", "names": {0: "thing"}}
    # and yolov5 reads it as meant
    resolved = general.check_dataset(str(out))
    assert resolved["train"] == str(tmp_path / "sets" / "mine" / "images" / "train")
    assert resolved["val"] == str(tmp_path / "sets" / "mine" / "images" / "val")


def test_missing_path_key_means_the_yaml_folder(tmp_path, cleanup):
    make_dataset(tmp_path)
    cfg = write_yaml(tmp_path / "data.yaml", train="images/train", val="images/val", names=["a", "b"])
    out = checks.prepare(cfg)
    cleanup.append(out)
    assert yaml.safe_load(Path(out).read_text())["path"] == str(tmp_path.resolve())


def test_absolute_path_needs_no_copy(tmp_path):
    make_dataset(tmp_path / "d")
    cfg = write_yaml(tmp_path / "data.yaml", path=str(tmp_path / "d"), train="images/train", val="images/val",
                     names={0: "a"})
    assert Path(checks.prepare(cfg)) == cfg


def test_split_given_as_a_txt_list(tmp_path, cleanup):
    make_dataset(tmp_path, splits=("train",))
    (tmp_path / "train.txt").write_text("images/train/0.jpg\nimages/train/1.jpg\n")
    cfg = write_yaml(tmp_path / "data.yaml", path=".", train="train.txt", val="train.txt", names={0: "a"})
    out = checks.prepare(cfg)
    cleanup.append(out)
    assert yaml.safe_load(Path(out).read_text())["path"] == str(tmp_path.resolve())
    # the listed images (relative to the list's folder) are the ones whose labels are checked
    write_image(tmp_path / "images" / "extra" / "x.jpg")
    (tmp_path / "val.txt").write_text("images/extra/x.jpg\n")
    cfg = write_yaml(tmp_path / "data.yaml", path=".", train="train.txt", val="val.txt", names={0: "a"})
    with pytest.raises(DatasetError, match="the val split has 1 images but no label files"):
        checks.prepare(cfg)


def test_missing_split_folder_lists_the_looked_for_path(tmp_path, offline):
    make_dataset(tmp_path, splits=("train",))
    cfg = write_yaml(tmp_path / "data.yaml", path=".", train="images/train", val="images/valid", names={0: "a"})
    with pytest.raises(DatasetError) as e:
        checks.prepare(cfg)
    msg = str(e.value)
    assert str(cfg) in msg and "the val split is not on disk" in msg
    assert f"Looked for:\n  {tmp_path.resolve() / 'images' / 'valid'}" in msg


def test_missing_split_with_a_download_section_says_offline(tmp_path, offline):
    cfg = write_yaml(tmp_path / "coco.yaml", path=str(tmp_path / "coco"), train="images/train2017",
                     val="images/val2017", names={0: "person"}, download="https://example.invalid/coco.zip")
    with pytest.raises(DatasetError) as e:
        checks.prepare(cfg)
    msg = str(e.value)
    assert "the train split is not on disk" in msg and str(tmp_path / "coco" / "images" / "train2017") in msg
    assert "offline" in msg and "download:" in msg


def test_missing_split_with_a_download_section_is_left_to_yolov5_when_online(tmp_path, monkeypatch):
    monkeypatch.setattr(checks, "_online", lambda: True)
    cfg = write_yaml(tmp_path / "coco.yaml", path=str(tmp_path / "coco"), train="images/train2017",
                     val="images/val2017", names={0: "person"}, download="https://example.invalid/coco.zip")
    assert Path(checks.prepare(cfg)) == cfg


def test_split_without_images_lists_the_image_types(tmp_path):
    (tmp_path / "images" / "train").mkdir(parents=True)
    (tmp_path / "images" / "train" / "notes.md").write_text("x")
    make_dataset(tmp_path, splits=("val",))
    cfg = write_yaml(tmp_path / "data.yaml", path=str(tmp_path), train="images/train", val="images/val",
                     names={0: "a"})
    with pytest.raises(DatasetError) as e:
        checks.prepare(cfg)
    msg = str(e.value)
    assert "the train split has no images in" in msg and str(tmp_path / "images" / "train") in msg
    assert ".jpg" in msg and ".png" in msg


def test_images_without_labels_say_where_labels_were_expected_and_their_format(tmp_path):
    make_dataset(tmp_path, labels=False)
    cfg = write_yaml(tmp_path / "data.yaml", path=str(tmp_path), train="images/train", val="images/val",
                     names={0: "a"})
    with pytest.raises(DatasetError) as e:
        checks.prepare(cfg)
    msg = str(e.value)
    assert "the train split has 2 images but no label files" in msg
    assert str(tmp_path / "labels" / "train") in msg
    assert str(tmp_path / "labels" / "train" / "0.txt") in msg or str(tmp_path / "labels" / "train" / "1.txt") in msg
    assert "class x_center y_center width height" in msg and "normalised to 0-1" in msg


@pytest.mark.parametrize("content, expected", [
    ({"train": "a", "val": "b"}, "missing field(s) names"),
    ({"names": {0: "a"}}, "missing field(s) train, val"),
    (["train", "val"], "a data YAML is a mapping"),
])
def test_incomplete_data_yaml_is_a_clear_error(tmp_path, content, expected):
    cfg = tmp_path / "data.yaml"
    cfg.write_text(yaml.safe_dump(content))
    with pytest.raises(DatasetError) as e:
        checks.prepare(cfg)
    assert str(cfg) in str(e.value) and expected in str(e.value)


def test_unreadable_data_yaml_is_a_clear_error(tmp_path):
    cfg = tmp_path / "data.yaml"
    cfg.write_text("train: [a\n")
    with pytest.raises(DatasetError, match="cannot read the data YAML"):
        checks.prepare(cfg)
    with pytest.raises(DatasetError, match="cannot read the data YAML"):
        checks.prepare(tmp_path / "absent.yaml")


def test_yolov5_builtin_yaml_with_a_relative_path_is_left_alone(tmp_path):
    cfg = write_yaml(tmp_path / "coco128.yaml", path="../datasets/coco128", train="images/train2017",
                     val="images/train2017", names={0: "person"})
    assert Path(checks.prepare(cfg, is_yolov5_builtin=True)) == cfg


def test_label_path_follows_yolov5s_rule():
    assert checks.label_path("/d/images/train/a.jpg") == Path("/d/labels/train/a.txt")
    assert checks.label_path("/images/x/images/train/a.b.png") == Path("/images/x/labels/train/a.b.txt")
    assert [str(checks.label_path(p)) for p in ["/d/images/train/a.jpg", "/images/x/images/train/a.b.png"]] == \
        dataloaders.img2label_paths(["/d/images/train/a.jpg", "/images/x/images/train/a.b.png"])


# ---------------------------------------------------------------------------------------------------------------
# verify_image_label guard


def test_the_guard_is_installed():
    assert dataloaders.verify_image_label is checks.verify_image_label
    assert checks._original_verify is not None and checks._original_verify is not checks.verify_image_label
    checks.install_guards()  # idempotent
    assert checks._original_verify is not checks.verify_image_label


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
    result = checks._original_verify((str(im), str(lb), ""))
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
    make_dataset(tmp_path, splits=("train",), n=3)
    bad = tmp_path / "images" / "train" / "1.jpg"
    bad.write_bytes(bad.read_bytes()[:-2])
    before = bad.read_bytes()
    with pytest.raises(DatasetError, match=f"{bad}: truncated JPEG"):
        dataloaders.LoadImagesAndLabels(str(tmp_path / "images" / "train"), img_size=64, batch_size=1)
    assert bad.read_bytes() == before
    assert not os.path.exists(tmp_path / "labels" / "train.cache")
