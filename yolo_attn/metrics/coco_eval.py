"""The official COCO box AP (pycocotools' COCOeval) for a yolov5 validation, next to yolov5's own mAP.

yolov5's val.py computes it only for its downloaded coco.yaml, with the annotations looked up relative to the
working directory, and then reports COCO's numbers *in place of* its own. Here it is computed for

- any data YAML written by ``yolo-attn convert coco`` (it records, per split, the original annotation JSON, the
  original image id of every output image, and the original category id of every class), and
- yolov5's downloaded ``coco.yaml`` (annotations in ``<path>/annotations/instances_val2017.json``, image id = the
  file name, category ids from yolov5's ``coco80_to_coco91_class``: ``COCO80_TO_COCO91``),

from the predictions yolov5's validation makes (its ``on_val_image_end`` callback: boxes in original-image pixels),
and reported beside yolov5's mAP50 / mAP50-95, which stay as yolov5 computes them.

The two differ by design: COCOeval uses 101-point interpolated precision, at most 100 detections per image, and
ignores detections matched to ``iscrowd`` regions; yolov5 uses its own interpolation and has no crowd regions
(the converter leaves them out of the labels).
"""
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import yaml

STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")

# the COCO category id of each of the 80 classes of yolov5's coco.yaml (yolov5's coco80_to_coco91_class())
COCO80_TO_COCO91 = [
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28, 31, 32, 33, 34,
    35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63,
    64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90]


@dataclass
class CocoTarget:
    """What to score predictions against: an annotation JSON and the maps back to its ids."""
    annotations: Path
    category_ids: list  # class index -> original category id
    image_id: Callable[[str], object]  # output image name without suffix -> original image id (None if unknown)
    image_ids: Optional[list] = None  # the images of the split (None: every image of the JSON)
    source: str = ""
    unknown: set = field(default_factory=set)


def _split_entry(data, task):
    entry = data.get(task)
    if isinstance(entry, list):
        return entry[0] if len(entry) == 1 else None
    return entry


def target_for(data_yaml, task="val", single_cls=False):
    """``(CocoTarget, None)`` when the official COCO AP can be computed for this data YAML and split, else
    ``(None, reason)``; reason is None when the dataset is simply not COCO-format (nothing to say)."""
    data_yaml = Path(data_yaml)
    try:
        data = yaml.safe_load(data_yaml.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return None, None
    converted = isinstance(data.get("coco_annotations"), dict)
    builtin = not converted and data_yaml.name.endswith("coco.yaml") and \
        str(data.get("val", "")).endswith("val2017.txt")
    if not (converted or builtin):
        return None, None
    if single_cls:
        return None, "COCO AP not computed: --single-cls merges the classes"
    root = Path(data.get("path") or ".")
    if converted:
        root = root if root.is_absolute() else (data_yaml.parent / root).resolve()
        entry = _split_entry(data, task)
        if not entry:
            return None, f"COCO AP not computed: the {task} split is missing or joins several converted splits"
        split = Path(entry).name
        annotations = data["coco_annotations"].get(split)
        ids_file = (data.get("coco_image_ids") or {}).get(split)
        category_ids = data.get("coco_category_ids")
        if not annotations or not ids_file or not isinstance(category_ids, list):
            return None, f"COCO AP not computed: {data_yaml} has no COCO ids for split {split!r}"
        if len(category_ids) != len(data.get("names") or ()):
            return None, f"COCO AP not computed: {data_yaml} has {len(category_ids)} coco_category_ids for " \
                         f"{len(data.get('names') or ())} names"
        ids_path = Path(ids_file) if Path(ids_file).is_absolute() else root / ids_file
        try:
            ids = json.loads(ids_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            return None, f"COCO AP not computed: cannot read the image ids {ids_path} ({e})"
        annotations = Path(annotations)
        target = CocoTarget(annotations, list(category_ids), ids.get, list(ids.values()), source=f"split {split}")
    else:
        if task != "val":
            return None, f"COCO AP not computed: yolov5's coco.yaml has annotations for val2017 only, not {task}"

        from yolo_attn import paths

        root = root if root.is_absolute() else (paths.yolov5_root() / root).resolve()
        annotations = root / "annotations" / "instances_val2017.json"
        target = CocoTarget(annotations, list(COCO80_TO_COCO91), lambda stem: int(stem) if stem.isnumeric() else None,
                            source="yolov5's coco.yaml val2017")
    if not annotations.is_file():
        return None, f"COCO AP not computed: the annotations {annotations} are not there (moved?)"
    return target, None


class Collector:
    """A yolov5 ``on_val_image_end`` callback that keeps the predictions as COCO results with the original ids."""

    def __init__(self, target):
        self.target = target
        self.results = []

    def __call__(self, pred, predn, path, names, im):
        stem = Path(path).stem
        image_id = self.target.image_id(stem)
        if image_id is None:
            self.target.unknown.add(stem)
            return
        for x1, y1, x2, y2, conf, cls in predn[:, :6].tolist():
            self.results.append({"image_id": image_id, "category_id": self.target.category_ids[int(cls)],
                                 "bbox": [round(x1, 3), round(y1, 3), round(x2 - x1, 3), round(y2 - y1, 3)],
                                 "score": round(conf, 5)})


def load_ground_truth(annotations):
    """pycocotools' COCO object for an annotation JSON (``area`` filled in from the box where a file lacks it)."""
    from pycocotools.coco import COCO

    data = json.loads(Path(annotations).read_bytes())
    for ann in data.get("annotations", []):
        if "area" not in ann and len(ann.get("bbox") or ()) == 4:
            ann["area"] = float(ann["bbox"][2]) * float(ann["bbox"][3])
    data.setdefault("info", {})
    gt = COCO()
    gt.dataset = data
    gt.createIndex()
    return gt


def evaluate(target, results, save_json=None):
    """COCOeval (bbox) of ``results`` against the target; returns ``{name: value}`` for the 12 COCO numbers.

    With no results at all every number is 0 (pycocotools refuses an empty result list). ``save_json``: a path to
    write the results to (COCO results format, original ids: ready for COCO's own tools).
    """
    from pycocotools.cocoeval import COCOeval

    if save_json is not None:
        Path(save_json).write_text(json.dumps(results))
    if not results:
        return {name: 0.0 for name in STAT_NAMES}
    gt = load_ground_truth(target.annotations)
    dt = gt.loadRes(results)
    ev = COCOeval(gt, dt, "bbox")
    if target.image_ids is not None:
        ev.params.imgIds = list(dict.fromkeys(target.image_ids))
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return {name: float(v) for name, v in zip(STAT_NAMES, ev.stats)}
