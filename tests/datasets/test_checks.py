"""Data-YAML preflight (``prepare``)."""
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

import yolo_attn  # noqa: F401
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
    monkeypatch.setattr(checks, "online", lambda: False)


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
    monkeypatch.setattr(checks, "online", lambda: True)
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
