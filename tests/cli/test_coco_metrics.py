"""The official COCO AP in ``yolo-attn val``: the evaluation against hand-computed APs, the map back to the original
image and category ids, and the whole path convert -> train -> val in subprocesses."""
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from yolo_attn.datasets import shapes
from yolo_attn.datasets.convert import coco
from yolo_attn.metrics import coco_eval

# Two images with arbitrary ids, two categories with non-contiguous ids: a wrong map back gives AP 0 or an error.
CATEGORIES = [{"id": 8, "name": "b"}, {"id": 3, "name": "a"}]  # classes: a (3) -> 0, b (8) -> 1
IMAGES = [{"id": 42, "file_name": "img42.jpg", "width": 100, "height": 100},
          {"id": 1000, "file_name": "img1000.jpg", "width": 100, "height": 100}]
ANNOTATIONS = [{"id": 1, "image_id": 42, "category_id": 3, "bbox": [10, 10, 40, 40], "iscrowd": 0, "area": 1600},
               {"id": 2, "image_id": 1000, "category_id": 8, "bbox": [50, 50, 30, 30], "iscrowd": 0}]  # no area


@pytest.fixture
def target(tmp_path):
    ann = tmp_path / "instances_val.json"
    ann.write_text(json.dumps({"images": IMAGES, "annotations": ANNOTATIONS, "categories": CATEGORIES}))
    return coco_eval.CocoTarget(ann, [3, 8], {"img42": 42, "img1000": 1000}.get, [42, 1000])


def _collect(target, per_image):
    """Feed the collector as yolov5's validation does: predn rows x1 y1 x2 y2 conf cls in original pixels."""
    collector = coco_eval.Collector(target)
    for stem, rows in per_image.items():
        predn = torch.tensor(rows, dtype=torch.float32)
        collector(predn.clone(), predn, Path(f"/d/images/val/{stem}.jpg"), {0: "a", 1: "b"}, None)
    return collector.results


def test_collector_maps_back_to_the_original_ids(target):
    results = _collect(target, {"img42": [[10, 10, 50, 50.5, 0.9, 0]], "img1000": [[50, 50, 80, 80, 0.8, 1]],
                                "stray": [[1, 1, 2, 2, 0.5, 0]]})
    assert results == [{"image_id": 42, "category_id": 3, "bbox": [10.0, 10.0, 40.0, 40.5], "score": 0.9},
                       {"image_id": 1000, "category_id": 8, "bbox": [50.0, 50.0, 30.0, 30.0], "score": 0.8}]
    assert target.unknown == {"stray"}


def test_perfect_predictions(target):
    stats = coco_eval.evaluate(target, _collect(target, {"img42": [[10, 10, 50, 50, 0.9, 0]],
                                                         "img1000": [[50, 50, 80, 80, 0.8, 1]]}))
    assert stats["AP"] == pytest.approx(1.0) and stats["AP50"] == pytest.approx(1.0)


def test_a_loose_box_counts_at_half_the_iou_thresholds(target):
    # class a: box 40 x 55 over the 40 x 40 truth: IoU 40/55 = 0.727, a hit at IoU 0.50 ... 0.70 (5 of 10 thresholds)
    # -> AP(a) = 0.5; class b exact -> AP(b) = 1. COCO AP is the mean over classes: 0.75; AP50 1; AP75 0.5.
    stats = coco_eval.evaluate(target, _collect(target, {"img42": [[10, 10, 50, 65, 0.9, 0]],
                                                         "img1000": [[50, 50, 80, 80, 0.8, 1]]}))
    assert stats["AP"] == pytest.approx(0.75) and stats["AP50"] == pytest.approx(1.0)
    assert stats["AP75"] == pytest.approx(0.5)


def test_wrong_class_and_ranking(target):
    # img1000's box predicted as class a: b is never found (AP 0). For a, the false positive ranks below the true
    # positive (0.5 < 0.9): precision 1 up to recall 1 -> AP 1. Mean 0.5. Ranked above it: precision 1/2 -> 0.25.
    low = coco_eval.evaluate(target, _collect(target, {"img42": [[10, 10, 50, 50, 0.9, 0]],
                                                       "img1000": [[50, 50, 80, 80, 0.5, 0]]}))
    high = coco_eval.evaluate(target, _collect(target, {"img42": [[10, 10, 50, 50, 0.9, 0]],
                                                        "img1000": [[50, 50, 80, 80, 0.95, 0]]}))
    assert low["AP"] == pytest.approx(0.5) and high["AP"] == pytest.approx(0.25)


def test_no_predictions_is_zero_and_the_file_is_written(target, tmp_path):
    stats = coco_eval.evaluate(target, [], save_json=tmp_path / "p.json")
    assert stats == {name: 0.0 for name in coco_eval.STAT_NAMES}
    assert json.loads((tmp_path / "p.json").read_text()) == []


def _tiny_coco(tmp_path):
    src = tmp_path / "src"
    (src / "val2017").mkdir(parents=True)
    for im in IMAGES:
        cv2.imwrite(str(src / "val2017" / im["file_name"]), np.zeros((100, 100, 3), np.uint8))
    ann = src / "instances_val2017.json"
    ann.write_text(json.dumps({"images": IMAGES, "annotations": ANNOTATIONS, "categories": CATEGORIES}))
    coco.convert([(ann, src / "val2017")], tmp_path / "out", log=lambda *_: None)
    return ann, tmp_path / "out" / "data.yaml"


def test_target_from_a_converted_data_yaml(tmp_path):
    ann, data_yaml = _tiny_coco(tmp_path)
    target, note = coco_eval.target_for(data_yaml)
    assert note is None and target.annotations == ann and target.category_ids == [3, 8]
    assert (target.image_id("img42"), target.image_id("img1000"), target.image_id("other")) == (42, 1000, None)
    assert sorted(target.image_ids) == [42, 1000]
    assert coco_eval.target_for(data_yaml, single_cls=True) == \
        (None, "COCO AP not computed: --single-cls merges the classes")
    ann.unlink()
    target, note = coco_eval.target_for(data_yaml)
    assert target is None and note == f"COCO AP not computed: the annotations {ann} are not there (moved?)"


def test_no_target_for_other_datasets(tmp_path):
    data_yaml = shapes.generate(tmp_path / "ds", train=2, val=2, size=32)
    assert coco_eval.target_for(data_yaml) == (None, None)


def test_target_for_yolov5s_coco_yaml_layout(tmp_path):
    from yolov5.utils.general import coco80_to_coco91_class

    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "instances_val2017.json").write_text("{}")
    data_yaml = tmp_path / "coco.yaml"
    data_yaml.write_text(yaml.safe_dump({"path": str(tmp_path), "train": "train2017.txt", "val": "val2017.txt",
                                         "names": {0: "person"}}))
    target, note = coco_eval.target_for(data_yaml)
    assert note is None and target.annotations == tmp_path / "annotations" / "instances_val2017.json"
    assert target.image_id("000000000139") == 139 and target.category_ids == coco80_to_coco91_class()
    assert target.image_ids is None  # all val2017 images


# ---------------------------------------------------------------------------------------------------------------
# end to end: convert -> train -> val, each in its own process

COCO_LINE = re.compile(r"^COCO AP (\d\.\d{4}) AP50 (\d\.\d{4})$", re.M)


def _shapes_as_coco(root, split, n, seed, first_id):
    """A COCO-format split drawn with the embedded dataset's generator: image ids and category ids far from 0..N."""
    rng = np.random.default_rng(seed)
    images, annotations = [], []
    (root / split).mkdir(parents=True)
    for k in range(n):
        img, boxes = shapes.make_image(rng, 64)
        image_id = first_id + 7 * k
        name = f"{split}_{image_id}.jpg"
        cv2.imwrite(str(root / split / name), img)
        images.append({"id": image_id, "file_name": name, "width": 64, "height": 64})
        for cls, x1, y1, x2, y2 in boxes:
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": 10 * (cls + 1),
                                "bbox": [float(x1), float(y1), float(x2 - x1), float(y2 - y1)], "iscrowd": 0,
                                "area": float((x2 - x1) * (y2 - y1))})
    categories = [{"id": 10 * (k + 1), "name": name} for k, name in enumerate(shapes.NAMES)]
    ann = root / f"instances_{split}.json"
    ann.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return ann, root / split


@pytest.mark.slow
def test_convert_train_val_reports_the_official_coco_ap(run_cli, tmp_path):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    train = _shapes_as_coco(tmp_path / "src", "train", 16, 1, 5000)
    val_ann, val_dir = _shapes_as_coco(tmp_path / "src", "val", 8, 2, 90000)
    r = run_cli("convert", "coco", *train, val_ann, val_dir, tmp_path / "coco")
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    r = run_cli("train", "--cfg", "yolov5s.yaml", "--data", tmp_path / "coco" / "data.yaml", "--epochs", "2",
                "--imgsz", "64", "--batch-size", "8", "--workers", "0", "--noplots", "--noval")
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    best = json.loads((tmp_path / "runs" / "train" / "yolov5s" / "summary.json").read_text())["weights"]

    r = run_cli("val", "--weights", best, "--workers", "0", "--batch-size", "8", "--save-txt", "--save-conf")
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    line = COCO_LINE.findall(out)
    assert line, out[-3000:]
    assert "Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ]" in out  # COCOeval's table
    summary = json.loads((tmp_path / "runs" / "val" / "yolov5s" / "summary.json").read_text())
    assert (f"{summary['coco_AP']:.4f}", f"{summary['coco_AP50']:.4f}") == line[-1]
    assert "mAP50" in summary and "mAP50-95" in summary  # yolov5's own numbers stay

    # the saved predictions carry the original ids, and pycocotools on them alone gives the reported numbers
    predictions = json.loads(Path(summary["coco_predictions"]).read_text())
    assert predictions, "the model made no predictions at conf 0.001: the comparison below would say little"
    val_ids = {im["id"] for im in json.loads(val_ann.read_text())["images"]}
    assert {p["image_id"] for p in predictions} <= val_ids
    assert {p["category_id"] for p in predictions} <= {10, 20, 30, 40}
    # ... and are the boxes yolov5 itself writes with --save-txt (class cx cy w h conf, normalised), mapped back
    ids = {im["file_name"][:-4]: im["id"] for im in json.loads(val_ann.read_text())["images"]}
    from_txt = []
    for txt in sorted((tmp_path / "runs" / "val" / "yolov5s" / "labels").glob("*.txt")):
        for row in np.loadtxt(txt, ndmin=2):
            cx, cy, w, h = row[1:5] * 64
            from_txt.append((ids[txt.stem], 10 * (int(row[0]) + 1), cx - w / 2, cy - h / 2, w, h, row[5]))
    from_json = [(p["image_id"], p["category_id"], *p["bbox"], p["score"]) for p in predictions]
    assert len(from_json) == len(from_txt)
    unmatched = list(from_txt)
    for a in from_json:  # each JSON result has its own counterpart among yolov5's rows
        distances = [np.abs(np.subtract(a[2:], b[2:])).max() if a[:2] == b[:2] else np.inf for b in unmatched]
        k = int(np.argmin(distances))
        assert distances[k] < 2e-3, (a, unmatched[k])
        unmatched.pop(k)

    gt = COCO(str(val_ann))
    ev = COCOeval(gt, gt.loadRes(predictions), "bbox")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    assert summary["coco_AP"] == pytest.approx(ev.stats[0], abs=1e-4)
    assert summary["coco_AP50"] == pytest.approx(ev.stats[1], abs=1e-4)
