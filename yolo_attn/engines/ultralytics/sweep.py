"""What the sweep (``cli.ablate``) asks of ultralytics: how its training reads a run's flags (yolo-attn's options,
the embedded defaults without --data, then ultralytics' settings), and the settings validation shares with
training."""
from yolo_attn.engines.ultralytics.options import EMBEDDED_DEFAULTS, offline_environment, parse_settings

VAL_KEYS = ("device", "workers", "single_cls")


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
