"""Pascal VOC XML annotations to yolov5's layout: a VOCdevkit as yolov5 converts it, or a VOC-format folder of one's
own (what labelling tools such as LabelImg and CVAT write).

**A VOCdevkit** (``VOCdevkit/VOC2007`` and/or ``VOC2012``, or one of those folders) is converted as yolov5's own
``data/VOC.yaml`` (its ``download:`` script) does, so a local conversion gives the same labels as yolov5's download:

- image lists from ``VOC<year>/ImageSets/Main/``, 2012 first: ``train.txt`` and ``val.txt``; where neither is there,
  ``trainval.txt`` instead; ``test.txt`` of VOC2007, and of VOC2012 only where every image it lists has an
  annotation (the official VOC2012 test set has none, and is left out with a note). Split names ``<list><year>``:
  ``train2012``, ``val2012``, ``trainval2007``, ``test2007``, ...
- ``data.yaml``: with test splits, train = the train, trainval and val splits (VOC07+12 trainval, 16,551 images) and
  val = test = the test splits (test2007, 4,952 images): the usual "VOC07+12 -> VOC07 test" protocol. Without
  them, train = the train/trainval splits and val = the val splits (the "VOC12 train -> val" protocol), and the
  converter says so. A missing role is filled by the other one, with a note.
- classes: the 20 VOC classes in the standard order (yolov5's ``names``), or ``--classes``.

**A VOC-format folder of one's own**: ``Annotations/*.xml`` and ``JPEGImages/`` (any image suffix; the image with
the annotation's stem), not inside a VOCdevkit:

- splits from ``ImageSets/Main/`` by the same rule (named ``train``, ``val``, ``trainval``, ``test``) where there are
  such lists; otherwise every annotation is used and split by a hash of its id: an image is in val when the first 8
  bytes of sha256(id) are below ``--val-fraction`` (default 0.2) of 2**64. The same id always lands in the same
  split, whatever the file order, machine or Python. Images without an annotation are left out (counted).
- classes: the object names found in the XML files, sorted, or ``--classes`` to fix the order.

Both: image-list entries must be plain ids (file names without folder or suffix; an entry such as ``../x`` is
refused, naming the list and line); objects of names not in the class list are left out (counted, names listed);
objects marked ``<difficult>1</difficult>`` are left out (of every split, test included); box: corners
``(xmin - 1, ymin - 1)``, ``(xmax - 1, ymax - 1)`` (VOC pixel coordinates start at 1) clipped to the image, then
centre and size divided by the image size from ``<size>``. For boxes inside the image that is yolov5's
``convert_box``: centre ``((xmin + xmax) / 2 - 1) / size``, size ``(xmax - xmin) / size``.

Differences from yolov5's script, all for inputs on which it would crash or produce labels its loader rejects: a
missing ``<difficult>`` counts as 0; a missing or zero ``<size>`` is read from the image; boxes reaching beyond the
image are clipped (counted) and boxes with no area inside it are dropped (counted). Sizes that are negative or not
finite and coordinates that are not finite numbers are errors naming the file and the object, as in the COCO
converter. All annotations are read before anything is written.
"""
import hashlib
import math
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

from yolo_attn.datasets.convert import (ImagePlacer, clipped_box, first_missing, label_row, staged_output,
                                        write_data_yaml, write_marker)
from yolo_attn.errors import DatasetError, UsageError

CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
           "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor")
YEARS = ("2012", "2007")  # yolov5's order of conversion, and of the train list in its VOC.yaml
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
DEFAULT_VAL_FRACTION = 0.2
STATS = ("images", "boxes", "negatives", "difficult", "unknown_class", "degenerate", "clipped", "size_from_image")


def find_layout(root):
    """``("devkit", the folder holding VOC2007/VOC2012)`` or ``("folder", root)`` for a folder of one's own."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder. Give the VOCdevkit folder (the one holding VOC2007 and/or VOC2012), "
                           f"or a folder holding Annotations/ and JPEGImages/.")
    for candidate in (root, root / "VOCdevkit"):
        if any((candidate / f"VOC{y}").is_dir() for y in YEARS):
            return "devkit", candidate
    if root.name in ("VOC2007", "VOC2012") and (root / "Annotations").is_dir():
        return "devkit", root.parent
    if (root / "Annotations").is_dir() and (root / "JPEGImages").is_dir():
        return "folder", root
    raise DatasetError(f"{root}: no VOC2007 or VOC2012 folder here or in {root / 'VOCdevkit'}, and no Annotations/ "
                       f"and JPEGImages/ folders. Give the VOCdevkit folder from the VOC tar files "
                       f"(VOCdevkit/VOC2007/{{Annotations,ImageSets,JPEGImages}}), or a VOC-format folder of your "
                       f"own (Annotations/*.xml and JPEGImages/).")


# ---------------------------------------------------------------------------------------------------------------
# reading one annotation


def _text(element, tag, xml_path, record):
    child = element.find(tag)
    if child is None or child.text is None or not child.text.strip():
        raise DatasetError(f"{xml_path}: {record}: <{tag}> is missing or empty.")
    return child.text.strip()


def _number(element, tag, xml_path, record):
    value = _text(element, tag, xml_path, record)
    try:
        number = float(value)
    except ValueError:
        raise DatasetError(f"{xml_path}: {record}: <{tag}> is {value!r}, not a number.") from None
    if not math.isfinite(number):
        raise DatasetError(f"{xml_path}: {record}: <{tag}> is {value!r}, not a finite number.")
    return number


def _size(root, xml_path):
    """``(width, height)`` from ``<size>``; None, None where it is missing or zero (then read from the image)."""
    size = root.find("size")
    if size is None:
        return None, None
    dims = []
    for tag in ("width", "height"):
        element = size.find(tag)
        text = (element.text or "").strip() if element is not None else ""
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value >= 0):
            raise DatasetError(f"{xml_path}: <size>: <{tag}> is {text!r}; it must be the image's {tag} in pixels, a "
                               f"finite number above 0 (0, or no <size> at all, has it read from the image).")
        dims.append(int(value))
    return tuple(dims) if min(dims) > 0 else (None, None)


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
    width, height = _size(root, xml_path)
    return width, height, [_object(obj, k, xml_path) for k, obj in enumerate(root.iter("object"), 1)]


def _object(obj, k, xml_path):
    name_el = obj.find("name")
    name = (name_el.text or "").strip() if name_el is not None else ""
    record = f"object {k}" + (f" ({name!r})" if name else "")
    if not name:
        raise DatasetError(f"{xml_path}: {record}: <name> is missing or empty.")
    difficult = obj.find("difficult")
    try:
        difficult = int(float(difficult.text)) if difficult is not None and difficult.text else 0
    except (ValueError, OverflowError):
        raise DatasetError(f"{xml_path}: {record}: <difficult> is {difficult.text!r}, not 0 or 1.") from None
    box = obj.find("bndbox")
    if box is None:
        raise DatasetError(f"{xml_path}: {record}: <bndbox> is missing.")
    return dict(name=name, difficult=difficult,
                box=tuple(_number(box, t, xml_path, record) for t in ("xmin", "xmax", "ymin", "ymax")))


def yolo_box(width, height, box):
    """Normalised ``(cx, cy, w, h)`` from VOC's (xmin, xmax, ymin, ymax), corners clipped to the image, and whether
    they had to be; None when no area is left. Inside the image this is yolov5's VOC.yaml ``convert_box``."""
    xmin, xmax, ymin, ymax = box
    return clipped_box(xmin - 1, ymin - 1, xmax - 1, ymax - 1, width, height)


def _image_size(path):
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.size
    except OSError as e:
        raise DatasetError(f"{path}: cannot read the image ({e}).") from None


# ---------------------------------------------------------------------------------------------------------------
# which images make which split


def hash_split(image_id, val_fraction):
    """``"val"`` or ``"train"``: a fixed function of the id alone, so an image keeps its split on any machine."""
    digest = hashlib.sha256(image_id.encode("utf-8", "surrogateescape")).digest()
    return "val" if int.from_bytes(digest[:8], "big") < val_fraction * 2 ** 64 else "train"


def _read_ids(list_file):
    """The ids of an ImageSets list; an entry that is not a plain file stem is refused (it could name any file)."""
    try:
        lines = Path(list_file).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"{list_file}: cannot read the image list ({e}).") from None
    ids = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        image_id = line.split()[0]
        if image_id in (".", "..") or any(c in image_id for c in "/\\\0"):
            raise DatasetError(f"{list_file}: line {n}: {image_id!r} is not an image id: an id is a file name "
                               f"without folder or suffix (such as 2008_000001), naming Annotations/<id>.xml and "
                               f"its image in JPEGImages/. Fix or remove that line.")
        ids.append(image_id)
    return list(dict.fromkeys(ids))


def _lists(folder, year, log):
    """The ImageSets/Main lists to convert in ``folder``, by the rule in the module docstring."""
    main = folder / "ImageSets" / "Main"
    sets = [s for s in ("train", "val") if (main / f"{s}.txt").is_file()]
    if not sets and (main / "trainval.txt").is_file():
        sets = ["trainval"]
    if (main / "test.txt").is_file():
        if year != "2012" or all((folder / "Annotations" / f"{i}.xml").is_file() for i in _read_ids(main / "test.txt")):
            sets.append("test")
        else:
            log(f"note: {main / 'test.txt'} left out: its images have no annotations (those of the VOC2012 test set "
                f"are not public)")
    return sets


def _listed_split(name, folder, image_set, find_image):
    """``(name, [(id, annotation, image)])`` from ``ImageSets/Main/<image_set>.txt``; every file must be there."""
    ids = _read_ids(folder / "ImageSets" / "Main" / f"{image_set}.txt")
    items = [(i, folder / "Annotations" / f"{i}.xml", find_image(i)) for i in ids]
    missing_xml = [xml for _, xml, _ in items if not xml.is_file()]
    missing_img = [image for _, _, image in items if not image.is_file()]
    if missing_xml or missing_img:
        raise DatasetError(f"{folder}: {len(missing_xml)} annotation(s) and {len(missing_img)} image(s) listed in "
                           f"ImageSets/Main/{image_set}.txt are missing:\n" + first_missing(missing_xml + missing_img))
    return name, items


def _devkit_splits(devkit, log):
    splits = []
    for year in YEARS:
        folder = devkit / f"VOC{year}"
        for image_set in _lists(folder, year, log):
            splits.append(_listed_split(f"{image_set}{year}", folder, image_set,
                                        lambda i, f=folder: f / "JPEGImages" / f"{i}.jpg"))
    if not splits:
        raise DatasetError(f"{devkit}: no image list in VOC2012/ImageSets/Main or VOC2007/ImageSets/Main "
                           f"(train.txt, val.txt, trainval.txt or test.txt).")
    return splits


def _image_finder(folder):
    """id -> the image in ``folder/JPEGImages`` with that stem (any image suffix)."""
    found = {}
    for path in sorted((folder / "JPEGImages").iterdir()):
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
            found.setdefault(path.stem, []).append(path)

    def find(image_id):
        paths = found.get(image_id, [folder / "JPEGImages" / f"{image_id}.jpg"])
        if len(paths) > 1:
            raise DatasetError(f"{folder / 'JPEGImages'}: {len(paths)} images for the annotation {image_id}.xml: "
                               f"{', '.join(p.name for p in paths)}; keep one of them.")
        return paths[0]

    return find, found


def _folder_splits(folder, val_fraction, log):
    find, found = _image_finder(folder)
    lists = _lists(folder, "", log)
    if lists:
        if val_fraction is not None:
            raise UsageError(f"--val-fraction is for a folder without image lists; {folder} has "
                             f"ImageSets/Main/{lists[0]}.txt, and the splits come from those lists.")
        log(f"splits from {folder / 'ImageSets' / 'Main'}: {', '.join(lists)}")
        return [_listed_split(s, folder, s, find) for s in lists]
    return _hash_splits(folder, find, found, DEFAULT_VAL_FRACTION if val_fraction is None else val_fraction, log)


def _hash_splits(folder, find, found, val_fraction, log):
    if not 0 <= val_fraction < 1:
        raise UsageError(f"--val-fraction must be at least 0 and below 1, got {val_fraction}.")
    ids = sorted(p.stem for p in (folder / "Annotations").glob("*.xml"))
    if not ids:
        raise DatasetError(f"{folder / 'Annotations'}: no .xml annotation files.")
    missing = [find(i) for i in ids if not find(i).is_file()]
    if missing:
        raise DatasetError(f"{folder}: {len(missing)} of the {len(ids)} annotations have no image in JPEGImages/ "
                           f"(the same name with {', '.join(IMAGE_SUFFIXES)}):\n" + first_missing(missing))
    splits = {"train": [], "val": []}
    for image_id in ids:
        splits[hash_split(image_id, val_fraction)].append((image_id, folder / "Annotations" / f"{image_id}.xml",
                                                           find(image_id)))
    log(f"{folder}: no ImageSets/Main lists, so split by a hash of each image id (sha256; --val-fraction "
        f"{val_fraction:g}; the same id always lands in the same split): train {len(splits['train'])} images, val "
        f"{len(splits['val'])}")
    unannotated = len(set(found) - set(ids))
    if unannotated:
        log(f"note: {unannotated} image(s) in {folder / 'JPEGImages'} have no annotation: left out")
    return [(name, items) for name, items in splits.items() if items]


# ---------------------------------------------------------------------------------------------------------------
# conversion


def convert(voc_root, out, images="link", overwrite=False, classes=None, val_fraction=None, log=print):
    """Convert a VOCdevkit or a VOC-format folder into ``out``; returns a dict of statistics per split (also in
    ``out/COMPLETE.json``). ``classes``: the class names in order (default: see the module docstring)."""
    layout, root = find_layout(voc_root)
    classes = _checked_classes(classes)
    if layout == "devkit" and val_fraction is not None:
        raise UsageError(f"--val-fraction is for a folder without image lists; {root} is a VOCdevkit, whose splits "
                         f"come from ImageSets/Main.")
    placer = ImagePlacer(images)
    with staged_output(out, overwrite, sources=[root], log=log) as tmp:
        splits = _devkit_splits(root, log) if layout == "devkit" else _folder_splits(root, val_fraction, log)
        records = {name: [_record(*item) for item in items] for name, items in splits}
        names = list(classes or (CLASSES if layout == "devkit" else _found_classes(records, root, log)))
        if classes:
            log(f"classes (from --classes, in this order): {', '.join(classes)}")
        stats, skipped = {}, Counter()
        for name, split_records in records.items():
            stats[name] = _write_split(tmp, name, split_records, names, placer, skipped)
            _log_split(name, stats[name], log)
        if skipped:
            log("note: objects of names not in the class list left out: "
                + ", ".join(f"{n} ({k})" for n, k in sorted(skipped.items())))
        train, val, test, protocol = _roles(list(records), layout, root, log)
        comment = (f"PASCAL VOC converted by `yolo-attn convert voc` from {root.absolute()}" if layout == "devkit" else
                   f"VOC-format annotations converted by `yolo-attn convert voc` from {root.absolute()}")
        write_data_yaml(tmp, out, f"{comment}\nprotocol: {protocol}", train, val, names, test=test)
        write_marker(tmp, tool="yolo-attn convert voc", source=str(root.absolute()), protocol=protocol,
                     images=placer.describe(), splits=stats)
    log(f"images: {placer.describe()}")
    log(f"wrote {Path(out) / 'data.yaml'} (train: {', '.join(train)}; val: {', '.join(val)})")
    return stats


def _checked_classes(classes):
    if classes is None:
        return None
    classes = list(classes)
    if not classes or not all(classes):
        raise UsageError(f"--classes needs comma-separated class names, got {','.join(classes)!r}.")
    twice = [c for c, n in Counter(classes).items() if n > 1]
    if twice:
        raise UsageError(f"--classes names {twice[0]!r} twice.")
    return classes


def _record(image_id, xml, image):
    width, height, objects = parse_annotation(xml)
    size_from_image = width is None
    if size_from_image:
        width, height = _image_size(image)
    return dict(id=image_id, image=image, width=width, height=height, objects=objects, size_from_image=size_from_image)


def _found_classes(records, root, log):
    names = sorted({obj["name"] for split in records.values() for r in split for obj in r["objects"]})
    if not names:
        raise DatasetError(f"{root}: the annotations hold no objects, so there are no classes to train; give the "
                           f"class names with --classes.")
    log(f"classes (the names in the XML files, sorted; --classes a,b,c sets another order): {', '.join(names)}")
    return names


def _write_split(tmp, split, records, names, placer, skipped):
    (tmp / "images" / split).mkdir(parents=True)
    (tmp / "labels" / split).mkdir(parents=True)
    index = {name: k for k, name in enumerate(names)}
    c = Counter({k: 0 for k in STATS})
    for r in records:
        rows = []
        for obj in r["objects"]:
            if obj["name"] not in index:
                c["unknown_class"] += 1
                skipped[obj["name"]] += 1
            elif obj["difficult"] == 1:
                c["difficult"] += 1
            else:
                box, clipped = yolo_box(r["width"], r["height"], obj["box"])
                c["degenerate"] += box is None
                c["clipped"] += clipped
                rows += [label_row(index[obj["name"]], *box)] if box else []
        placer.place(r["image"], tmp / "images" / split / r["image"].name)
        (tmp / "labels" / split / f"{r['id']}.txt").write_text("".join(row + "\n" for row in rows))
        c.update(images=1, boxes=len(rows), negatives=not rows, size_from_image=r["size_from_image"])
    return {k: int(c[k]) for k in STATS}


def _log_split(split, s, log):
    log(f"{split}: {s['images']} images, {s['boxes']} boxes, {s['negatives']} images without boxes; "
        f"left out: {s['difficult']} difficult, {s['unknown_class']} of other classes, "
        f"{s['degenerate']} without area; {s['clipped']} clipped to the image"
        + (f"; {s['size_from_image']} without <size>: read from the image" if s["size_from_image"] else ""))


def _roles(splits, layout, root, log):
    """data.yaml's train, val and test lists and the protocol line, by the rule in the module docstring."""
    trains = [s for s in splits if s.startswith("train")]
    vals = [s for s in splits if s.startswith("val")]
    tests = [s for s in splits if s.startswith("test")]
    if tests:
        train, val, test = trains + vals, tests, tests
        protocol = "VOC07+12 trainval -> VOC2007 test (as yolov5's VOC.yaml)" if tests == ["test2007"] else \
            f"train + val -> {', '.join(tests)}"
        if not train:
            train = val
            what = "the VOC2007 test set" if tests == ["test2007"] else "test splits"
            log(f"note: only {what} is here: data.yaml's train is {', '.join(val)} too (validation only)")
        return train, val, test, protocol
    train, val = trains or vals, vals or trains
    if layout == "devkit":
        protocol = "train -> val (no VOC2007 test set found, so not yolov5's VOC07 test protocol)"
        log(f"note: no VOC2007/ImageSets/Main/test.txt under {root}: val is {', '.join(val)}; {protocol}")
    else:
        protocol = "train -> val"
    if not vals:
        log(f"note: no val split: data.yaml's val is {', '.join(val)}, the training images (no measure of "
            f"generalisation)")
    elif not trains:
        log(f"note: no train split: data.yaml's train is {', '.join(train)} (fine for validation only)")
    return train, val, None, protocol
