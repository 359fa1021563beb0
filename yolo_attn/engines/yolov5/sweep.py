"""What the sweep (``cli.ablate``) asks of yolov5: how its training reads a run's flags, and the flags its
validation shares with training."""
import argparse

VAL_FLAGS = ("--device", "--workers", "--single-cls")  # training flags validation needs too
OPTIONS_FILE = "opt.yaml"
# the training options that must agree between the runs of one comparison (not "weights": yolov5 rewrites it to
# last.pt when a run is resumed; the sweep's manifest checks it)
COMPARED_OPTIONS = ("data", "imgsz", "epochs", "batch_size", "optimizer", "hyp", "single_cls", "rect",
                    "multi_scale", "image_weights", "cos_lr", "label_smoothing", "freeze", "noval")


def training_settings(train_args, parser):
    """yolo-attn's train options (``parser``) and yolov5's train.py options, as the training command reads them."""
    from yolo_attn.engines.yolov5.options import parse_options

    ours, engine_args = parser.parse_known_args(train_args)
    return {**vars(parse_options("train", engine_args, "yolo-attn ablate")), **vars(ours)}


def validation_args(train_args):
    p = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    for flag in VAL_FLAGS:
        p.add_argument(flag, action="store_true" if flag == "--single-cls" else "store")
    known = vars(p.parse_known_args(train_args)[0])
    out = []
    for flag in VAL_FLAGS:
        value = known[flag[2:].replace("-", "_")]
        out += [] if value in (None, False) else [flag] if value is True else [flag, str(value)]
    return out
