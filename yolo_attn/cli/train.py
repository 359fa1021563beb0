"""``scripts/train.sh``: yolov5's own training with the yolo-attn layers, ending with mAP50 and mAP50-95.

Usage: train.sh --cfg yolov5s-cbam.yaml [--data D] [--weights W [--attention-init identity|default]] [yolov5 flags]
Without --data it trains on the embedded ``shapes`` dataset with settings tuned to finish in about
10 minutes on a 2-core CPU (EMBEDDED_DEFAULTS); any flag you give overrides them.
With --weights, checkpoint tensors are matched to the model by structure (yolo_attn.transfer), and the
attention layers the checkpoint lacks start as the identity unless --attention-init default is given.
"""
import tempfile
import time
from pathlib import Path

import yaml

import yolo_attn  # noqa: F401  (registers layers, patches yolov5)
from yolo_attn import paths
from yolo_attn.compat.train_noval import use_noval
from yolo_attn.cli.common import flag_value, patched_argv, run_cli, summarize, without_flag
from yolo_attn.datasets import checks, shapes
from yolo_attn.transfer.structural import intersect_dicts_by_structure

# Chosen by measurement on a 2-core CPU (see README, "The embedded default").
EMBEDDED_DEFAULTS = ["--epochs", "15", "--imgsz", "160", "--batch-size", "16", "--workers", "2", "--cache", "ram",
                     "--noval", "--optimizer", "Adam", "--hyp", str(paths.DATA_DIR / "hyps" / "shapes.yaml")]


def build_argv(argv):
    """yolov5 train argv: our resolution of --cfg/--data/--weights, our defaults first, the user's flags last."""
    cfg = flag_value(argv, "--cfg")
    data = flag_value(argv, "--data")
    weights = flag_value(argv, "--weights")
    init = flag_value(argv, "--attention-init") or ("identity" if weights else "default")
    if init not in ("identity", "default"):
        raise paths.UsageError(f"--attention-init takes 'identity' or 'default', got {init!r}")
    resume = "--resume" in argv or any(a.startswith("--resume=") for a in argv)
    rest = without_flag(argv, "--cfg", "--data", "--weights", "--attention-init")
    if not cfg and not weights and not resume:
        raise paths.UsageError("give a model with --cfg NAME (e.g. --cfg yolov5s-cbam.yaml; the names in "
                               f"{paths.MODEL_YAMLS}) or a checkpoint with --weights")
    out = ["--project", str(Path.cwd() / "runs" / "train")]
    if cfg:
        cfg_path = paths.resolve_cfg(cfg)
        name = cfg_path.stem
        if init == "identity":
            cfg_path = _with_identity_start(cfg_path)
        out += ["--cfg", str(cfg_path), "--name", name]
    if data is None:
        data_yaml = shapes.ensure(paths.EMBEDDED_DATASET)
        out += EMBEDDED_DEFAULTS
    else:
        data_path = paths.resolve_data(data)
        data_yaml = checks.prepare(data_path, is_yolov5_builtin=data_path.parent == paths.yolov5_root() / "data")
    out += ["--data", str(data_yaml), "--weights", paths.resolve_weights(weights) if weights else ""]
    return out + rest


def _with_identity_start(cfg_path):
    """A copy of the model YAML with ``attention_init: identity`` (the user's file is left as it is)."""
    d = yaml.safe_load(Path(cfg_path).read_text(encoding="utf-8"))
    d["attention_init"] = "identity"
    copy = Path(tempfile.mkdtemp(prefix="yolo-attn-cfg-")) / Path(cfg_path).name
    copy.write_text(yaml.safe_dump(d, sort_keys=False), encoding="utf-8")
    return copy


def main(argv):
    import yolov5.train as yolov5_train
    from yolov5.utils.callbacks import Callbacks

    argv = build_argv(argv)
    with patched_argv(argv, "yolo-attn train"):
        opt = yolov5_train.parse_opt()
    finished = {}
    callbacks = Callbacks()
    callbacks.register_action("on_train_end", "yolo_attn_summary",
                              lambda last, best, epoch, results: finished.update(best=best, epoch=epoch, results=results))
    use_noval(yolov5_train, opt, callbacks)
    yolov5_train.intersect_dicts = intersect_dicts_by_structure
    start = time.time()
    yolov5_train.main(opt, callbacks=callbacks)
    if not finished:
        raise SystemExit("training ended without a final validation; see the log above")
    summarize(finished["results"], Path(opt.save_dir), cfg=opt.cfg, data=opt.data, epochs=finished["epoch"] + 1,
              weights=str(finished["best"]), seconds=round(time.time() - start, 1))


def cli():
    raise SystemExit(run_cli(main))


if __name__ == "__main__":
    cli()
