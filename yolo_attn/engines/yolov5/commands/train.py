"""``scripts/train.sh``: yolov5's own training with the yolo-attn layers, ending with mAP50 and mAP50-95.

Usage: train.sh --cfg yolov5s-cbam.yaml [--data D] [--weights W [--attention-init identity|default]] [yolov5 flags]
       train.sh --resume [runs/train/NAME/weights/last.pt | runs/train/NAME]   (default: the newest last.pt)
Without --data it trains on the embedded ``shapes`` dataset with settings tuned to finish well inside
10 minutes on a 2-core CPU (measured: 5 min 9 s from a fresh clone; EMBEDDED_DEFAULTS); any flag you give
overrides them.
With --weights, checkpoint tensors are matched to the model by structure (yolo_attn.transfer), and the
attention layers the checkpoint lacks start as the identity unless --attention-init default is given.
With --resume, an interrupted run continues from its last.pt with the options it was started with (yolov5 re-reads
them from the run's opt.yaml), --noval included, and ends with the same summary; a run folder that was renamed or
moved resumes where it is now.
The run folder (runs/train/NAME) holds everything the run reads: data.yaml (the data YAML, path: resolved) and, with
identity start, the model YAML it was built from.
"""
import argparse
import contextlib
import io
import os
import time
from pathlib import Path

import yaml

from yolo_attn import paths
from yolo_attn.checkpoints import load_checkpoint
from yolo_attn.datasets import checks
from yolo_attn.engines.yolov5 import ddp
from yolo_attn.engines.yolov5.commands import launch
from yolo_attn.engines.yolov5.model import check_readable_as_ascii, quiet
from yolo_attn.engines.yolov5.options import parse_options
from yolo_attn.errors import BadParameter, UsageError
from yolo_attn.runs import confined, resolve_weights, run_folder, with_identity_start, write_summary

# Chosen by measurement on a 2-core CPU (docs/measurements.md, "How the embedded defaults were chosen").
EMBEDDED_DEFAULTS = ["--epochs", "15", "--imgsz", "160", "--batch-size", "16", "--workers", "2", "--cache", "ram",
                     "--noval", "--optimizer", "Adam", "--hyp", str(paths.HYPS / "shapes.yaml")]


def add_options(parser):
    """yolov5's training adds the torchrun launch options (and --import) to the shared ones."""
    launch.add_options(parser)


def build_argv(opt, rest):
    """yolov5 train argv: our resolution of --cfg/--weights, our defaults first, the user's flags last. The data YAML
    and the run folder are settled by ``prepare_run`` once yolov5's options are known."""
    weights = resolve_weights(opt.weights) if opt.weights else ""
    if not opt.cfg and not weights:
        raise UsageError("give a model with --cfg NAME (e.g. --cfg yolov5s-cbam.yaml; the names in "
                         f"{paths.MODEL_YAMLS}) or a checkpoint with --weights")
    out = ["--project", str(Path.cwd() / "runs" / "train")]
    if opt.cfg:
        cfg_path = paths.resolve_cfg(opt.cfg)
        check_readable_as_ascii(cfg_path)
        out += ["--cfg", str(cfg_path), "--name", cfg_path.stem]
    return out + (EMBEDDED_DEFAULTS if opt.data is None else []) + ["--weights", weights] + rest


def check_options(train_opt):
    """What yolov5 takes on trust: it would divide by zero, train nothing, or silently change the image size."""
    if train_opt.epochs < 1:
        raise BadParameter("epochs", f"{{name}} {train_opt.epochs}: give the number of passes over the training "
                                     f"images, at least 1")
    if train_opt.batch_size == 0 or train_opt.batch_size < -1:
        raise BadParameter("batch_size", f"{{name}} {train_opt.batch_size}: give the number of images per batch "
                                         f"(at least 1), or -1 for yolov5's automatic size on a GPU")
    if train_opt.imgsz < 64:
        raise BadParameter("imgsz", f"{{name}} {train_opt.imgsz}: yolov5 would silently train at 64. Sizes that work "
                                    f"are multiples of 32 from 64 up (64, 160, 320, 640, ...; other sizes are "
                                    f"rounded up to the next multiple of 32)")


def prepare_run(train_opt, data, attention_init=None):
    """Before yolov5 starts: check its options, refuse an unsafe or unusable --weights, and make the run folder with
    what the run reads (data.yaml, the identity-start model YAML); yolov5 is then told to use exactly that folder."""
    check_options(train_opt)
    weights = train_opt.weights if train_opt.weights and Path(train_opt.weights).is_file() else None
    ckpt = load_checkpoint(weights) if weights else None  # refused here, before anything is written
    save_dir = run_folder(paths.writable_folder(train_opt.project), train_opt.name, train_opt.exist_ok)
    train_opt.data = str(checks.resolve(data, save_dir))
    if ckpt is not None and train_opt.cfg and (attention_init or "identity") == "identity":
        from yolo_attn import engines

        train_opt.cfg = str(with_identity_start(engines.get("yolov5"), train_opt.cfg, ckpt, weights, save_dir))
    train_opt.project, train_opt.name, train_opt.exist_ok = str(save_dir.parent), save_dir.name, True
    return save_dir


def _latest_last_pt():
    runs = Path.cwd() / "runs" / "train"
    found = sorted(runs.glob("*/weights/last.pt"), key=lambda p: p.stat().st_mtime) if runs.is_dir() else []
    if not found:
        raise UsageError(f"--resume without a path resumes the newest runs/train/*/weights/last.pt, and there is "
                         f"none under {runs}. Give the checkpoint: --resume runs/train/NAME/weights/last.pt")
    return found[-1]


def resume_target(path):
    """The last.pt to resume and the run's saved options; a clear UsageError when there is nothing to resume.

    yolov5 resumes into the folder recorded in the run's opt.yaml (``save_dir``): for a run folder that was renamed or
    moved, that is another folder, maybe another run, which it would overwrite. Such a run resumes where it is now:
    its opt.yaml is rewritten (atomically) to point there."""
    last = _latest_last_pt() if not path else Path(path).expanduser()
    if last.is_dir():  # a run folder
        last = next((c for c in (last / "weights" / "last.pt", last / "last.pt") if c.is_file()),
                    last / "weights" / "last.pt")
    if not last.is_file():
        raise UsageError(f"--resume: checkpoint {last} not found. Give a run's last.pt "
                         f"(runs/train/NAME/weights/last.pt) or its run folder.")
    last = last.resolve()
    ckpt = load_checkpoint(last)
    if last.parent.name != "weights":
        raise UsageError(f"--resume: {last} is not in a run folder's weights/ (RUN/weights/last.pt next to "
                         f"RUN/opt.yaml); yolov5 would write the resumed run beside it. Put it back in its run folder "
                         f"and resume that, or start a new run from it: --weights {last} --cfg ...")
    run_dir, opt_yaml = last.parent.parent, last.parent.parent / "opt.yaml"  # where yolov5 reads the options from
    run_opt = _read_options(opt_yaml) if opt_yaml.is_file() else ckpt.get("opt")
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
    run_opt = _resume_here(run_opt, run_dir, opt_yaml)
    data = str(run_opt.get("data") or "")
    if data and "://" not in data and not Path(data).is_file():
        raise UsageError(f"--resume: the run's data YAML {data} (recorded in {opt_yaml}) no longer exists, so yolov5 "
                         f"cannot resume it. Put the file back there (runs made before yolo-attn kept data.yaml in the "
                         f"run folder recorded a temporary file), or start a new run from the checkpoint: "
                         f"--weights {last} --data YOUR.yaml --cfg ...")
    if data and not confined(data, run_dir, paths.EMBEDDED_DATASET, paths.yolov5_root() / "data"):
        raise UsageError(f"--resume: the run's data YAML {data} (recorded in {opt_yaml}) is outside the run folder "
                         f"{run_dir}. A run folder from elsewhere may name any file, so it is not read: copy the YAML "
                         f"into the run folder as {run_dir / 'data.yaml'} and set data: to it in {opt_yaml}, or start "
                         f"a new run from the checkpoint: --weights {last} --data YOUR.yaml --cfg ...")
    print(f"yolo-attn: resuming {run_dir} from {last.name} (epoch {epoch + 1} of {run_opt['epochs']} done)")
    return last, run_opt


def _read_options(opt_yaml):
    try:
        return yaml.safe_load(opt_yaml.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise UsageError(f"--resume: {opt_yaml} cannot be read ({str(e).splitlines()[0]})") from None


def _resume_here(run_opt, run_dir, opt_yaml):
    """The run's options with every path inside its recorded folder moved to ``run_dir``, written to its opt.yaml
    (atomically) when they differ; the recorded folder itself is never touched."""
    recorded = str(run_opt.get("save_dir") or run_dir)
    if os.path.realpath(recorded) == str(run_dir):
        return run_opt
    moved = {k: str(run_dir) + v[len(recorded):] if isinstance(v, str) and (v == recorded or v.startswith(
        recorded.rstrip(os.sep) + os.sep)) else v for k, v in run_opt.items()}
    moved["save_dir"] = str(run_dir)
    plain = {k: str(v) if isinstance(v, Path) else v for k, v in moved.items()}
    paths.write_atomically(opt_yaml, yaml.safe_dump(plain, sort_keys=False))
    print(f"yolo-attn: this run was started in {recorded} and is now in {run_dir}: it resumes here ({opt_yaml} "
          f"updated; {recorded} is left as it is)")
    return moved


def run(opt, rest, argv):
    import yolov5.train  # noqa: F401  (first: it sets up yolov5's logging, on rank 0 only under torchrun)

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
        train_opt = parse_options("train", build_argv(opt, rest), "yolo-attn train")
        check_options(train_opt)
        return train_opt, None
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
        if not resumed:
            _prepare_run_once(train_opt, opt)
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
    """Under torchrun: the checks yolov5's DDP asserts and the process group (gloo on CPU, NCCL on GPU), left at
    the end."""
    if not ddp.distributed():
        yield
        return
    import torch.distributed as dist

    launch.check_training_options(train_opt, ddp.world_size())
    launch.check_timeout(opt.ddp_timeout)  # also under a plain torchrun, which skips the launcher's checks
    ddp.init_distributed(train_opt.device, opt.ddp_timeout)
    try:
        yield
    finally:
        dist.destroy_process_group()


def _prepare_run_once(train_opt, opt):
    """``prepare_run`` on rank 0 (one run folder, one data.yaml, one model YAML copy); the other ranks take its
    options, and write those files where they do not see them (a node without the shared file system)."""
    if not ddp.distributed():
        prepare_run(train_opt, opt.data, opt.attention_init)
        return
    import torch.distributed as dist

    chosen = [None]
    if ddp.rank() == 0:
        prepare_run(train_opt, opt.data, opt.attention_init)
        keys = ("data", "cfg", "project", "name", "exist_ok")
        files = {p: Path(p).read_text(encoding="utf-8") for p in (train_opt.data, train_opt.cfg)
                 if p and Path(p).parent == Path(train_opt.project) / train_opt.name}
        chosen = [({k: getattr(train_opt, k) for k in keys}, files)]
    dist.broadcast_object_list(chosen, src=0)
    options, files = chosen[0]
    vars(train_opt).update(options)
    for path, text in files.items():
        if not Path(path).is_file():
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            paths.write_atomically(path, text)

