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
import contextlib
import io
import tempfile
import time
from pathlib import Path

import yaml

from yolo_attn import paths
from yolo_attn.checkpoints import load_checkpoint
from yolo_attn.cli import launch
from yolo_attn.cli.engine import choose
from yolo_attn.cli.pipeline import Parser, resolve_data, resolve_weights, run_cli, write_summary
from yolo_attn.engines.yolov5 import ddp
from yolo_attn.engines.yolov5.model import quiet
from yolo_attn.engines.yolov5.options import parse_options
from yolo_attn.errors import UsageError

# Chosen by measurement on a 2-core CPU (see README, "The embedded default").
EMBEDDED_DEFAULTS = ["--epochs", "15", "--imgsz", "160", "--batch-size", "16", "--workers", "2", "--cache", "ram",
                     "--noval", "--optimizer", "Adam", "--hyp", str(paths.DATA_DIR / "hyps" / "shapes.yaml")]


def parser():
    p = Parser("yolo-attn train", __doc__.split("\n\n", 1)[1], engine_tool="train")
    p.add_argument("--cfg", help="model YAML: a path or a name in model_yamls/ (then yolov5's models/)")
    p.add_argument("--data", help="data YAML: a path, a name in data/, coco or voc (default: the embedded dataset)")
    p.add_argument("--weights", default="", help="checkpoint to start from (tensors matched by structure)")
    p.add_argument("--attention-init", choices=("identity", "default"),
                   help="attention rows the checkpoint lacks: start as the identity (default with --weights) or "
                        "with the modules' own initialisation")
    p.add_argument("--resume", nargs="?", const="", default=None, metavar="LAST_PT_OR_RUN",
                   help="continue an interrupted run (default: the newest runs/train/*/weights/last.pt)")
    launch.add_options(p)
    return p


def build_argv(opt, rest):
    """yolov5 train argv: our resolution of --cfg/--data/--weights, our defaults first, the user's flags last."""
    weights = resolve_weights(opt.weights) if opt.weights else ""
    init = opt.attention_init or ("identity" if weights else "default")
    if not opt.cfg and not weights:
        raise UsageError("give a model with --cfg NAME (e.g. --cfg yolov5s-cbam.yaml; the names in "
                         f"{paths.MODEL_YAMLS}) or a checkpoint with --weights")
    out = ["--project", str(Path.cwd() / "runs" / "train")]
    if opt.cfg:
        cfg_path = paths.resolve_cfg(opt.cfg)
        name = cfg_path.stem
        if init == "identity" and weights:
            cfg_path = _with_identity_start(cfg_path, weights)
        out += ["--cfg", str(cfg_path), "--name", name]
    out += (EMBEDDED_DEFAULTS if opt.data is None else []) + ["--data", str(resolve_data(opt.data)),
                                                                 "--weights", weights]
    return out + rest


def _latest_last_pt():
    runs = Path.cwd() / "runs" / "train"
    found = sorted(runs.glob("*/weights/last.pt"), key=lambda p: p.stat().st_mtime) if runs.is_dir() else []
    if not found:
        raise UsageError(f"--resume without a path resumes the newest runs/train/*/weights/last.pt, and there is "
                         f"none under {runs}. Give the checkpoint: --resume runs/train/NAME/weights/last.pt")
    return found[-1]


def resume_target(path):
    """The last.pt to resume and the run's saved options; a clear UsageError when there is nothing to resume."""
    last = _latest_last_pt() if not path else Path(path).expanduser()
    if last.is_dir():  # a run folder
        last = next((c for c in (last / "weights" / "last.pt", last / "last.pt") if c.is_file()),
                    last / "weights" / "last.pt")
    if not last.is_file():
        raise UsageError(f"--resume: checkpoint {last} not found. Give a run's last.pt "
                         f"(runs/train/NAME/weights/last.pt) or its run folder.")
    last = last.resolve()
    ckpt = load_checkpoint(last)
    opt_yaml = last.parent.parent / "opt.yaml"  # where yolov5 reads the options from (else the checkpoint's)
    run_opt = yaml.safe_load(opt_yaml.read_text(encoding="utf-8")) if opt_yaml.is_file() else ckpt.get("opt")
    if not isinstance(run_opt, dict) or "epochs" not in run_opt:
        raise UsageError(f"--resume: {last} has no training options (no {opt_yaml}, none in the checkpoint); "
                         f"it was not written by a training run. Start a new run with --weights {last}.")
    epoch = ckpt.get("epoch", -1)
    if ckpt.get("optimizer") is None or not isinstance(epoch, int) or epoch < 0:
        raise UsageError(f"--resume: {last} is from a finished run (its optimizer state is stripped at the end), "
                         f"so there is nothing to resume. To train it further, start a new run from it: "
                         f"--weights {last} --cfg ... (and --data/--epochs as needed).")
    if epoch + 1 >= int(run_opt["epochs"]):
        raise UsageError(f"--resume: {last} already holds the last of the run's {run_opt['epochs']} epochs; the "
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
    engine, argv = choose(argv, "train")
    if engine == "ultralytics":
        from yolo_attn.cli.ultralytics import train as ultralytics_train

        return ultralytics_train.main(argv)
    import yolov5.train  # noqa: F401  (first: it sets up yolov5's logging, on rank 0 only under torchrun)

    opt, rest = parser().parse(argv)
    launch.import_modules(opt.imports)
    if launch.wanted(opt):
        with contextlib.redirect_stdout(io.StringIO()), quiet():  # the ranks say it; here it is only checked
            train_opt, _ = _yolov5_options(opt, rest)
        return launch.launch(opt, argv, train_opt)
    if ddp.distributed():
        launch.quiet_other_ranks()
    return _train(opt, *_yolov5_options(opt, rest))


def _yolov5_options(opt, rest):
    """(yolov5's train options, the resumed run's (last.pt, options) or None)."""
    if opt.resume is None:
        return parse_options("train", build_argv(opt, rest), "yolo-attn train"), None
    ours = [f"--{k.replace('_', '-')}" for k in ("cfg", "data", "weights", "attention_init") if getattr(opt, k)]
    if rest or ours:
        raise UsageError(f"--resume continues a run with the options it was started with (yolov5 re-reads "
                         f"them from the run's opt.yaml and ignores any other flag); drop "
                         f"{' '.join(ours + rest)}. To change options or train longer, start a new run with "
                         f"--weights LAST.pt.")
    last, run_opt = resume_target(opt.resume)
    train_opt = parse_options("train", ["--resume", str(last)], "yolo-attn train")
    # yolov5 replaces the options by the run's own; show those (not parse_opt's defaults) from the start
    return argparse.Namespace(**{**vars(train_opt), **run_opt, "resume": str(last)}), (last, run_opt)


def _train(opt, train_opt, resumed):
    import yolov5.train as yolov5_train
    from yolov5.utils.callbacks import Callbacks

    finished = {}
    callbacks = Callbacks()
    callbacks.register_action("on_train_end", "yolo_attn_summary",
                              lambda last, best, epoch, results: finished.update(best=best, epoch=epoch, results=results))
    run = argparse.Namespace(**resumed[1]) if resumed else train_opt  # resuming: yolov5 trains with the run's options
    start = time.time()
    with _process_group(opt, train_opt, resumed):
        yolov5_train.main(train_opt, callbacks=callbacks)
    if not finished:
        if ddp.rank() > 0:
            return 0  # rank 0 validates the final model and writes the summary
        raise SystemExit("training ended without a final validation; see the log above")
    extra = {"resumed_from": str(resumed[0])} if resumed else {}
    write_summary(finished["results"], Path(run.save_dir), cfg=run.cfg, data=run.data, epochs=finished["epoch"] + 1,
                  weights=str(finished["best"]), seconds=round(time.time() - start, 1), **extra)


@contextlib.contextmanager
def _process_group(opt, train_opt, resumed):
    """Under torchrun: the checks yolov5's DDP asserts, the process group (gloo on CPU, NCCL on GPU), one run
    folder for all ranks; the group is left at the end."""
    if not ddp.distributed():
        yield
        return
    import torch.distributed as dist

    launch.check_training_options(train_opt, ddp.world_size())
    ddp.init_distributed(train_opt.device, opt.ddp_timeout)
    try:
        if not resumed:
            launch.agree_on_run_folder(train_opt)
        yield
    finally:
        dist.destroy_process_group()


def cli():
    raise SystemExit(run_cli(main))


if __name__ == "__main__":
    cli()
