"""What the sweep (``cli.ablate``) asks of ultralytics: how its training reads a run's flags (yolo-attn's options,
the embedded defaults without --data, then ultralytics' settings), and the settings validation shares with
training."""
from yolo_attn.engines.ultralytics.options import EMBEDDED_DEFAULTS, offline_environment, parse_settings

VAL_KEYS = ("device", "workers", "single_cls")
OPTIONS_FILE = "args.yaml"
# the settings of a run's args.yaml that must agree between the runs of one comparison: the hyper-parameters are
# settings of their own (not "model", the variant, nor "resume", which ultralytics rewrites when a run is resumed)
COMPARED_OPTIONS = (
    "data", "imgsz", "epochs", "time", "patience", "batch", "nbs", "optimizer", "single_cls", "classes", "rect",
    "multi_scale", "cos_lr", "close_mosaic", "freeze", "val", "pretrained", "fraction", "amp", "deterministic",
    "dropout", "distill_model", "lr0", "lrf", "momentum", "weight_decay", "warmup_epochs", "warmup_momentum",
    "warmup_bias_lr", "box", "cls", "cls_pw", "dfl", "hsv_h", "hsv_s", "hsv_v", "degrees", "translate", "scale",
    "shear", "perspective", "flipud", "fliplr", "mosaic", "mixup", "cutmix", "copy_paste", "copy_paste_mode",
    "erasing")


def settings(tokens):
    """ultralytics' settings of ``tokens``, the offline environment set first (ultralytics reads it on import)."""
    offline_environment()
    return parse_settings(tokens)


def training_settings(train_args, parser):
    ours, rest = parser.parse_known_args(train_args)
    defaults = EMBEDDED_DEFAULTS if ours.data is None else {}
    return {**defaults, **settings(rest), **vars(ours)}


def validation_args(train_args):
    found = settings(train_args)
    return [f"{key}={found[key]}" for key in VAL_KEYS if key in found]
