"""``scripts/train.sh`` for ultralytics YAMLs (YOLOv5u, YOLOv8, YOLO11 and their attention variants).

Usage: train.sh --cfg yolo11n-cbam.yaml [--data D] [--weights W [--attention-init identity|default]] [settings]
       train.sh --resume [runs/train/NAME/weights/last.pt | runs/train/NAME]
Without --data it trains on the embedded ``shapes`` dataset with EMBEDDED_DEFAULTS (chosen by measurement on a 2-core
CPU; see docs/measurements.md); any setting you give overrides them. With --weights, checkpoint tensors are matched to the
model by structure and the attention rows the checkpoint lacks start as the identity (unless --attention-init
default). Ends with ``mAP50 <x> mAP50-95 <y>`` and runs/train/<cfg>/summary.json.
"""
import time
from pathlib import Path

from yolo_attn.engines.ultralytics.commands.common import (checkpoint, data_yaml, metrics_summary, start,
                                                           trained_settings)
from yolo_attn.engines.ultralytics.options import EMBEDDED_DEFAULTS
from yolo_attn.errors import UsageError
from yolo_attn.runs import with_identity_start


def _resume(opt, rest):
    from ultralytics import YOLO

    if rest or opt.cfg or opt.data or opt.weights:
        raise UsageError("--resume continues a run with the settings it was started with; drop the other flags, "
                         "or start a new run with --weights LAST.pt to change them")
    last = Path(opt.resume or "").expanduser()
    if last.is_dir():
        last = last / "weights" / "last.pt"
    path, ckpt = checkpoint(str(last))
    if ckpt.get("optimizer") is None or not isinstance(ckpt.get("epoch"), int) or ckpt["epoch"] < 0:
        raise UsageError(f"--resume: {path} is from a finished run (its optimizer state is stripped at the end), so "
                         f"there is nothing to resume. Start a new run from it: --weights {path} --cfg ...")
    model = YOLO(path)
    start_time = time.time()
    model.train(resume=True)
    return model, trained_settings(ckpt), start_time, {"resumed_from": path}


def run(opt, rest):
    from ultralytics import YOLO

    from yolo_attn import engines
    from yolo_attn.engines.ultralytics.yamls import resolve_cfg

    settings = start(rest)
    if opt.resume is not None:
        model, run, start_time, extra = _resume(opt, rest)
    else:
        if not opt.cfg:
            raise UsageError("give a model YAML with --cfg NAME (e.g. --cfg yolo11n-cbam.yaml; the names in "
                             "model_yamls/ultralytics/)")
        cfg = named = resolve_cfg(opt.cfg)
        stem = Path(str(cfg)).stem
        if "yoloe" in stem or "-world" in stem:
            raise UsageError(f"--cfg {opt.cfg}: ultralytics switches to its YOLOE/YOLO-World models for file names "
                             f"containing 'yoloe' or '-world'; rename the file")
        weights, ckpt = checkpoint(opt.weights) if opt.weights else ("", None)
        if ckpt is not None and (opt.attention_init or "identity") == "identity":
            # ultralytics makes its run folder itself, when training starts: the copy goes to a temporary folder
            cfg = str(with_identity_start(engines.get("ultralytics"), cfg, ckpt, weights))
        run = {**(EMBEDDED_DEFAULTS if opt.data is None else {}), "model": str(named), "data": data_yaml(opt.data),
               "project": str(Path.cwd() / "runs" / "train"), "name": stem, **settings}
        if weights:
            run["pretrained"] = weights
        model = YOLO(cfg)
        start_time, extra = time.time(), {}
        model.train(**{k: v for k, v in run.items() if k != "model"})
    trainer = model.trainer
    metrics_summary(trainer.metrics, trainer.save_dir, cfg=run.get("model"),
                    data=run.get("data"), epochs=trainer.epoch + 1, weights=str(trainer.best),
                    seconds=round(time.time() - start_time, 1), **extra)
