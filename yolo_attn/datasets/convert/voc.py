"""Pascal VOC (a VOCdevkit with VOC2007 and/or VOC2012, XML annotations) to yolov5's layout, as yolov5 does it.

This follows the conversion in yolov5's own ``data/VOC.yaml`` (its ``download:`` script), so a local conversion
gives the same labels as yolov5's download:

- splits from ``VOC<year>/ImageSets/Main/<set>.txt`` for (2012, train), (2012, val), (2007, train), (2007, val),
  (2007, test), written as ``images/<set><year>`` (``train2012``, ..., ``test2007``);
- ``data.yaml``: train = train2012 + train2007 + val2012 + val2007 (VOC07+12 trainval, 16,551 images), val = test =
  test2007 (4,952 images): the usual "VOC07+12 -> VOC07 test" protocol;
- the 20 classes in the standard order (yolov5's ``names``), objects of other names skipped (counted);
- objects marked ``<difficult>1</difficult>`` are left out of the labels (of every split, test2007 included);
- box: centre ``((xmin + xmax) / 2 - 1, (ymin + ymax) / 2 - 1)`` (VOC pixel coordinates start at 1), size
  ``(xmax - xmin, ymax - ymin)``, divided by the image size from ``<size>``.

Differences, all for inputs on which yolov5's script would crash or produce labels its loader rejects:
a missing ``<difficult>`` counts as 0; a missing or zero ``<size>`` is read from the image; values outside 0-1 are
clipped (counted) and boxes with no area are dropped (counted). With only VOC2012 (no 2007 test), val is
val2012 (+ val2007) and train the train sets: the "VOC12 train -> val" protocol; the converter says so.
"""
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

from yolo_attn.datasets.convert import (ImagePlacer, clip01, first_missing, label_row, staged_output,
                                        write_data_yaml, write_marker)
from yolo_attn.errors import DatasetError

CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
           "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor")
# yolov5's order of conversion, and of the train list in its VOC.yaml
SPLITS = (("2012", "train"), ("2012", "val"), ("2007", "train"), ("2007", "val"), ("2007", "test"))
TRAIN_ORDER = ("train2012", "train2007", "val2012", "val2007")


def find_devkit(root):
    """The folder holding VOC2007/VOC2012: ``root`` itself, ``root/VOCdevkit``, or the parent of a ``VOC20xx`` root."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder. Give the VOCdevkit folder (the one holding VOC2007 and/or VOC2012).")
    for candidate in (root, root / "VOCdevkit"):
        if any((candidate / f"VOC{y}").is_dir() for y in ("2007", "2012")):
            return candidate
    if root.name in ("VOC2007", "VOC2012") and (root / "Annotations").is_dir():
        return root.parent
    raise DatasetError(f"{root}: no VOC2007 or VOC2012 folder here or in {root / 'VOCdevkit'}. Give the VOCdevkit "
                       f"folder from the VOC tar files (VOCdevkit/VOC2007/{{Annotations,ImageSets,JPEGImages}}).")


def _text(element, tag, xml_path, record):
    child = element.find(tag)
    if child is None or child.text is None or not child.text.strip():
        raise DatasetError(f"{xml_path}: {record}: <{tag}> is missing or empty.")
    return child.text.strip()


def _number(element, tag, xml_path, record):
    value = _text(element, tag, xml_path, record)
    try:
        return float(value)
    except ValueError:
        raise DatasetError(f"{xml_path}: {record}: <{tag}> is {value!r}, not a number.") from None


def parse_annotation(xml_path):
    """``(width, height, objects)`` from one VOC XML; objects are dicts name, difficult, box (xmin, xmax, ymin, ymax).

    width/height are None when ``<size>`` is missing or zero. Malformed XML or records raise DatasetError naming
    the file and the object.
    """
    try:
        root = ET.parse(xml_path).getroot()
    except ET.ParseError as e:
        raise DatasetError(f"{xml_path}: not well-formed XML ({e}).") from None
    except OSError as e:
        raise DatasetError(f"{xml_path}: cannot read the annotation ({e.strerror or e}).") from None
    if root.tag != "annotation":
        raise DatasetError(f"{xml_path}: the root element is <{root.tag}>, not <annotation>: not a VOC annotation.")
    width = height = None
    size = root.find("size")
    if size is not None:
        w, h = (size.find(k) for k in ("width", "height"))
        try:
            width, height = int(float(w.text)), int(float(h.text))
        except (AttributeError, TypeError, ValueError):
            raise DatasetError(f"{xml_path}: <size> must hold integer <width> and <height>.") from None
        if width <= 0 or height <= 0:
            width = height = None
    objects = []
    for k, obj in enumerate(root.iter("object"), 1):
        name_el = obj.find("name")
        name = (name_el.text or "").strip() if name_el is not None else ""
        record = f"object {k}" + (f" ({name!r})" if name else "")
        if not name:
            raise DatasetError(f"{xml_path}: {record}: <name> is missing or empty.")
        difficult = obj.find("difficult")
        try:
            difficult = int(float(difficult.text)) if difficult is not None and difficult.text else 0
        except ValueError:
            raise DatasetError(f"{xml_path}: {record}: <difficult> is {difficult.text!r}, not 0 or 1.") from None
        box = obj.find("bndbox")
        if box is None:
            raise DatasetError(f"{xml_path}: {record}: <bndbox> is missing.")
        objects.append(dict(name=name, difficult=difficult,
                            box=tuple(_number(box, t, xml_path, record) for t in ("xmin", "xmax", "ymin", "ymax"))))
    return width, height, objects


def yolo_box(width, height, box):
    """yolov5's VOC.yaml ``convert_box``: normalised (cx, cy, w, h) from (xmin, xmax, ymin, ymax)."""
    xmin, xmax, ymin, ymax = box
    return ((xmin + xmax) / 2.0 - 1) / width, ((ymin + ymax) / 2.0 - 1) / height, \
        (xmax - xmin) / width, (ymax - ymin) / height


def _image_size(path):
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.size
    except OSError as e:
        raise DatasetError(f"{path}: cannot read the image ({e}).") from None


def _read_ids(list_file):
    try:
        lines = Path(list_file).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"{list_file}: cannot read the image list ({e}).") from None
    return [line.split()[0] for line in lines if line.strip()]


def convert(voc_root, out, images="link", overwrite=False, log=print):
    """Convert a VOCdevkit into ``out``; returns a dict of statistics per split (also in ``out/COMPLETE.json``)."""
    devkit = find_devkit(voc_root)
    found = [(y, s) for y, s in SPLITS if (devkit / f"VOC{y}" / "ImageSets" / "Main" / f"{s}.txt").is_file()]
    if not found:
        raise DatasetError(f"{devkit}: none of the image lists yolov5 uses is there: "
                           + ", ".join(f"VOC{y}/ImageSets/Main/{s}.txt" for y, s in SPLITS))
    placer = ImagePlacer(images)
    stats = {}
    with staged_output(out, overwrite) as tmp:
        for year, image_set in found:
            split = f"{image_set}{year}"
            stats[split] = _convert_split(devkit / f"VOC{year}", image_set, tmp, split, placer)
            s = stats[split]
            log(f"{split}: {s['images']} images, {s['boxes']} boxes, {s['negatives']} images without boxes; "
                f"left out: {s['difficult']} difficult, {s['unknown_class']} of other classes, "
                f"{s['degenerate']} without area; {s['clipped']} clipped to the image"
                + (f"; {s['size_from_image']} without <size>: read from the image" if s["size_from_image"] else ""))
        names = [f"{s}{y}" for y, s in found]
        if "test2007" in names:
            train = [s for s in TRAIN_ORDER if s in names]
            val = test = ["test2007"]
            protocol = "VOC07+12 trainval -> VOC2007 test (as yolov5's VOC.yaml)"
            if not train:
                train = val
                log("note: only the VOC2007 test set is here: data.yaml's train is test2007 too (validation only)")
        else:
            train = [s for s in names if s.startswith("train")] or [s for s in names if s.startswith("val")]
            val = [s for s in names if s.startswith("val")] or train
            test = None
            protocol = "train -> val (no VOC2007 test set found, so not yolov5's VOC07 test protocol)"
            log(f"note: no VOC2007/ImageSets/Main/test.txt under {devkit}: val is {', '.join(val)}; {protocol}")
        write_data_yaml(tmp, out, f"PASCAL VOC converted by `yolo-attn convert voc` from {devkit.absolute()}\n"
                                  f"protocol: {protocol}", train, val, CLASSES, test=test)
        write_marker(tmp, tool="yolo-attn convert voc", source=str(devkit.absolute()), protocol=protocol,
                     images=placer.describe(), splits=stats)
    log(f"images: {placer.describe()}")
    log(f"wrote {Path(out) / 'data.yaml'} (train: {', '.join(train)}; val: {', '.join(val)})")
    return stats


def _convert_split(year_dir, image_set, tmp, split, placer):
    ids = _read_ids(year_dir / "ImageSets" / "Main" / f"{image_set}.txt")
    missing_xml = [p for p in (year_dir / "Annotations" / f"{i}.xml" for i in ids) if not p.is_file()]
    missing_img = [p for p in (year_dir / "JPEGImages" / f"{i}.jpg" for i in ids) if not p.is_file()]
    if missing_xml or missing_img:
        raise DatasetError(f"{year_dir}: {len(missing_xml)} annotation(s) and {len(missing_img)} image(s) listed in "
                           f"ImageSets/Main/{image_set}.txt are missing:\n" + first_missing(missing_xml + missing_img))
    (tmp / "images" / split).mkdir(parents=True)
    (tmp / "labels" / split).mkdir(parents=True)
    c = Counter(images=0, boxes=0, negatives=0, difficult=0, unknown_class=0, degenerate=0, clipped=0,
                size_from_image=0)
    for image_id in dict.fromkeys(ids):
        xml_path = year_dir / "Annotations" / f"{image_id}.xml"
        image = year_dir / "JPEGImages" / f"{image_id}.jpg"
        width, height, objects = parse_annotation(xml_path)
        if width is None:
            width, height = _image_size(image)
            c["size_from_image"] += 1
        rows = []
        for k, obj in enumerate(objects, 1):
            if obj["name"] not in CLASSES:
                c["unknown_class"] += 1
                continue
            if obj["difficult"] == 1:
                c["difficult"] += 1
                continue
            xmin, xmax, ymin, ymax = obj["box"]
            if xmax <= xmin or ymax <= ymin:
                c["degenerate"] += 1
                continue
            values, clipped = clip01(yolo_box(width, height, obj["box"]))
            if values[2] <= 0 or values[3] <= 0:
                c["degenerate"] += 1
                continue
            c["clipped"] += clipped
            rows.append(label_row(CLASSES.index(obj["name"]), *values))
        placer.place(image, tmp / "images" / split / image.name)
        (tmp / "labels" / split / f"{image_id}.txt").write_text("".join(r + "\n" for r in rows))
        c["images"] += 1
        c["boxes"] += len(rows)
        c["negatives"] += not rows
    return dict(c)
