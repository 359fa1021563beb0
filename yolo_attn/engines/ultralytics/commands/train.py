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
from yolo_attn import paths
from yolo_attn.errors import UsageError
from yolo_attn.runs import confined, same_path, with_identity_start


def _resume(opt, rest):
    from ultralytics import YOLO

    if rest or opt.cfg or opt.weights:
        raise UsageError("--resume continues a run with the settings it was started with; drop the other flags, "
                         "or start a new run with --weights LAST.pt to change them")
    path, ckpt, overrides = resume_settings(opt.resume, opt.data)
    model = YOLO(path)
    start_time = time.time()
    model.train(resume=True, **overrides)
    return model, trained_settings(ckpt), start_time, {"resumed_from": path}


def resume_settings(resume, data=None):
    """(last.pt, its checkpoint, the settings ``train(resume=True, ...)`` needs) for ``--resume RESUME``.

    A run folder may come from elsewhere: every path its checkpoint records is confined to it. It resumes where it
    is now (``save_dir``: ultralytics would write into the folder recorded in ``train_args.save_dir``, maybe another
    run's, overwriting its files); its data YAML must be inside it, ours (the embedded dataset), or named again with
    ``--data`` (a file recorded elsewhere could be any file; it then goes through the data-YAML guard)."""
    last = Path(resume or "").expanduser()
    if last.is_dir():
        last = last / "weights" / "last.pt"
    path, ckpt = checkpoint(str(last))
    if ckpt.get("optimizer") is None or not isinstance(ckpt.get("epoch"), int) or ckpt["epoch"] < 0:
        raise UsageError(f"--resume: {path} is from a finished run (its optimizer state is stripped at the end), so "
                         f"there is nothing to resume. Start a new run from it: --weights {path} --cfg ...")
    last = Path(path).resolve()
    if last.parent.name != "weights":
        raise UsageError(f"--resume: {last} is not in a run folder's weights/ (RUN/weights/last.pt); ultralytics "
                         f"would write the resumed run into the folder its checkpoint names. Put it back in its run "
                         f"folder and resume that, or start a new run from it: --weights {last} --cfg ...")
    run_dir, args = last.parent.parent, trained_settings(ckpt)
    recorded = args.get("save_dir")
    if isinstance(recorded, str) and recorded and not same_path(recorded, run_dir):
        print(f"yolo-attn: this run was started in {recorded} and is now in {run_dir}: it resumes here "
              f"({recorded} is left as it is)")
    overrides = {"save_dir": str(run_dir)}
    if data is not None:
        overrides["data"] = data_yaml(data)
    else:
        recorded_data = args.get("data")
        if not isinstance(recorded_data, str) or not recorded_data:
            raise UsageError(f"--resume: {last} records no data YAML (train_args.data); name it: --resume "
                             f"{run_dir} --data YOUR.yaml")
        if not confined(recorded_data, run_dir, paths.EMBEDDED_DATASET):
            raise UsageError(f"--resume: the run's data YAML {recorded_data} (train_args.data in {last}) is outside "
                             f"the run folder {run_dir}. A run folder from elsewhere may name any file, so it is not "
                             f"read unless you name it: --resume {run_dir} --data {recorded_data}")
    return str(last), ckpt, overrides


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
