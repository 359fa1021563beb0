"""``scripts/val.sh``: yolov5's validation of a checkpoint, ending with mAP50 and mAP50-95.

Usage: val.sh --weights W [--data D] [any yolov5 val flag]
Without --data (or --imgsz) it uses the dataset (and image size) the checkpoint was trained with.
"""
from pathlib import Path

import yolo_attn  # noqa: F401  (registers layers, patches yolov5)
from yolo_attn import paths
from yolo_attn.checkpoints import load_checkpoint
from yolo_attn.cli.common import flag_value, patched_argv, run_cli, summarize, without_flag
from yolo_attn.datasets import checks, shapes


def _training_opt(weights):
    return load_checkpoint(weights).get("opt") or {}


def build_argv(argv):
    weights = flag_value(argv, "--weights")
    if not weights:
        raise paths.UsageError("give a checkpoint with --weights PATH (e.g. runs/train/yolov5s-cbam/weights/best.pt)")
    weights = paths.resolve_weights(weights)
    trained = _training_opt(weights)
    data = flag_value(argv, "--data")
    if data is not None:
        data_path = paths.resolve_data(data)
        data_yaml = checks.prepare(data_path, is_yolov5_builtin=data_path.parent == paths.yolov5_root() / "data")
    elif trained.get("data") and Path(trained["data"]).is_file():
        data_yaml = checks.prepare(trained["data"])
    else:
        data_yaml = shapes.ensure(paths.EMBEDDED_DATASET)
    out = ["--weights", weights, "--data", str(data_yaml), "--project", str(Path.cwd() / "runs" / "val"),
           "--name", Path(weights).parent.parent.name or "exp"]
    if trained.get("imgsz"):
        out += ["--imgsz", str(trained["imgsz"])]
    return out + without_flag(argv, "--weights", "--data")


def main(argv):
    import yolov5.val as yolov5_val
    from yolov5.utils.general import increment_path

    argv = build_argv(argv)
    with patched_argv(argv, "yolo-attn val"):
        opt = yolov5_val.parse_opt()
    save_dir = increment_path(Path(opt.project) / opt.name, exist_ok=opt.exist_ok)
    opt.name, opt.exist_ok = save_dir.name, True
    results, _, _, _ = yolov5_val.run(**vars(opt))
    summarize(results, save_dir, weights=opt.weights, data=opt.data, imgsz=opt.imgsz)


def cli():
    raise SystemExit(run_cli(main))


if __name__ == "__main__":
    cli()
