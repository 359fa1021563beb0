"""``scripts/train.sh``: yolov5's own training with the yolo-attn layers, ending with mAP50 and mAP50-95.

Usage: train.sh --cfg yolov5s-cbam.yaml [--data D] [--weights W [--attention-init identity|default]] [yolov5 flags]
       train.sh --resume [runs/train/NAME/weights/last.pt | runs/train/NAME]   (default: the newest last.pt)
Without --data it trains on the embedded ``shapes`` dataset with settings tuned to finish well inside
10 minutes on a 2-core CPU (measured 4.5 min; EMBEDDED_DEFAULTS); any flag you give overrides them.
With --weights, checkpoint tensors are matched to the model by structure (yolo_attn.transfer), and the
attention layers the checkpoint lacks start as the identity unless --attention-init default is given.
With --resume, an interrupted run continues from its last.pt with the options it was started with (yolov5 re-reads
them from the run's opt.yaml), --noval included, and ends with the same summary.
"""
import argparse
import tempfile
import time
from pathlib import Path

import yaml

from yolo_attn import paths
from yolo_attn.checkpoints import load_checkpoint
from yolo_attn.cli.common import flag_value, patched_argv, resolve_weights, run_cli, summarize, without_flag
from yolo_attn.datasets import checks, shapes

# Chosen by measurement on a 2-core CPU (see README, "The embedded default").
EMBEDDED_DEFAULTS = ["--epochs", "15", "--imgsz", "160", "--batch-size", "16", "--workers", "2", "--cache", "ram",
                     "--noval", "--optimizer", "Adam", "--hyp", str(paths.DATA_DIR / "hyps" / "shapes.yaml")]


def build_argv(argv):
    """yolov5 train argv: our resolution of --cfg/--data/--weights, our defaults first, the user's flags last."""
    cfg = flag_value(argv, "--cfg")
    data = flag_value(argv, "--data")
    weights = flag_value(argv, "--weights")
    weights = resolve_weights(weights) if weights else ""
    init = flag_value(argv, "--attention-init") or ("identity" if weights else "default")
    if init not in ("identity", "default"):
        raise paths.UsageError(f"--attention-init takes 'identity' or 'default', got {init!r}")
    rest = without_flag(argv, "--cfg", "--data", "--weights", "--attention-init")
    if not cfg and not weights:
        raise paths.UsageError("give a model with --cfg NAME (e.g. --cfg yolov5s-cbam.yaml; the names in "
                               f"{paths.MODEL_YAMLS}) or a checkpoint with --weights")
    out = ["--project", str(Path.cwd() / "runs" / "train")]
    if cfg:
        cfg_path = paths.resolve_cfg(cfg)
        name = cfg_path.stem
        if init == "identity" and weights:
            cfg_path = _with_identity_start(cfg_path, weights)
        out += ["--cfg", str(cfg_path), "--name", name]
    if data is None:
        data_yaml = shapes.ensure(paths.EMBEDDED_DATASET)
        out += EMBEDDED_DEFAULTS
    else:
        data_path = paths.resolve_data(data)
        data_yaml = checks.prepare(data_path, is_yolov5_builtin=paths.is_yolov5_data(data_path))
    out += ["--data", str(data_yaml), "--weights", weights]
    return out + rest


def split_resume(argv):
    """(resuming, the --resume path or None, the other args) for ``--resume [PATH]`` / ``--resume=PATH``."""
    for k, arg in enumerate(argv):
        if arg == "--resume":
            has_path = k + 1 < len(argv) and not argv[k + 1].startswith("-")
            return True, argv[k + 1] if has_path else None, argv[:k] + argv[k + 1 + has_path:]
        if arg.startswith("--resume="):
            return True, arg.split("=", 1)[1] or None, argv[:k] + argv[k + 1:]
    return False, None, argv


def _latest_last_pt():
    runs = Path.cwd() / "runs" / "train"
    found = sorted(runs.glob("*/weights/last.pt"), key=lambda p: p.stat().st_mtime) if runs.is_dir() else []
    if not found:
        raise paths.UsageError(f"--resume without a path resumes the newest runs/train/*/weights/last.pt, and there is "
                               f"none under {runs}. Give the checkpoint: --resume runs/train/NAME/weights/last.pt")
    return found[-1]


def resume_target(path):
    """The last.pt to resume and the run's saved options; a clear UsageError when there is nothing to resume."""
    last = _latest_last_pt() if path is None else Path(path).expanduser()
    if last.is_dir():  # a run folder
        last = next((c for c in (last / "weights" / "last.pt", last / "last.pt") if c.is_file()),
                    last / "weights" / "last.pt")
    if not last.is_file():
        raise paths.UsageError(f"--resume: checkpoint {last} not found. Give a run's last.pt "
                               f"(runs/train/NAME/weights/last.pt) or its run folder.")
    last = last.resolve()
    ckpt = load_checkpoint(last)
    opt_yaml = last.parent.parent / "opt.yaml"  # where yolov5 reads the options from (else the checkpoint's)
    run_opt = yaml.safe_load(opt_yaml.read_text(encoding="utf-8")) if opt_yaml.is_file() else ckpt.get("opt")
    if not isinstance(run_opt, dict) or "epochs" not in run_opt:
        raise paths.UsageError(f"--resume: {last} has no training options (no {opt_yaml}, none in the checkpoint); "
                               f"it was not written by a training run. Start a new run with --weights {last}.")
    epoch = ckpt.get("epoch", -1)
    if ckpt.get("optimizer") is None or not isinstance(epoch, int) or epoch < 0:
        raise paths.UsageError(f"--resume: {last} is from a finished run (its optimizer state is stripped at the end), "
                               f"so there is nothing to resume. To train it further, start a new run from it: "
                               f"--weights {last} --cfg ... (and --data/--epochs as needed).")
    if epoch + 1 >= int(run_opt["epochs"]):
        raise paths.UsageError(f"--resume: {last} already holds the last of the run's {run_opt['epochs']} epochs; the "
                               f"run stopped during its final validation. Validate it: scripts/val.sh --weights {last}")
    print(f"yolo-attn: resuming {run_opt.get('save_dir', last.parent.parent)} from {last.name} "
          f"(epoch {epoch + 1} of {run_opt['epochs']} done)")
    return last, run_opt


def _with_identity_start(cfg_path, weights):
    """A copy of the model YAML whose attention rows absent from ``weights`` start as the identity.

    The user's file is left as it is; the copy lists those rows under ``identity_start:``.
    """
    from yolo_attn.engines.yolov5.model import identity_rows

    d = yaml.safe_load(Path(cfg_path).read_text(encoding="utf-8"))
    ckpt = load_checkpoint(weights)
    d["identity_start"] = identity_rows((ckpt.get("ema") or ckpt["model"]).float().state_dict(), d)
    if not d["identity_start"]:
        return cfg_path
    print(f"yolo-attn: attention rows {d['identity_start']} are new to {Path(weights).name}; they start as the "
          f"identity (--attention-init default to use the modules' own initialisation)")
    copy = Path(tempfile.mkdtemp(prefix="yolo-attn-cfg-")) / Path(cfg_path).name
    copy.write_text(yaml.safe_dump(d, sort_keys=False), encoding="utf-8")
    return copy


def main(argv):
    import yolov5.train as yolov5_train
    from yolov5.utils.callbacks import Callbacks

    resuming, resume_path, rest = split_resume(argv)
    if resuming:
        if rest:
            raise paths.UsageError(f"--resume continues a run with the options it was started with (yolov5 re-reads "
                                   f"them from the run's opt.yaml and ignores any other flag); drop {' '.join(rest)}. "
                                   f"To change options or train longer, start a new run with --weights LAST.pt.")
        last, run_opt = resume_target(resume_path)
        argv = ["--resume", str(last)]
    else:
        argv = build_argv(argv)
    with patched_argv(argv, "yolo-attn train"):
        opt = yolov5_train.parse_opt()
    if resuming:  # yolov5 replaces the options by the run's own; show those (not parse_opt's defaults) from the start
        opt = argparse.Namespace(**{**vars(opt), **run_opt, "resume": str(last)})
    finished = {}
    callbacks = Callbacks()
    callbacks.register_action("on_train_end", "yolo_attn_summary",
                              lambda last, best, epoch, results: finished.update(best=best, epoch=epoch, results=results))
    run = argparse.Namespace(**run_opt) if resuming else opt  # resuming: yolov5 trains with the run's saved options
    start = time.time()
    yolov5_train.main(opt, callbacks=callbacks)
    if not finished:
        raise SystemExit("training ended without a final validation; see the log above")
    extra = {"resumed_from": str(last)} if resuming else {}
    summarize(finished["results"], Path(run.save_dir), cfg=run.cfg, data=run.data, epochs=finished["epoch"] + 1,
              weights=str(finished["best"]), seconds=round(time.time() - start, 1), **extra)


def cli():
    raise SystemExit(run_cli(main))


if __name__ == "__main__":
    cli()
