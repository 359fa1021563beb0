"""COCO-format detection JSON (``instances_*.json``) plus its image folder to yolov5's layout.

- Categories become classes 0..N-1 in the order of their ids. On real COCO (80 categories, ids 1-90 with gaps) this
  is the standard 80-class order of yolov5's ``coco.yaml`` (its ``coco91_to_coco80_class``).
- Boxes ``[x, y, width, height]`` (pixels, top-left corner) become ``class cx cy w h`` normalised by the image's
  ``width``/``height`` from the JSON, after clipping their corners to the image. Boxes with no area inside the image
  are dropped (counted), as are ``iscrowd: 1`` regions (counted; COCOeval ignores detections on them rather than
  scoring them). Image sizes must be finite numbers above 0 and box values finite numbers (Python's json reads
  ``Infinity`` and ``NaN``): anything else is an error naming the file and the record.
- ``file_name`` is a path relative to the image folder (subfolders allowed); an absolute one or one with ``..`` is
  refused, so that the JSON cannot bring files from elsewhere into OUT.
- Every image of the JSON is kept; those without boxes get an empty label file (negatives, as yolov5 reads them).
- Split name: the JSON's name without ``instances_`` (``instances_val2017.json`` -> ``val2017``), or ``--splits``.
  data.yaml's train/val/test are the splits whose names contain train/val/test.
- For the official COCO metrics, data.yaml records each split's original JSON (``coco_annotations``), the map from
  output image name to original image id (``coco_image_ids``, a JSON file per split) and the original category id
  of every class (``coco_category_ids``); ``yolo-attn val`` uses them (yolo_attn/metrics/coco_eval.py).
"""
import json
import math
from collections import Counter
from pathlib import Path

from yolo_attn.datasets.convert import (ImagePlacer, clipped_box, first_missing, label_row, safe_split_name,
                                        staged_output, write_data_yaml, write_marker)
from yolo_attn.errors import DatasetError, UsageError

ROLES = ("train", "val", "test")


def load_annotations(json_path):
    """The parsed, checked JSON: dict with ``images``, ``annotations``, ``categories`` lists.

    Any structural problem raises DatasetError naming the file and the record (list and index, and id).
    """
    json_path = Path(json_path)
    try:
        return _checked(_parsed(json_path), json_path)
    except RecursionError:
        raise DatasetError(f"{json_path}: not a COCO annotation file: nesting too deep.") from None


def _parsed(json_path):
    try:
        return json.loads(json_path.read_bytes())
    except json.JSONDecodeError as e:
        raise DatasetError(f"{json_path}: not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}.") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"{json_path}: cannot read the annotations ({e}).") from None
    except ValueError as e:  # an integer of more than 4,300 digits
        raise DatasetError(f"{json_path}: not a COCO annotation file: {e}.") from None


def _checked(data, json_path):
    if not isinstance(data, dict):
        raise DatasetError(f"{json_path}: the top level is a {type(data).__name__}; a COCO annotation file is an "
                           f"object with 'images', 'annotations' and 'categories' lists.")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            extra = " (image-info files such as test-dev have no annotations, so they cannot give labels)" \
                if key == "annotations" and "images" in data else ""
            raise DatasetError(f"{json_path}: no '{key}' list; a COCO detection file has 'images', 'annotations' "
                               f"and 'categories'{extra}.")
    categories = {}
    for k, cat in enumerate(data["categories"]):
        where = f"{json_path}: categories[{k}]"
        if not isinstance(cat, dict) or not _is_int(cat.get("id")) or not isinstance(cat.get("name"), str):
            raise DatasetError(f"{where}: needs an integer 'id' and a string 'name', got {_short(cat)}.")
        if cat["id"] in categories:
            raise DatasetError(f"{where}: category id {cat['id']} is used twice.")
        categories[cat["id"]] = cat["name"]
    if not categories:
        raise DatasetError(f"{json_path}: the 'categories' list is empty.")
    images = {}
    for k, im in enumerate(data["images"]):
        where = f"{json_path}: images[{k}]" + (f" (id {im.get('id')!r})" if isinstance(im, dict) else "")
        if not isinstance(im, dict) or not isinstance(im.get("id"), (int, str)) or isinstance(im.get("id"), bool):
            raise DatasetError(f"{where}: needs an 'id', got {_short(im)}.")
        if not isinstance(im.get("file_name"), str) or not im["file_name"]:
            raise DatasetError(f"{where}: needs a 'file_name'.")
        if not all(_is_finite(im.get(d)) and im[d] > 0 for d in ("width", "height")):
            raise DatasetError(f"{where}: needs positive 'width' and 'height', got width={_short(im.get('width'))}, "
                               f"height={_short(im.get('height'))}. They are the image's size in pixels: finite "
                               f"numbers above 0.")
        if im["id"] in images:
            raise DatasetError(f"{where}: image id {im['id']!r} is used twice.")
        images[im["id"]] = im
    for k, ann in enumerate(data["annotations"]):
        where = f"{json_path}: annotations[{k}]" + (f" (id {ann.get('id')!r})" if isinstance(ann, dict) else "")
        if not isinstance(ann, dict):
            raise DatasetError(f"{where}: not an object: {_short(ann)}.")
        if ann.get("image_id") not in images:
            raise DatasetError(f"{where}: image_id {ann.get('image_id')!r} is not in 'images'.")
        if ann.get("category_id") not in categories:
            raise DatasetError(f"{where}: category_id {ann.get('category_id')!r} is not in 'categories' "
                               f"(ids {_short(sorted(categories))}).")
        box = ann.get("bbox")
        if not isinstance(box, list) or len(box) != 4 or not all(_is_finite(v) for v in box):
            raise DatasetError(f"{where}: 'bbox' must be 4 numbers [x, y, width, height], got {_short(box)}.")
        if ann.get("iscrowd", 0) not in (0, 1):
            raise DatasetError(f"{where}: 'iscrowd' must be 0 or 1, got {ann.get('iscrowd')!r}.")
    data["_categories"], data["_images"] = categories, images
    return data


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_finite(v):
    """A JSON number that is finite as a float (json gives inf and nan for Infinity, NaN and 1e400; ints of 400
    digits stay ints and would overflow later)."""
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return False
    try:
        return math.isfinite(float(v))
    except OverflowError:
        return False


def _short(value, limit=80):
    s = repr(value)
    return s if len(s) <= limit else s[:limit] + "...]"


def yolo_box(box, width, height):
    """``(cx, cy, w, h)`` normalised from a COCO ``[x, y, w, h]`` with its corners clipped to the image, and whether
    they had to be; None when nothing of the box is inside the image."""
    x, y, w, h = box
    return clipped_box(x, y, x + w, y + h, width, height)


def _source(images_dir, file_name, where):
    """The image file for ``file_name`` (relative to ``images_dir``; else its base name there, as some exports
    write other folders into file_name); refused when absolute or with '..', before any file system access."""
    path = Path(file_name)
    if path.is_absolute() or ".." in Path(file_name.replace("\\", "/")).parts:  # JSON from Windows: backslashes
        raise DatasetError(f"{where}: file_name {file_name!r} is not a path inside the image folder {images_dir}: "
                           f"file names are relative to IMAGES_DIR, without '..' (subfolders are fine). Fix the "
                           f"JSON, or give the folder the paths are relative to as IMAGES_DIR.")
    src = images_dir / path
    return src if src.is_file() else images_dir / path.name


def split_name(json_path, images_dir):
    """``instances_val2017.json`` -> ``val2017``; else the images folder's name if it says train/val/test."""
    stem = Path(json_path).stem
    name = stem[len("instances_"):] if stem.startswith("instances_") else stem
    if any(r in name.lower() for r in ROLES):
        return name
    folder = Path(images_dir).name
    if any(r in folder.lower() for r in ROLES):
        return folder
    raise UsageError(f"cannot tell which split {json_path} is (train, val or test) from its name or from "
                     f"{images_dir}'s; name the splits with --splits, e.g. --splits train,val.")


def assign_roles(splits):
    """data.yaml's train/val/test lists from the split names, and notes on any fallback."""
    lower = {s: s.lower() for s in splits}
    train = [s for s in splits if "train" in lower[s]]
    val = [s for s in splits if "val" in lower[s] and s not in train]
    test = [s for s in splits if "test" in lower[s] and s not in train + val]
    unplaced = [s for s in splits if s not in train + val + test]
    if unplaced:
        raise UsageError(f"cannot tell the role of split(s) {', '.join(unplaced)}: split names must contain train, "
                         f"val or test (rename with --splits).")
    notes = []
    if not val:
        val = test or train
        notes.append(f"no split named val: data.yaml's val is {', '.join(val)}")
    if not train:
        train = val
        notes.append(f"no split named train: data.yaml's train is {', '.join(train)} (fine for validation only)")
    return train, val, test, notes


def _output_names(images, json_path):
    """Output file name per image id: the file_name's base name; where two images of the split would share a label
    file (yolov5 pairs image and label by the name without suffix), the relative path flattened with '__', then
    also the suffix kept in the name (x.jpg, x.png -> x__jpg.jpg, x__png.png)."""
    listed = Counter(im["file_name"] for im in images.values())
    twice = [name for name, n in listed.items() if n > 1]
    if twice:
        raise DatasetError(f"{json_path}: file_name {twice[0]!r} is listed for {listed[twice[0]]} images; each image "
                           f"record needs its own file.")

    def flat(file_name):
        path = Path(file_name)
        return "__".join(p for p in path.parts if p not in (path.anchor, ".", ".."))

    def with_suffix(file_name):
        path = Path(flat(file_name))
        return f"{path.stem}__{path.suffix.lstrip('.')}{path.suffix}"

    names = {image_id: Path(im["file_name"]).name for image_id, im in images.items()}
    for rename in (flat, with_suffix):
        stems = Counter(Path(n).stem for n in names.values())
        if all(n == 1 for n in stems.values()):
            break
        names = {image_id: rename(images[image_id]["file_name"]) if stems[Path(n).stem] > 1 else n
                 for image_id, n in names.items()}
    stems = Counter(Path(n).stem for n in names.values())
    clash = sorted(images[i]["file_name"] for i, n in names.items() if stems[Path(n).stem] > 1)
    if clash:
        raise DatasetError(f"{json_path}: cannot give {clash[0]!r} and {clash[1]!r} label files of their own; rename "
                           f"one of the images.")
    return names


def convert(pairs, out, splits=None, images="link", overwrite=False, log=print):
    """Convert ``pairs`` of (annotations JSON, images folder) into ``out``; returns the statistics per split."""
    if not pairs:
        raise UsageError("give at least one ANNOTATIONS_JSON IMAGES_DIR pair")
    if splits is not None and len(splits) != len(pairs):
        raise UsageError(f"--splits names {len(splits)} split(s) for {len(pairs)} ANNOTATIONS_JSON IMAGES_DIR pair(s).")
    for json_path, images_dir in pairs:
        if not Path(json_path).is_file():
            raise DatasetError(f"{json_path}: annotation file not found.")
        if not Path(images_dir).is_dir():
            raise DatasetError(f"{images_dir}: image folder not found (the folder the JSON's file_name entries are "
                               f"in).")
    names = [safe_split_name(s, "--splits") for s in splits] if splits else \
        [safe_split_name(split_name(j, i), str(j)) for j, i in pairs]
    if len(set(names)) != len(names):
        raise UsageError(f"two inputs would make the same split ({', '.join(names)}); name them with --splits.")
    train, val, test, notes = assign_roles(names)
    placer = ImagePlacer(images)
    stats, annotation_files, id_files, categories, first_json = {}, {}, {}, None, None
    with staged_output(out, overwrite, sources=[p for pair in pairs for p in pair], log=log) as tmp:
        for (json_path, images_dir), split in zip(pairs, names):
            data = load_annotations(json_path)
            cats = sorted(data["_categories"].items())
            if categories is None:
                categories, first_json = cats, json_path
            elif cats != categories:
                raise DatasetError(f"{json_path}: its categories differ from those of {first_json}; all splits must "
                                   f"share one category list (same ids and names).")
            stats[split], ids = _convert_split(data, Path(images_dir), tmp, split, placer, json_path)
            (tmp / "coco").mkdir(exist_ok=True)
            (tmp / "coco" / f"{split}_image_ids.json").write_text(json.dumps(ids) + "\n")
            annotation_files[split] = str(Path(json_path).expanduser().absolute())
            id_files[split] = f"coco/{split}_image_ids.json"
            s = stats[split]
            log(f"{split}: {s['images']} images, {s['boxes']} boxes, {s['negatives']} images without boxes; "
                f"left out: {s['crowd']} iscrowd, {s['degenerate']} degenerate (no area inside the image); "
                f"{s['clipped']} clipped to the image")
        for note in notes:
            log(f"note: {note}")
        extra = {"coco_annotations": annotation_files, "coco_image_ids": id_files,
                 "coco_category_ids": [cid for cid, _ in categories]}
        write_data_yaml(tmp, out, "COCO-format data converted by `yolo-attn convert coco`; coco_* keys: the "
                                  "original annotations, for the official COCO AP in `yolo-attn val`",
                        train, val, [name for _, name in categories], test=test or None, extra=extra)
        write_marker(tmp, tool="yolo-attn convert coco",
                     sources={s: [str(j), str(i)] for (j, i), s in zip(pairs, names)},
                     images=placer.describe(), splits=stats)
    log(f"images: {placer.describe()}")
    log(f"wrote {Path(out) / 'data.yaml'} ({len(categories)} classes; train: {', '.join(train)}; "
        f"val: {', '.join(val)})")
    return stats


def _convert_split(data, images_dir, tmp, split, placer, json_path):
    images = data["_images"]
    class_of = {cid: k for k, (cid, _) in enumerate(sorted(data["_categories"].items()))}
    sources, missing = {}, []
    for k, (image_id, im) in enumerate(images.items()):
        src = _source(images_dir, im["file_name"], f"{json_path}: images[{k}] (id {image_id!r})")
        if not src.is_file():
            missing.append(images_dir / im["file_name"])
        sources[image_id] = src
    if missing:
        raise DatasetError(f"{json_path}: {len(missing)} of its {len(images)} images are not in {images_dir}:\n"
                           + first_missing(missing))
    out_names = _output_names(images, json_path)
    rows = {image_id: [] for image_id in images}
    c = Counter(images=0, boxes=0, negatives=0, crowd=0, degenerate=0, clipped=0)
    for ann in data["annotations"]:
        if ann.get("iscrowd", 0):
            c["crowd"] += 1
            continue
        im = images[ann["image_id"]]
        box, clipped = yolo_box(ann["bbox"], im["width"], im["height"])
        if box is None:
            c["degenerate"] += 1
            continue
        c["clipped"] += clipped
        rows[ann["image_id"]].append(label_row(class_of[ann["category_id"]], *box))
    (tmp / "images" / split).mkdir(parents=True)
    (tmp / "labels" / split).mkdir(parents=True)
    ids = {}
    for image_id, src in sources.items():
        name = out_names[image_id]
        placer.place(src, tmp / "images" / split / name)
        (tmp / "labels" / split / f"{Path(name).stem}.txt").write_text("".join(r + "\n" for r in rows[image_id]))
        ids[Path(name).stem] = image_id
        c["images"] += 1
        c["boxes"] += len(rows[image_id])
        c["negatives"] += not rows[image_id]
    return dict(c), ids
