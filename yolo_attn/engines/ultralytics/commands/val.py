"""``scripts/val.sh`` for ultralytics checkpoints: ultralytics' own validation, ending with mAP50 and mAP50-95.

Usage: val.sh --weights W [--data D] [--save-matches PATH] [settings: imgsz=, batch=, conf=, iou=, device=, ...]
Without --data (or imgsz) it uses the dataset (and image size) the checkpoint was trained with.
--save-matches writes the per-image match record (yolo_attn.engines.ultralytics.matches) that the paired bootstrap
of ``scripts/ablate.sh`` resamples.
"""
from pathlib import Path

from yolo_attn.datasets import checks
from yolo_attn.engines.ultralytics.commands.common import (checkpoint, data_yaml, metrics_summary, run_name, start,
                                                           trained_settings)
from yolo_attn.engines.ultralytics.matches import MatchCollector
from yolo_attn.errors import UsageError
from yolo_attn.runs import matches_path, resolve_data


def run(opt, rest):
    from ultralytics import YOLO

    settings = start(rest)
    matches = matches_path(opt.save_matches, {"--weights": opt.weights, "--data": opt.data})
    if not opt.weights:
        raise UsageError("give a checkpoint with --weights PATH (e.g. runs/train/yolo11n-cbam/weights/best.pt)")
    weights, ckpt = checkpoint(opt.weights)
    trained = trained_settings(ckpt)
    if opt.data is not None:
        data = data_yaml(opt.data)
    elif trained.get("data") and Path(str(trained["data"])).is_file():
        data = str(checks.prepare(trained["data"]))
    else:
        data = str(resolve_data(None))
    run = {"data": data, "project": str(Path.cwd() / "runs" / "val"), "name": run_name(weights)}
    if trained.get("imgsz"):
        run["imgsz"] = trained["imgsz"]
    run.update(settings)
    model = YOLO(weights)
    seen = {}
    model.add_callback("on_val_end", lambda validator: seen.update(save_dir=validator.save_dir))
    collector = MatchCollector() if matches else None
    metrics = model.val(**run, **({"validator": collector.validator()} if collector else {}))
    saved = {}
    if collector:  # before the summary: a summary naming its match record means the record is complete
        collector.record().save(matches)
        saved["matches"] = str(matches)
    metrics_summary(metrics.results_dict, seen["save_dir"], weights=weights, data=run["data"],
                    imgsz=run.get("imgsz"), **saved)
