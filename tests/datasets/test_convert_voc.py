"""``yolo-attn convert voc``: a small VOCdevkit in the original format, labels checked against hand-computed values
and against yolov5's own conversion code (the download script in its VOC.yaml)."""
import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from yolo_attn import paths
from yolo_attn.cli.pipeline import run_cli
from yolo_attn.cli.convert import main as convert_main
from yolo_attn.datasets import checks
from yolo_attn.datasets.convert import voc
from yolo_attn.errors import DatasetError, UsageError
from label_helpers import assert_rows_close, read_labels

# (year, id, (width, height) in the XML, (width, height) of the image, objects: name, difficult, xmin, ymin, xmax, ymax)
# difficult None: no <difficult> tag. Sizes (0, 0) in the XML: read from the image.
IMAGES = [
    ("2007", "000001", (200, 100), (200, 100), [("dog", 0, 11, 21, 61, 81), ("person", 1, 1, 1, 10, 10)]),
    ("2007", "000002", (300, 150), (300, 150), [("aeroplane", 0, 1, 1, 300, 150),
                                                 ("tvmonitor", 0, 50.5, 20, 70.5, 40)]),
    ("2007", "000003", (100, 100), (100, 100), [("car", 1, 1, 1, 50, 50), ("bus", 1, 10, 10, 90, 90)]),
    ("2007", "000004", (100, 100), (100, 100), [("cat", None, 10, 10, 30, 50), ("unicorn", 0, 1, 1, 9, 9),
                                                 ("sheep", 0, 40, 40, 40, 60)]),
    ("2012", "2008_000001", (64, 48), (64, 48), [("bicycle", 0, 5, 5, 25, 45)]),
    ("2012", "2008_000002", (0, 0), (64, 48), [("bird", 0, 33, 1, 64, 48)]),
]
SETS = {("2007", "train"): ["000001"], ("2007", "val"): ["000002"], ("2007", "test"): ["000003", "000004"],
        ("2012", "train"): ["2008_000001"], ("2012", "val"): ["2008_000002"]}

# Worked out by hand from yolov5's rule: centre ((min + max) / 2 - 1) / size, extent (max - min) / size.
EXPECTED = {
    "train2007/000001": [(11, 0.175, 0.5, 0.25, 0.6)],  # ((11+61)/2-1)/200, ((21+81)/2-1)/100, 50/200, 60/100
    "val2007/000002": [(0, 149.5 / 300, 74.5 / 150, 299 / 300, 149 / 150),
                       (19, 59.5 / 300, 29 / 150, 20 / 300, 20 / 150)],
    "test2007/000003": [],  # only difficult objects: a negative
    "test2007/000004": [(7, 0.19, 0.29, 0.2, 0.4)],  # no <difficult> tag = 0; unicorn and the flat sheep left out
    "train2012/2008_000001": [(1, 14 / 64, 24 / 48, 20 / 64, 40 / 48)],
    "val2012/2008_000002": [(2, 47.5 / 64, 23.5 / 48, 31 / 64, 47 / 48)],  # size read from the 64x48 image
}


def _xml(size, objects):
    parts = [f"<annotation><folder>VOC</folder><size><width>{size[0]}</width><height>{size[1]}</height>"
             f"<depth>3</depth></size>"]
    for name, difficult, x1, y1, x2, y2 in objects:
        d = "" if difficult is None else f"<difficult>{difficult}</difficult>"
        parts.append(f"<object><name>{name}</name><pose>Left</pose><truncated>0</truncated>{d}<bndbox>"
                     f"<xmin>{x1}</xmin><ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>")
    return "".join(parts) + "</annotation>\n"


def make_devkit(root, images=IMAGES, sets=SETS):
    devkit = root / "VOCdevkit"
    for year, image_id, xml_size, im_size, objects in images:
        d = devkit / f"VOC{year}"
        for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        (d / "Annotations" / f"{image_id}.xml").write_text(_xml(xml_size, objects))
        rng = np.random.default_rng(len(image_id))
        cv2.imwrite(str(d / "JPEGImages" / f"{image_id}.jpg"),
                    rng.integers(0, 255, (im_size[1], im_size[0], 3), dtype=np.uint8))
    for (year, image_set), ids in sets.items():
        (devkit / f"VOC{year}" / "ImageSets" / "Main" / f"{image_set}.txt").write_text("".join(i + "\n" for i in ids))
    return devkit


@pytest.fixture
def devkit(tmp_path):
    return make_devkit(tmp_path / "src")


def test_labels_splits_and_data_yaml(devkit, tmp_path):
    out = tmp_path / "voc"
    stats = voc.convert(devkit, out, log=lambda *_: None)
    for key, expected in EXPECTED.items():
        split, image_id = key.split("/")
        assert (out / "images" / split / f"{image_id}.jpg").is_file()
        assert_rows_close(read_labels(out / "labels" / split / f"{image_id}.txt"), expected)
    assert sorted(p.name for p in (out / "images").iterdir()) == \
        ["test2007", "train2007", "train2012", "val2007", "val2012"]
    assert stats["test2007"] == dict(images=2, boxes=1, negatives=1, difficult=2, unknown_class=1, degenerate=1,
                                     clipped=0, size_from_image=0)
    assert stats["val2012"]["size_from_image"] == 1
    assert stats["train2007"]["difficult"] == 1

    data = yaml.safe_load((out / "data.yaml").read_text())
    yolov5_voc = yaml.safe_load((paths.yolov5_root() / "data" / "VOC.yaml").read_text())
    # the same splits and classes as yolov5's VOC.yaml, with path: pointing at the local copy
    assert data["path"] == str(out)
    assert data["train"] == yolov5_voc["train"] == ["images/train2012", "images/train2007", "images/val2012",
                                                    "images/val2007"]
    assert data["val"] == "images/test2007" and yolov5_voc["val"] == ["images/test2007"]
    assert data["names"] == yolov5_voc["names"]
    assert (out / "COMPLETE.json").is_file()
    assert Path(checks.prepare(out / "data.yaml")) == out / "data.yaml"


def _yolov5_convert_label():
    """``convert_label`` as defined in yolov5's own VOC.yaml download script (the part before the download)."""
    spec = yaml.safe_load((paths.yolov5_root() / "data" / "VOC.yaml").read_text())
    code = spec["download"].split("# Download")[0]
    scope = {"yaml": spec}
    exec(code, scope)  # yolov5's own text (ElementTree parsing, no download), our fixture as input
    return scope["convert_label"]


def test_labels_match_yolov5s_own_conversion(devkit, tmp_path):
    out = tmp_path / "voc"
    voc.convert(devkit, out, log=lambda *_: None)
    convert_label = _yolov5_convert_label()
    # yolov5's script crashes on 000004 (no <difficult>) and 2008_000002 (width 0): compared on the others
    for key in ("train2007/000001", "val2007/000002", "test2007/000003", "train2012/2008_000001"):
        split, image_id = key.split("/")
        reference = tmp_path / f"{image_id}.yolov5.txt"
        convert_label(devkit, reference, split[-4:], image_id)
        assert_rows_close(read_labels(out / "labels" / split / f"{image_id}.txt"), read_labels(reference))


def test_yolov5_reads_the_converted_labels(devkit, tmp_path):
    from yolov5.utils.dataloaders import LoadImagesAndLabels

    out = tmp_path / "voc"
    voc.convert(devkit, out, log=lambda *_: None)
    ds = LoadImagesAndLabels(str(out / "images" / "val2007"), img_size=64, batch_size=1)
    assert [Path(f).name for f in ds.im_files] == ["000002.jpg"]
    assert np.allclose(ds.labels[0], [list(r) for r in EXPECTED["val2007/000002"]], atol=1e-6)


def test_only_voc2012_falls_back_to_train_val(tmp_path):
    images = [i for i in IMAGES if i[0] == "2012"]
    devkit = make_devkit(tmp_path / "src", images, {k: v for k, v in SETS.items() if k[0] == "2012"})
    notes = []
    voc.convert(devkit / "VOC2012", tmp_path / "voc", log=notes.append)  # a VOC2012 folder works as the root too
    data = yaml.safe_load((tmp_path / "voc" / "data.yaml").read_text())
    assert (data["train"], data["val"]) == ("images/train2012", "images/val2012")
    assert any("no VOC2007/ImageSets/Main/test.txt" in n for n in notes)


def test_only_voc2007_test(tmp_path):
    devkit = make_devkit(tmp_path / "src", [i for i in IMAGES if i[1] in ("000003", "000004")],
                         {("2007", "test"): ["000003", "000004"]})
    notes = []
    voc.convert(devkit, tmp_path / "voc", log=notes.append)
    data = yaml.safe_load((tmp_path / "voc" / "data.yaml").read_text())
    assert data["train"] == data["val"] == data["test"] == "images/test2007"
    assert any("only the VOC2007 test set" in n for n in notes)


@pytest.mark.parametrize("mode", ["link", "symlink", "copy"])
def test_image_modes(devkit, tmp_path, mode):
    out = tmp_path / "voc"
    voc.convert(devkit, out, images=mode, log=lambda *_: None)
    src = devkit / "VOC2007" / "JPEGImages" / "000001.jpg"
    dst = out / "images" / "train2007" / "000001.jpg"
    assert dst.read_bytes() == src.read_bytes()
    assert dst.is_symlink() == (mode == "symlink")
    assert os.path.samefile(dst, src) == (mode != "copy")  # hard link or symlink: the same file; copy: another
    if mode == "symlink":
        assert Path(os.readlink(dst)) == src.resolve()


def test_hard_links_fall_back_to_copies_and_say_so(devkit, tmp_path, monkeypatch):
    def no_links(src, dst):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_links)
    notes = []
    voc.convert(devkit, tmp_path / "voc", log=notes.append)
    dst = tmp_path / "voc" / "images" / "train2007" / "000001.jpg"
    assert not os.path.samefile(dst, devkit / "VOC2007" / "JPEGImages" / "000001.jpg")
    assert "images: 6 copied (hard links were not possible" in notes[-2] and "--images symlink" in notes[-2]


def _no_leftovers(parent):
    return [p.name for p in parent.iterdir() if p.name.startswith(".")]


def test_malformed_xml_names_the_file_and_leaves_nothing(devkit, tmp_path, capsys):
    bad = devkit / "VOC2007" / "Annotations" / "000003.xml"  # in test2007, converted last: the others are done
    bad.write_text("<annotation><size><width>10</width></size><object><name>dog</name>")
    out = tmp_path / "voc"
    assert run_cli(convert_main, ["voc", str(devkit), str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: not well-formed XML" in err and "Traceback" not in err
    assert not out.exists() and _no_leftovers(tmp_path) == []


@pytest.mark.parametrize("obj, message", [
    ("<object><name>dog</name><bndbox><xmin>1</xmin><ymin>1</ymin><ymax>5</ymax></bndbox></object>",
     "object 2 ('dog'): <xmax> is missing or empty"),
    ("<object><name>dog</name><bndbox><xmin>1</xmin><ymin>a</ymin><xmax>3</xmax><ymax>5</ymax></bndbox></object>",
     "object 2 ('dog'): <ymin> is 'a', not a number"),
    ("<object><name>dog</name></object>", "object 2 ('dog'): <bndbox> is missing"),
    ("<object><bndbox/></object>", "object 2: <name> is missing or empty"),
])
def test_malformed_record_names_the_file_and_the_object(devkit, tmp_path, obj, message):
    xml = devkit / "VOC2012" / "Annotations" / "2008_000001.xml"
    xml.write_text(xml.read_text().replace("</annotation>", obj + "</annotation>"))
    with pytest.raises(DatasetError) as e:
        voc.convert(devkit, tmp_path / "voc", log=lambda *_: None)
    assert str(e.value) == f"{xml}: {message}."
    assert not (tmp_path / "voc").exists() and _no_leftovers(tmp_path) == []


def test_listed_image_missing_is_named(devkit, tmp_path):
    (devkit / "VOC2007" / "JPEGImages" / "000002.jpg").unlink()
    with pytest.raises(DatasetError) as e:
        voc.convert(devkit, tmp_path / "voc", log=lambda *_: None)
    assert "ImageSets/Main/val.txt are missing" in str(e.value)
    assert str(devkit / "VOC2007" / "JPEGImages" / "000002.jpg") in str(e.value)


def test_not_a_devkit(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no VOC2007 or VOC2012 folder"):
        voc.convert(tmp_path / "empty", tmp_path / "voc", log=lambda *_: None)


def test_output_folder_rules(devkit, tmp_path, capsys):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    assert run_cli(convert_main, ["voc", str(devkit), str(foreign)]) == 2
    assert "is not empty" in capsys.readouterr().err and (foreign / "notes.txt").read_text() == "keep me"

    out = tmp_path / "voc"
    assert run_cli(convert_main, ["voc", str(devkit), str(out)]) == 0
    assert run_cli(convert_main, ["voc", str(devkit), str(out)]) == 2
    assert "Pass --overwrite" in capsys.readouterr().err
    (devkit / "VOC2007" / "ImageSets" / "Main" / "test.txt").write_text("000004\n")
    assert run_cli(convert_main, ["voc", str(devkit), str(out), "--overwrite"]) == 0
    assert sorted(p.name for p in (out / "images" / "test2007").iterdir()) == ["000004.jpg"]
    assert _no_leftovers(tmp_path) == []


def test_cli_process_reports_without_traceback(devkit, tmp_path):
    bad = devkit / "VOC2012" / "Annotations" / "2008_000002.xml"
    bad.write_text("not xml at all")
    r = subprocess.run([sys.executable, "-m", "yolo_attn.cli.convert", "voc", str(devkit), str(tmp_path / "voc")],
                       capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 2, r.stderr[-2000:]
    assert f"yolo-attn: error: {bad}: not well-formed XML" in r.stderr and "Traceback" not in r.stderr


# ---------------------------------------------------------------------------------------------------------------
# --data voc / coco


def test_data_aliases_prefer_a_local_conversion(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "DATA_DIR", tmp_path / "data")
    assert paths.resolve_data("voc") == (paths.yolov5_root() / "data" / "VOC.yaml").resolve()
    assert paths.resolve_data("COCO") == (paths.yolov5_root() / "data" / "coco.yaml").resolve()
    local = tmp_path / "data" / "voc" / "data.yaml"
    local.parent.mkdir(parents=True)
    local.write_text("path: .\n")
    assert paths.resolve_data("voc") == local.resolve()
    assert paths.resolve_data("VOC.yaml") == (paths.yolov5_root() / "data" / "VOC.yaml").resolve()  # a file name


def test_yolov5_voc_yaml_offline_says_how_to_use_a_local_copy(monkeypatch):
    monkeypatch.setattr(checks, "online", lambda: False)
    voc_yaml = paths.resolve_data("VOC.yaml")
    root = (paths.yolov5_root() / "../datasets/VOC").resolve()
    if (root / "images" / "test2007").exists():
        pytest.skip("yolov5's VOC download is on this machine")
    with pytest.raises(DatasetError) as e:
        checks.prepare(voc_yaml, is_yolov5_builtin=True)
    msg = str(e.value)
    assert str(root / "images" / "train2012") in msg and "offline" in msg
    assert "yolo-attn convert voc path/to/VOCdevkit data/voc" in msg and "--data voc" in msg


# ---------------------------------------------------------------------------------------------------------------
# hostile or malformed input


def _list_with(devkit, image_set, *ids, year="2007"):
    list_file = devkit / f"VOC{year}" / "ImageSets" / "Main" / f"{image_set}.txt"
    list_file.write_text("".join(i + "\n" for i in ids))
    return list_file


@pytest.mark.parametrize("bad_id", ["../../../victim/notes", "ABSOLUTE", "JPEGImages/000001", ".."])
def test_list_entries_that_are_not_file_stems_are_refused(devkit, tmp_path, capsys, bad_id):
    """An id with a folder in it would read and write files outside the devkit and OUT: the id
    ../../../victim/notes reads src/victim/notes.{xml,jpg} and wrote its label to tmp_path/victim/notes.txt."""
    victim_src = tmp_path / "src" / "victim"
    victim_src.mkdir()
    (victim_src / "notes.xml").write_text(_xml((100, 100), [("dog", 0, 1, 1, 50, 50)]))
    (victim_src / "notes.jpg").write_bytes((devkit / "VOC2007" / "JPEGImages" / "000001.jpg").read_bytes())
    (tmp_path / "victim").mkdir()
    bad_id = str(victim_src / "notes") if bad_id == "ABSOLUTE" else bad_id
    list_file = _list_with(devkit, "train", "000001", bad_id)
    out = tmp_path / "voc"
    assert run_cli(convert_main, ["voc", str(devkit), str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{list_file}: line 2: {bad_id!r} is not an image id" in err and "Traceback" not in err
    assert not out.exists() and _no_leftovers(tmp_path) == []
    assert not (tmp_path / "victim" / "notes.txt").exists() and not (victim_src / "notes.txt").exists()


@pytest.mark.parametrize("value", ["1e400", "inf", "nan", "-100", "-0.5e3"])
@pytest.mark.parametrize("tag", ["width", "height"])
def test_image_sizes_that_are_not_finite_positive_are_errors(devkit, tmp_path, tag, value):
    xml = devkit / "VOC2007" / "Annotations" / "000002.xml"
    xml.write_text(re.sub(f"<{tag}>[^<]*</{tag}>", f"<{tag}>{value}</{tag}>", xml.read_text(), count=1))
    with pytest.raises(DatasetError) as e:
        voc.convert(devkit, tmp_path / "voc", log=lambda *_: None)
    assert str(e.value).startswith(f"{xml}: <size>: <{tag}> is {value!r}; it must be the image's {tag} in pixels")
    assert not (tmp_path / "voc").exists() and _no_leftovers(tmp_path) == []


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e400"])
def test_box_coordinates_that_are_not_finite_are_errors(devkit, tmp_path, value):
    """A corrupt coordinate is an error, not a box to clip or drop: the same rule as for COCO's 'bbox'."""
    xml = devkit / "VOC2007" / "Annotations" / "000001.xml"
    xml.write_text(xml.read_text().replace("<xmax>61</xmax>", f"<xmax>{value}</xmax>"))
    with pytest.raises(DatasetError) as e:
        voc.convert(devkit, tmp_path / "voc", log=lambda *_: None)
    assert str(e.value) == f"{xml}: object 1 ('dog'): <xmax> is {value!r}, not a finite number."
    assert not (tmp_path / "voc").exists()


def test_boxes_beyond_the_image_are_clipped_by_their_corners(tmp_path):
    # 100 x 100; VOC pixels start at 1, so a box's corners are (xmin - 1, ymin - 1) and (xmax - 1, ymax - 1)
    objects = [("dog", 0, 51, 11, 151, 31),  # right half outside: corners 50..100 -> cx 0.75, w 0.5
               ("cat", 0, -9, 1, 11, 21),  # left part outside: corners 0..10 -> cx 0.05, w 0.1
               ("car", 0, 21, 81, 41, 131),  # bottom part outside: corners 80..100 -> cy 0.9, h 0.2
               ("bus", 0, 201, 1, 260, 50)]  # entirely outside: no area left, dropped
    devkit = make_devkit(tmp_path / "src", [("2007", "000001", (100, 100), (100, 100), objects)],
                         {("2007", "test"): ["000001"]})
    stats = voc.convert(devkit, tmp_path / "voc", log=lambda *_: None)
    assert_rows_close(read_labels(tmp_path / "voc" / "labels" / "test2007" / "000001.txt"),
                      [(11, 0.75, 0.2, 0.5, 0.2), (7, 0.05, 0.1, 0.1, 0.2), (6, 0.3, 0.9, 0.2, 0.2)])
    assert (stats["test2007"]["clipped"], stats["test2007"]["degenerate"], stats["test2007"]["boxes"]) == (3, 1, 3)


def test_devkit_inside_out_is_refused_with_overwrite(devkit, tmp_path, capsys):
    """--overwrite replaces OUT: a devkit kept inside an earlier conversion would be deleted with it."""
    out = tmp_path / "voc"
    assert run_cli(convert_main, ["voc", str(devkit), str(out)]) == 0
    inside = out / "VOCdevkit"
    devkit.rename(inside)
    assert run_cli(convert_main, ["voc", str(inside), str(out), "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert f"{inside.resolve()} is inside OUT ({out})" in err
    assert (inside / "VOC2007" / "Annotations" / "000001.xml").is_file() and (out / "COMPLETE.json").is_file()
    assert _no_leftovers(tmp_path) == []


# ---------------------------------------------------------------------------------------------------------------
# which lists make the splits


def test_trainval_lists_stand_in_for_missing_train_and_val(tmp_path):
    sets = {("2007", "trainval"): ["000001", "000002"], ("2007", "test"): ["000003", "000004"],
            ("2012", "trainval"): ["2008_000001", "2008_000002"]}
    devkit = make_devkit(tmp_path / "src", IMAGES, sets)
    out = tmp_path / "voc"
    voc.convert(devkit, out, log=lambda *_: None)
    assert sorted(p.name for p in (out / "images").iterdir()) == ["test2007", "trainval2007", "trainval2012"]
    data = yaml.safe_load((out / "data.yaml").read_text())
    assert (data["train"], data["val"], data["test"]) == (["images/trainval2012", "images/trainval2007"],
                                                          "images/test2007", "images/test2007")
    assert_rows_close(read_labels(out / "labels" / "trainval2007" / "000001.txt"), EXPECTED["train2007/000001"])
    assert_rows_close(read_labels(out / "labels" / "trainval2012" / "2008_000002.txt"),
                      EXPECTED["val2012/2008_000002"])


def test_trainval_is_not_converted_next_to_train_and_val(devkit, tmp_path):
    """VOC ships train.txt, val.txt and their union trainval.txt: the union would be every image twice."""
    _list_with(devkit, "trainval", "000001", "000002")
    voc.convert(devkit, tmp_path / "voc", log=lambda *_: None)
    assert sorted(p.name for p in (tmp_path / "voc" / "images").iterdir()) == \
        ["test2007", "train2007", "train2012", "val2007", "val2012"]


def test_voc2012_test_list_is_used_only_with_its_annotations(devkit, tmp_path):
    list_file = _list_with(devkit, "test", "2008_000099", year="2012")  # the official test set: no annotations
    notes = []
    voc.convert(devkit, tmp_path / "voc", log=notes.append)
    assert not (tmp_path / "voc" / "images" / "test2012").exists()
    assert f"note: {list_file} left out: its images have no annotations (those of the VOC2012 test set are not " \
           f"public)" in notes
    _list_with(devkit, "test", "2008_000001", year="2012")
    voc.convert(devkit, tmp_path / "voc", overwrite=True, log=lambda *_: None)
    data = yaml.safe_load((tmp_path / "voc" / "data.yaml").read_text())
    assert data["val"] == data["test"] == ["images/test2012", "images/test2007"]
    assert "images/test2012" not in data["train"]


# ---------------------------------------------------------------------------------------------------------------
# a VOC-format folder of one's own (LabelImg, CVAT): no VOCdevkit, no ImageSets, classes of its own

FOLDER = [  # id, image suffix, size, objects (VOC pixel coordinates: corners at value - 1)
    ("scan_00", ".jpg", (40, 20), [("widget", 0, 1, 1, 21, 11)]),
    ("scan_01", ".png", (40, 20), [("gadget", 0, 11, 1, 31, 21), ("widget", 1, 1, 1, 5, 5)]),
    ("scan_02", ".jpg", (40, 20), [("bolt", 0, 1, 1, 41, 21)]),
    ("scan_03", ".jpeg", (40, 20), []),
    ("scan_04", ".jpg", (40, 20), [("widget", 0, 21, 11, 41, 21)]),
    ("scan_05", ".JPG", (40, 20), [("gadget", 0, 1, 1, 11, 11)]),
]
# classes found: bolt 0, gadget 1, widget 2 (sorted)
FOLDER_LABELS = {"scan_00": [(2, 0.25, 0.25, 0.5, 0.5)], "scan_01": [(1, 0.5, 0.5, 0.5, 1.0)],
                 "scan_02": [(0, 0.5, 0.5, 1.0, 1.0)], "scan_03": [], "scan_04": [(2, 0.75, 0.75, 0.5, 0.5)],
                 "scan_05": [(1, 0.125, 0.25, 0.25, 0.5)]}
# sha256 of the id, pinned: a split must not change with the machine, the file order or Python's hash seed
VAL_AT = {0.2: ["scan_00"], 0.5: ["scan_00", "scan_02", "scan_03", "scan_05"]}


def make_folder(root, items=FOLDER, order=1):
    for image_id, suffix, size, objects in items[::order]:
        (root / "Annotations").mkdir(parents=True, exist_ok=True)
        (root / "JPEGImages").mkdir(parents=True, exist_ok=True)
        (root / "Annotations" / f"{image_id}.xml").write_text(_xml(size, objects))
        cv2.imwrite(str(root / "JPEGImages" / f"{image_id}{suffix}"), np.zeros((size[1], size[0], 3), np.uint8))
    return root


def _names(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_folder_without_imagesets_classes_from_the_xml_and_a_hash_split(tmp_path):
    folder = make_folder(tmp_path / "labelled")
    cv2.imwrite(str(folder / "JPEGImages" / "not_labelled.jpg"), np.zeros((8, 8, 3), np.uint8))
    out = tmp_path / "out"
    notes = []
    stats = voc.convert(folder, out, log=notes.append)
    data = yaml.safe_load((out / "data.yaml").read_text())
    assert data["names"] == {0: "bolt", 1: "gadget", 2: "widget"}
    assert (data["train"], data["val"]) == ("images/train", "images/val") and "test" not in data
    assert _names(out / "images" / "val") == ["scan_00.jpg"]
    assert _names(out / "images" / "train") == ["scan_01.png", "scan_02.jpg", "scan_03.jpeg", "scan_04.jpg",
                                                "scan_05.JPG"]
    for image_id, expected in FOLDER_LABELS.items():
        split = "val" if image_id in VAL_AT[0.2] else "train"
        assert_rows_close(read_labels(out / "labels" / split / f"{image_id}.txt"), expected)
    assert stats["train"]["difficult"] == 1 and stats["train"]["negatives"] == 1
    assert "classes (the names in the XML files, sorted; --classes a,b,c sets another order): bolt, gadget, " \
           "widget" in notes
    assert f"{folder}: no ImageSets/Main lists, so split by a hash of each image id (sha256; --val-fraction 0.2; " \
           f"the same id always lands in the same split): train 5 images, val 1" in notes
    assert f"note: 1 image(s) in {folder / 'JPEGImages'} have no annotation: left out" in notes
    assert Path(checks.prepare(out / "data.yaml")) == out / "data.yaml"


def test_hash_split_depends_on_the_id_alone(tmp_path):
    ids = [image_id for image_id, *_ in FOLDER]
    for fraction, val in VAL_AT.items():
        assert [i for i in ids if voc.hash_split(i, fraction) == "val"] == val
    folder = make_folder(tmp_path / "elsewhere" / "copy", order=-1)  # other path, files written in reverse order
    voc.convert(folder, tmp_path / "out", val_fraction=0.5, log=lambda *_: None)
    assert _names(tmp_path / "out" / "labels" / "val") == [f"{i}.txt" for i in VAL_AT[0.5]]


def test_classes_option_fixes_the_order_and_leaves_out_other_names(tmp_path):
    folder = make_folder(tmp_path / "labelled")
    out = tmp_path / "out"
    notes = []
    stats = voc.convert(folder, out, classes=["widget", "gadget"], log=notes.append)
    assert yaml.safe_load((out / "data.yaml").read_text())["names"] == {0: "widget", 1: "gadget"}
    assert_rows_close(read_labels(out / "labels" / "val" / "scan_00.txt"), [(0, 0.25, 0.25, 0.5, 0.5)])
    assert read_labels(out / "labels" / "train" / "scan_02.txt") == []  # bolt is not a class here
    assert stats["train"]["unknown_class"] == 1
    assert "note: objects of names not in the class list left out: bolt (1)" in notes
    assert [n for n in notes if n.startswith("classes (")] == \
        ["classes (from --classes, in this order): widget, gadget"]


def test_folder_with_image_lists_uses_them(tmp_path):
    folder = make_folder(tmp_path / "labelled")
    (folder / "ImageSets" / "Main").mkdir(parents=True)
    (folder / "ImageSets" / "Main" / "trainval.txt").write_text("scan_00\nscan_01\nscan_02\n")
    (folder / "ImageSets" / "Main" / "test.txt").write_text("scan_05\n")
    voc.convert(folder, tmp_path / "out", log=lambda *_: None)
    data = yaml.safe_load((tmp_path / "out" / "data.yaml").read_text())
    assert (data["train"], data["val"]) == ("images/trainval", "images/test")
    assert _names(tmp_path / "out" / "images" / "trainval") == ["scan_00.jpg", "scan_01.png", "scan_02.jpg"]
    with pytest.raises(UsageError, match="--val-fraction is for a folder without image lists"):
        voc.convert(folder, tmp_path / "out2", val_fraction=0.3, log=lambda *_: None)


def test_folder_mistakes_are_named(tmp_path):
    folder = make_folder(tmp_path / "labelled")
    (folder / "JPEGImages" / "scan_04.jpg").unlink()
    with pytest.raises(DatasetError) as e:
        voc.convert(folder, tmp_path / "out", log=lambda *_: None)
    assert f"{folder}: 1 of the 6 annotations have no image in JPEGImages/" in str(e.value)
    assert str(folder / "JPEGImages" / "scan_04.jpg") in str(e.value)
    cv2.imwrite(str(folder / "JPEGImages" / "scan_04.png"), np.zeros((20, 40, 3), np.uint8))
    cv2.imwrite(str(folder / "JPEGImages" / "scan_04.bmp"), np.zeros((20, 40, 3), np.uint8))
    with pytest.raises(DatasetError, match=r"2 images for the annotation scan_04.xml: scan_04.bmp, scan_04.png"):
        voc.convert(folder, tmp_path / "out", log=lambda *_: None)
    assert _no_leftovers(tmp_path) == [] and not (tmp_path / "out").exists()


def test_folder_through_the_cli(tmp_path, capsys, devkit):
    folder = make_folder(tmp_path / "labelled")
    out = tmp_path / "out"
    assert run_cli(convert_main, ["voc", str(folder), str(out), "--classes", "gadget, widget,bolt",
                                  "--val-fraction", "0.5"]) == 0
    assert yaml.safe_load((out / "data.yaml").read_text())["names"] == {0: "gadget", 1: "widget", 2: "bolt"}
    assert _names(out / "labels" / "val") == [f"{i}.txt" for i in VAL_AT[0.5]]
    capsys.readouterr()
    for args, message in [(["--val-fraction", "1"], "--val-fraction must be at least 0 and below 1, got 1.0"),
                          (["--classes", "a,,b"], "--classes needs comma-separated class names"),
                          (["--classes", "a,b,a"], "--classes names 'a' twice")]:
        assert run_cli(convert_main, ["voc", str(folder), str(tmp_path / "o2"), *args]) == 2
        assert message in capsys.readouterr().err
    assert run_cli(convert_main, ["voc", str(devkit), str(tmp_path / "o2"), "--val-fraction", "0.3"]) == 2
    assert "is a VOCdevkit, whose splits come from ImageSets/Main" in capsys.readouterr().err
    assert not (tmp_path / "o2").exists()
