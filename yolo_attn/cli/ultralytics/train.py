"""``scripts/train.sh`` for ultralytics YAMLs (YOLOv5u, YOLOv8, YOLO11 and their attention variants).

Usage: train.sh --cfg yolo11n-cbam.yaml [--data D] [--weights W [--attention-init identity|default]] [settings]
       train.sh --resume [runs/train/NAME/weights/last.pt | runs/train/NAME]
Without --data it trains on the embedded ``shapes`` dataset with EMBEDDED_DEFAULTS (chosen by measurement on a 2-core
CPU; see the README); any setting you give overrides them. With --weights, checkpoint tensors are matched to the
model by structure and the attention rows the checkpoint lacks start as the identity (unless --attention-init
default). Ends with ``mAP50 <x> mAP50-95 <y>`` and runs/train/<cfg>/summary.json.
"""
import tempfile
import time
from pathlib import Path

import yaml

from yolo_attn.cli.pipeline import Parser
from yolo_attn.cli.ultralytics.common import (SETTINGS_HELP, checkpoint, data_yaml, engine_errors, metrics_summary,
                                              start, trained_settings)
from yolo_attn.engines.ultralytics.options import EMBEDDED_DEFAULTS
from yolo_attn.errors import UsageError


def parser():
    p = Parser("yolo-attn train (ultralytics)", __doc__.split("\n\n", 1)[1], epilog=SETTINGS_HELP)
    p.add_argument("--cfg", help="model YAML: a path, a name in model_yamls/ultralytics/, or a stock ultralytics "
                                 "name (yolov8s.yaml)")
    p.add_argument("--data", help="data YAML: a path or a name in data/ (default: the embedded dataset)")
    p.add_argument("--weights", default="", help="checkpoint to start from (tensors matched by structure)")
    p.add_argument("--attention-init", choices=("identity", "default"),
                   help="attention rows the checkpoint lacks: start as the identity (default with --weights) or "
                        "with the modules' own initialisation")
    p.add_argument("--resume", nargs="?", const="", default=None, metavar="LAST_PT_OR_RUN",
                   help="continue an interrupted run from its last.pt")
    return p


def with_identity_start(cfg, ckpt, weights):
    """A copy of the model YAML whose attention rows absent from the checkpoint start as the identity (the user's
    file is left as it is); ``cfg`` itself when there are none."""
    from yolo_attn.engines.ultralytics.model import identity_rows, model_dict

    d = model_dict(cfg)
    rows = identity_rows((ckpt.get("ema") or ckpt["model"]).float().state_dict(), d)
    if not rows:
        return cfg
    print(f"yolo-attn: attention rows {rows} are new to {Path(weights).name}; they start as the identity "
          f"(--attention-init default to use the modules' own initialisation)")
    copy = {k: v for k, v in d.items() if k != "yaml_file"}
    copy["identity_start"] = rows
    out = Path(tempfile.mkdtemp(prefix="yolo-attn-cfg-")) / Path(str(cfg)).name
    out.write_text(yaml.safe_dump(copy, sort_keys=False), encoding="utf-8")
    return str(out)


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


@engine_errors
def main(argv):
    from ultralytics import YOLO

    from yolo_attn.engines.ultralytics.yamls import resolve_cfg

    opt, rest = parser().parse_known_args(argv)
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
            cfg = with_identity_start(cfg, ckpt, weights)
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
