"""``yolo-attn convert coco``: small COCO-format fixtures, labels checked against hand-computed values and the
class order against yolov5's own COCO tables."""
import json
import os
import random
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from yolo_attn import paths
from yolo_attn.cli.pipeline import run_cli
from yolo_attn.cli.convert import main as convert_main
from yolo_attn.datasets import checks
from yolo_attn.datasets.convert import coco
from yolo_attn.errors import DatasetError
from label_helpers import assert_rows_close, read_labels

CATEGORIES = [{"id": 5, "name": "dog"}, {"id": 1, "name": "cat"}, {"id": 3, "name": "bird"}]  # -> cat, bird, dog
VAL_IMAGES = [
    {"id": 139, "file_name": "000000000139.jpg", "width": 64, "height": 48},
    {"id": 7, "file_name": "000000000007.jpg", "width": 32, "height": 32},
    {"id": 900, "file_name": "000000000900.jpg", "width": 40, "height": 40},
    {"id": 901, "file_name": "000000000901.jpg", "width": 40, "height": 40},
]
VAL_ANNOTATIONS = [
    {"id": 1, "image_id": 139, "category_id": 1, "bbox": [10, 8, 20, 16], "iscrowd": 0, "area": 320},
    {"id": 2, "image_id": 139, "category_id": 5, "bbox": [50, 40, 20, 10], "iscrowd": 0},  # clipped at 64 x 48
    {"id": 3, "image_id": 139, "category_id": 3, "bbox": [0, 0, 30, 30], "iscrowd": 1},  # crowd: left out
    {"id": 4, "image_id": 139, "category_id": 1, "bbox": [5, 5, 0, 10], "iscrowd": 0},  # no width: dropped
    {"id": 5, "image_id": 7, "category_id": 3, "bbox": [-4, 2, 10, 6]},  # clipped at x = 0; no iscrowd key
    {"id": 6, "image_id": 7, "category_id": 5, "bbox": [40, 40, 5, 5], "iscrowd": 0},  # outside 32 x 32: dropped
    {"id": 7, "image_id": 901, "category_id": 1, "bbox": [1, 1, 30, 30], "iscrowd": 1},  # only a crowd: negative
]
# By hand: class = rank of the category id (cat 1 -> 0, bird 3 -> 1, dog 5 -> 2); box clipped to the image, then
# centre and size divided by the image's width/height.
EXPECTED_VAL = {
    "000000000139": [(0, 20 / 64, 16 / 48, 20 / 64, 16 / 48), (2, 57 / 64, 44 / 48, 14 / 64, 8 / 48)],
    "000000000007": [(1, 3 / 32, 5 / 32, 6 / 32, 6 / 32)],
    "000000000900": [],
    "000000000901": [],
}


def write_image(path, width, height, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8))


def make_split(root, name, images, annotations, categories=CATEGORIES):
    ann = root / "annotations" / f"instances_{name}.json"
    ann.parent.mkdir(parents=True, exist_ok=True)
    ann.write_text(json.dumps({"info": {}, "images": images, "annotations": annotations, "categories": categories}))
    for k, im in enumerate(images):
        write_image(root / name / im["file_name"], im["width"], im["height"], seed=k)
    return ann, root / name


def quiet(*_):
    pass


@pytest.fixture
def val_split(tmp_path):
    return make_split(tmp_path / "src", "val2017", VAL_IMAGES, VAL_ANNOTATIONS)


def test_labels_negatives_and_counts(val_split, tmp_path):
    out = tmp_path / "coco"
    stats = coco.convert([val_split], out, log=quiet)
    for stem, expected in EXPECTED_VAL.items():
        assert (out / "images" / "val2017" / f"{stem}.jpg").is_file()
        assert_rows_close(read_labels(out / "labels" / "val2017" / f"{stem}.txt"), expected)
    assert stats["val2017"] == dict(images=4, boxes=3, negatives=2, crowd=2, degenerate=2, clipped=2)
    assert json.loads((out / "coco" / "val2017_image_ids.json").read_text()) == \
        {"000000000139": 139, "000000000007": 7, "000000000900": 900, "000000000901": 901}


def test_data_yaml_records_the_original_ids(val_split, tmp_path):
    out = tmp_path / "coco"
    notes = []
    coco.convert([val_split], out, log=notes.append)
    data = yaml.safe_load((out / "data.yaml").read_text())
    assert data["path"] == str(out)
    assert data["val"] == data["train"] == "images/val2017"  # one split: used for both, and said so
    assert any("no split named train" in n for n in notes)
    assert data["names"] == {0: "cat", 1: "bird", 2: "dog"}
    assert data["coco_category_ids"] == [1, 3, 5]
    assert data["coco_annotations"] == {"val2017": str(val_split[0])}
    assert data["coco_image_ids"] == {"val2017": "coco/val2017_image_ids.json"}
    assert Path(checks.prepare(out / "data.yaml")) == out / "data.yaml"


def test_train_and_val_splits(val_split, tmp_path):
    train_images = [{"id": 1, "file_name": "000000000001.jpg", "width": 50, "height": 20}]
    train_anns = [{"id": 10, "image_id": 1, "category_id": 3, "bbox": [5, 0, 10, 20], "iscrowd": 0, "area": 200}]
    train = make_split(tmp_path / "src", "train2017", train_images, train_anns)
    out = tmp_path / "coco"
    coco.convert([train, val_split], out, log=quiet)
    data = yaml.safe_load((out / "data.yaml").read_text())
    assert (data["train"], data["val"]) == ("images/train2017", "images/val2017")
    assert set(data["coco_annotations"]) == {"train2017", "val2017"}
    assert_rows_close(read_labels(out / "labels" / "train2017" / "000000000001.txt"), [(1, 0.2, 0.5, 0.2, 1.0)])


def test_real_coco_categories_give_yolov5s_80_class_indices(tmp_path):
    from yolov5.utils.general import coco80_to_coco91_class

    ids = coco80_to_coco91_class()  # yolov5's table: class k of coco.yaml is COCO category ids[k]
    names = yaml.safe_load((paths.yolov5_root() / "data" / "coco.yaml").read_text())["names"]
    categories = [{"id": cid, "name": names[k], "supercategory": "x"} for k, cid in enumerate(ids)]
    random.Random(0).shuffle(categories)  # file order must not matter, only the ids
    images = [{"id": 77, "file_name": "000000000077.jpg", "width": 100, "height": 100}]
    anns = [{"id": 1000 + cid, "image_id": 77, "category_id": cid, "bbox": [cid, 1, 2, 2], "iscrowd": 0}
            for cid in sorted(ids, reverse=True)]
    split = make_split(tmp_path / "src", "val2017", images, anns, categories)
    out = tmp_path / "coco"
    coco.convert([split], out, log=quiet)
    data = yaml.safe_load((out / "data.yaml").read_text())
    assert data["names"] == names and data["coco_category_ids"] == ids
    rows = read_labels(out / "labels" / "val2017" / "000000000077.txt")
    got = {round(r[1] * 100 - 1): r[0] for r in rows}  # each box's x centre encodes its category id
    assert got == {cid: ids.index(cid) for cid in ids}


@pytest.mark.parametrize("mode", ["link", "symlink", "copy"])
def test_image_modes(val_split, tmp_path, mode):
    out = tmp_path / "coco"
    coco.convert([val_split], out, images=mode, log=quiet)
    src = val_split[1] / "000000000139.jpg"
    dst = out / "images" / "val2017" / "000000000139.jpg"
    assert dst.read_bytes() == src.read_bytes()
    assert dst.is_symlink() == (mode == "symlink") and os.path.samefile(dst, src) == (mode != "copy")


def test_clashing_file_names_get_label_files_of_their_own(tmp_path):
    images = [{"id": 1, "file_name": "a/x.jpg", "width": 20, "height": 20},
              {"id": 2, "file_name": "b/x.jpg", "width": 20, "height": 20},
              {"id": 3, "file_name": "y.jpg", "width": 20, "height": 20},
              {"id": 4, "file_name": "y.png", "width": 20, "height": 20}]
    anns = [{"id": k, "image_id": k, "category_id": 1, "bbox": [0, 0, 2 * k, 2 * k]} for k in (1, 2, 3, 4)]
    split = make_split(tmp_path / "src", "val", images, anns)
    out = tmp_path / "coco"
    coco.convert([split], out, log=quiet)
    ids = json.loads((out / "coco" / "val_image_ids.json").read_text())
    assert ids == {"a__x": 1, "b__x": 2, "y__jpg": 3, "y__png": 4}
    assert sorted(p.name for p in (out / "images" / "val").iterdir()) == ["a__x.jpg", "b__x.jpg", "y__jpg.jpg",
                                                                          "y__png.png"]
    for stem, k in ids.items():  # each label file holds its own image's box (2k px of 20)
        assert_rows_close(read_labels(out / "labels" / "val" / f"{stem}.txt"), [(0, k / 20, k / 20, k / 10, k / 10)])


def _corrupt(ann_path, edit):
    data = json.loads(ann_path.read_text())
    edit(data)
    ann_path.write_text(json.dumps(data))


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["annotations"][1].update(bbox=[1, 2, 3]),
     "annotations[1] (id 2): 'bbox' must be 4 numbers [x, y, width, height], got [1, 2, 3]."),
    (lambda d: d["annotations"][4].update(bbox=[1, 2, "3", 4]),
     "annotations[4] (id 5): 'bbox' must be 4 numbers [x, y, width, height], got [1, 2, '3', 4]."),
    (lambda d: d["annotations"][0].update(category_id=99),
     "annotations[0] (id 1): category_id 99 is not in 'categories' (ids [1, 3, 5])."),
    (lambda d: d["annotations"][2].update(image_id=12345), "annotations[2] (id 3): image_id 12345 is not in 'images'."),
    (lambda d: d["annotations"][0].update(iscrowd=2), "annotations[0] (id 1): 'iscrowd' must be 0 or 1, got 2."),
    (lambda d: d["images"][1].pop("height"), "images[1] (id 7): needs positive 'width' and 'height', got width=32, "
                                             "height=None."),
    (lambda d: d["images"].append(dict(d["images"][0])), "images[4] (id 139): image id 139 is used twice."),
    (lambda d: d["categories"].append({"id": 3, "name": "bird2"}), "categories[3]: category id 3 is used twice."),
    (lambda d: d.pop("annotations"), "no 'annotations' list; a COCO detection file has 'images', 'annotations' and "
                                     "'categories' (image-info files such as test-dev have no annotations"),
])
def test_malformed_records_name_the_file_and_the_record(val_split, tmp_path, edit, message):
    _corrupt(val_split[0], edit)
    with pytest.raises(DatasetError) as e:
        coco.convert([val_split], tmp_path / "coco", log=quiet)
    assert str(e.value).startswith(f"{val_split[0]}: {message}")
    assert not (tmp_path / "coco").exists()


def test_invalid_json_through_the_cli(val_split, tmp_path, capsys):
    text = val_split[0].read_text()
    val_split[0].write_text(text[:200])  # cut off
    out = tmp_path / "coco"
    assert run_cli(convert_main, ["coco", str(val_split[0]), str(val_split[1]), str(out)]) == 2
    err = capsys.readouterr().err
    assert f"yolo-attn: error: {val_split[0]}: not valid JSON: " in err and "line 1, column" in err
    assert "Traceback" not in err


def test_failure_in_a_later_split_leaves_no_output(val_split, tmp_path):
    """The first split is fully written when the second fails: nothing of it may remain, OUT must not appear."""
    bad = make_split(tmp_path / "src", "test2017", VAL_IMAGES[:1], [{"id": 1, "image_id": 139, "category_id": 1,
                                                                     "bbox": "oops"}])
    with pytest.raises(DatasetError, match="'bbox' must be 4 numbers"):
        coco.convert([val_split, bad], tmp_path / "coco", log=quiet)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


def test_missing_images_are_listed(val_split, tmp_path):
    (val_split[1] / "000000000900.jpg").unlink()
    with pytest.raises(DatasetError) as e:
        coco.convert([val_split], tmp_path / "coco", log=quiet)
    assert f"{val_split[0]}: 1 of its 4 images are not in {val_split[1]}" in str(e.value)
    assert str(val_split[1] / "000000000900.jpg") in str(e.value)


def test_cli_pairs_and_split_names(val_split, tmp_path, capsys):
    out = tmp_path / "coco"
    assert run_cli(convert_main, ["coco", str(val_split[0]), str(out)]) == 2
    assert "ANNOTATIONS_JSON IMAGES_DIR pairs and then OUT" in capsys.readouterr().err
    custom = tmp_path / "export.json"
    custom.write_text(val_split[0].read_text())
    assert run_cli(convert_main, ["coco", str(custom), str(val_split[1]), str(out)]) == 0  # named by its folder
    assert (out / "images" / "val2017").is_dir()
    odd = tmp_path / "pics"
    odd.symlink_to(val_split[1])
    assert run_cli(convert_main, ["coco", str(custom), str(odd), str(tmp_path / "c2")]) == 2
    assert "cannot tell which split" in capsys.readouterr().err
    assert run_cli(convert_main, ["coco", str(custom), str(odd), str(tmp_path / "c2"), "--splits", "val"]) == 0
    assert yaml.safe_load((tmp_path / "c2" / "data.yaml").read_text())["val"] == "images/val"


# ---------------------------------------------------------------------------------------------------------------
# hostile or malformed input


@pytest.mark.parametrize("how", ["absolute", "dotdot", "dotdot-inside", "dotdot-harmless"])
def test_file_names_outside_the_image_folder_are_refused(val_split, tmp_path, how):
    """A file_name may not pull a file from elsewhere into OUT (a hard link to any file the user can read). '..' is
    refused even where it stays inside: a symlinked subfolder would make a/.. lead elsewhere, and COCO files have
    no reason to use it."""
    secret = tmp_path / "private" / "secret.jpg"
    write_image(secret, 8, 8)
    value = {"absolute": str(secret), "dotdot": "../../private/secret.jpg",
             "dotdot-inside": "sub/../../../private/secret.jpg", "dotdot-harmless": "sub/../000000000900.jpg"}[how]
    _corrupt(val_split[0], lambda d: d["images"][2].update(file_name=value))
    out = tmp_path / "coco"
    with pytest.raises(DatasetError) as e:
        coco.convert([val_split], out, log=quiet)
    assert str(e.value).startswith(f"{val_split[0]}: images[2] (id 900): file_name {value!r} is not a path inside "
                                   f"the image folder {val_split[1]}")
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["private", "src"]


def test_file_names_in_subfolders_stay_allowed(tmp_path):
    images = [{"id": 1, "file_name": "a/b/x.jpg", "width": 20, "height": 20},
              {"id": 2, "file_name": "./y.jpg", "width": 20, "height": 20}]
    split = make_split(tmp_path / "src", "val", images, [])
    coco.convert([split], tmp_path / "coco", log=quiet)
    assert sorted(p.name for p in (tmp_path / "coco" / "images" / "val").iterdir()) == ["x.jpg", "y.jpg"]


@pytest.mark.parametrize("mode", ["symlink", "link"])
def test_images_read_from_inside_out_are_refused(val_split, tmp_path, capsys, mode):
    """Re-converting from OUT's own images with --overwrite made every image a link to itself (symlink), or relied
    on files of the folder being replaced: refused before anything is touched."""
    out = tmp_path / "coco"
    assert run_cli(convert_main, ["coco", *map(str, val_split), str(out), "--images", "copy"]) == 0
    before = {p.name: p.read_bytes() for p in (out / "images" / "val2017").iterdir()}
    assert run_cli(convert_main, ["coco", str(val_split[0]), str(out / "images" / "val2017"), str(out),
                                  "--overwrite", "--images", mode, "--splits", "val2017"]) == 2
    err = capsys.readouterr().err
    assert f"{(out / 'images' / 'val2017').resolve()} is inside OUT ({out})" in err and "Traceback" not in err
    assert {p.name: p.read_bytes() for p in (out / "images" / "val2017").iterdir()} == before
    assert not any(p.is_symlink() for p in (out / "images" / "val2017").iterdir())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["coco", "src"]


@pytest.mark.parametrize("text, shown", [("Infinity", "inf"), ("NaN", "nan"), ("-64", "-64"), ("0", "0"),
                                         ("1" + "0" * 400, "1000000000")])
def test_image_sizes_must_be_finite_positive(val_split, tmp_path, text, shown):
    """Python's json reads Infinity and NaN: a width of Infinity gave labels of zero width."""
    raw = val_split[0].read_text()
    val_split[0].write_text(raw.replace('"width": 64', f'"width": {text}', 1))
    with pytest.raises(DatasetError) as e:
        coco.convert([val_split], tmp_path / "coco", log=quiet)
    assert str(e.value).startswith(f"{val_split[0]}: images[0] (id 139): needs positive 'width' and 'height', "
                                   f"got width={shown}")
    assert not (tmp_path / "coco").exists()


@pytest.mark.parametrize("text", ["Infinity", "-Infinity", "NaN", "1" + "0" * 400])
def test_non_finite_boxes_are_errors(val_split, tmp_path, text):
    raw = val_split[0].read_text()
    val_split[0].write_text(raw.replace('"bbox": [10, 8, 20, 16]', f'"bbox": [10, 8, {text}, 16]', 1))
    with pytest.raises(DatasetError) as e:
        coco.convert([val_split], tmp_path / "coco", log=quiet)
    assert str(e.value).startswith(f"{val_split[0]}: annotations[0] (id 1): 'bbox' must be 4 numbers")


@pytest.mark.parametrize("text, message", [
    ('{"images": ' + "[" * 100_000 + "]" * 100_000 + "}", "nesting too deep."),
    ('{"images": [' + "9" * 5000 + "]}", "Exceeds the limit (4300 digits) for integer string conversion"),
])
def test_json_python_cannot_read_is_not_a_traceback(val_split, tmp_path, capsys, text, message):
    val_split[0].write_text(text)
    out = tmp_path / "coco"
    assert run_cli(convert_main, ["coco", *map(str, val_split), str(out)]) == 2
    err = capsys.readouterr().err
    assert f"yolo-attn: error: {val_split[0]}: not a COCO annotation file: {message}" in err
    assert not out.exists()
