"""Match records of ultralytics' validation: the collector's record is ultralytics' own statistics entry for entry,
and the metrics recomputed from it are the mAPs ultralytics reports (its AP rule, not yolov5's)."""
import dataclasses
import json

import numpy as np
import pytest
import torch

from yolo_attn import paths
from yolo_attn.ablation.bootstrap import WeightedMAP, map_scores
from yolo_attn.matches import MatchRecord
from yolo_attn.engines.ultralytics.matches import MatchCollector
from yolo_attn.cli import val as val_cli
from yolo_attn.cli.pipeline import run_cli
from yolo_attn.datasets import shapes


def _validate(weights, data, tmp_path, monkeypatch, **settings):
    """ultralytics' validation with the collector; (record, ultralytics' metrics, what its ap_per_class got)."""
    import ultralytics.utils.metrics as metrics
    from ultralytics import YOLO

    seen = []
    ap_per_class = metrics.ap_per_class
    monkeypatch.setattr(metrics, "ap_per_class", lambda *a, **kw: seen.append(a[:4]) or ap_per_class(*a, **kw))
    collector = MatchCollector()
    result = YOLO(str(weights)).val(data=str(data), workers=0, plots=False, project=str(tmp_path / "runs"),
                                    name="val", exist_ok=True, verbose=False, validator=collector.validator(),
                                    **settings)
    return collector.record(), result, seen[-1]


def _check_equal(record, result, seen):
    tp, conf, pred_cls, target_cls = seen
    assert np.array_equal(tp, record.correct) and np.array_equal(conf, record.conf)
    assert np.array_equal(pred_cls, record.pred_cls) and np.array_equal(target_cls, record.target_cls)
    expected = (result.box.map50, result.box.map)
    assert map_scores(record) == pytest.approx(expected, abs=1e-12, rel=0)
    fast = WeightedMAP(record)(np.ones((1, record.n_images), np.int64))
    assert (fast.map50[0], fast.map50_95[0]) == pytest.approx(expected, abs=1e-12, rel=0)


def test_the_record_is_what_ultralytics_scores(tmp_path, monkeypatch):
    """An untrained yolo11n-cbam whose head is set to give boxes of a few sizes at every anchor with mixed scores:
    hundreds of predictions per image, a few of them true positives."""
    from yolo_attn.engines.ultralytics.model import build_model, save_checkpoint

    data = shapes.generate(tmp_path / "ds", train=1, val=10, size=160, seed=3)
    (tmp_path / "ds" / "labels" / "val" / "val_00003.txt").write_text("")  # an image without targets
    torch.manual_seed(0)
    model = build_model(paths.MODEL_YAMLS / "ultralytics" / "yolo11n-cbam.yaml", nc=4)
    head = model.model[-1]
    for box, cls in zip(head.cv2, head.cv3):
        torch.nn.init.normal_(box[-1].weight, std=1.0)
        bias = torch.zeros_like(box[-1].bias).view(4, -1)
        bias[:, :4] = 2.0  # distances of 0-3 strides per side
        box[-1].bias.data = bias.flatten()
        torch.nn.init.zeros_(cls[-1].bias)
    weights = save_checkpoint(model, tmp_path / "w" / "best.pt", {"imgsz": 160})
    record, result, seen = _validate(weights, data, tmp_path, monkeypatch, imgsz=160, batch=4)
    assert record.n_images == 10 and record.ap_rule == "ultralytics"
    assert sorted(record.paths) == sorted(str(p) for p in (tmp_path / "ds" / "images" / "val").iterdir())
    assert record.conf.size > 1000 and record.correct.any()
    _check_equal(record, result, seen)
    assert 0 < result.box.map < result.box.map50
    assert map_scores(dataclasses.replace(record, ap_rule="yolov5")) != map_scores(record)  # the rule matters here


@pytest.mark.parametrize("nms", [None, False])
def test_the_record_of_an_end_to_end_model_is_what_ultralytics_scores(nms, tmp_path, monkeypatch):
    """YOLO26 (two branches, reg_max 1): ultralytics' default validation (one-to-many branch and NMS) and nms=False
    (the one-to-one branch, top-k, no NMS) are recorded entry for entry."""
    from yolo_attn.engines.ultralytics.model import build_model, save_checkpoint

    data = shapes.generate(tmp_path / "ds", train=1, val=6, size=128, seed=3)
    torch.manual_seed(0)
    model = build_model(paths.MODEL_YAMLS / "ultralytics" / "yolo26n-cbam.yaml", nc=4)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # random BN statistics: varied scores and boxes (fresh ones give one score everywhere)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    head = model.model[-1]
    for boxes, classes in ((head.cv2, head.cv3), (head.one2one_cv2, head.one2one_cv3)):
        for box, cls in zip(boxes, classes):
            torch.nn.init.normal_(box[-1].weight, std=0.5)
            box[-1].bias.data[:] = 2.0  # distances of about 2 strides per side (reg_max 1: the distance itself)
            torch.nn.init.zeros_(cls[-1].bias)
    weights = save_checkpoint(model, tmp_path / "w" / "best.pt", {"imgsz": 128})
    record, result, seen = _validate(weights, data, tmp_path, monkeypatch, imgsz=128, batch=3, nms=nms)
    assert record.n_images == 6 and record.conf.size > 100 and record.correct.any() and np.unique(record.conf).size > 10
    if nms is False:  # top-k of the one-to-one branch: at most max_det (300) per image, no NMS thinning
        assert np.bincount(record.pred_image).max() <= 300
    _check_equal(record, result, seen)


def test_a_collector_follows_repeated_validations(tmp_path):
    collector = MatchCollector()
    stats = {"tp": [np.ones((1, 10), bool)], "conf": [np.float32([0.9])], "pred_cls": [np.float32([0])],
             "target_cls": [np.float32([0])]}
    collector.add(stats, 0, ["a.jpg"])
    collector.reset()
    with pytest.raises(ValueError, match="no validation images were recorded"):
        collector.record()
    with pytest.raises(RuntimeError, match="1 statistics entries for a batch of 2 images"):
        collector.add(stats, 0, ["a.jpg", "b.jpg"])


@pytest.mark.slow
def test_val_save_matches_on_a_trained_detector(ul_trained, tmp_path, monkeypatch):
    """On a detector with mAP50 > 0.5: the collector's record gives ultralytics' mAPs to 1e-12, and val.sh
    --save-matches writes it, the summary naming it."""
    record, result, seen = _validate(ul_trained["weights"], ul_trained["data"], tmp_path, monkeypatch,
                                     imgsz=ul_trained["imgsz"])
    assert result.box.map50 > 0.5
    _check_equal(record, result, seen)

    monkeypatch.chdir(tmp_path)
    out = tmp_path / "m" / "matches.npz"
    assert run_cli(val_cli.main, ["--weights", ul_trained["weights"], "--save-matches", str(out)]) == 0
    summary = json.loads((tmp_path / "runs" / "val" / "yolo11n-cbam" / "summary.json").read_text())
    saved = MatchRecord.load(out)
    assert summary["matches"] == str(out) and saved.ap_rule == "ultralytics"
    scores = map_scores(saved)
    assert (round(scores.map50, 4), round(scores.map50_95, 4)) == (summary["mAP50"], summary["mAP50-95"])
