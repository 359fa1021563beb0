"""What the sweep (``cli.ablate``) does differently per engine: the default training flags, how the training command
reads its flags, the flags validation shares with training, and the cost measurement.

The runs themselves go through the same commands for both engines (``yolo_attn.cli.train`` and
``yolo_attn.cli.val``, which choose the engine from the model YAML or checkpoint).
"""
import argparse

from yolo_attn.engines.yolov5.options import parse_options

# flags the sweep sets for every run, as the key they are read into -> what to use instead
OWNED = {"seed": "--seeds N", "name": "--out DIR", "project": "--out DIR", "exist_ok": "--out DIR",
         "resume": "the same command again", "cfg": "--cfgs", "model": "--cfgs",
         "save_matches": "nothing (every run saves it)"}


def owned_flag(token):
    """The OWNED key a command-line token sets (``--seed``, ``--seed=1``, ``seed=1``), else None."""
    if not token.startswith("--") and "=" not in token:
        return None
    key = token.lstrip("-").split("=", 1)[0].replace("-", "_")
    return key if key in OWNED else None


class Yolov5:
    """yolov5 models: yolov5's train.py flags, validated by yolov5's val.py."""

    name = "yolov5"
    # One embedded-dataset run of yolov5s-cbam (among the slowest of the six) measured 30 s + 19.8 s per epoch (train
    # and val subprocesses): 6 epochs -> ~149 s per run, 18 runs ~45 min.
    sweep_epochs = 6
    val_flags = ("--device", "--workers", "--single-cls")  # training flags validation needs too

    def parsed_training_options(self, train_args):
        """What the training command makes of these flags (yolov5's options and train.sh's own)."""
        from yolo_attn.cli import train

        ours, engine = train.parser().parse(train_args)
        return {**vars(parse_options("train", engine, "yolo-attn ablate")), **vars(ours)}

    def validation_args(self, rest):
        p = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
        for flag in self.val_flags:
            p.add_argument(flag, action="store_true" if flag == "--single-cls" else "store")
        known = vars(p.parse_known_args(rest)[0])
        out = []
        for flag in self.val_flags:
            value = known[flag[2:].replace("-", "_")]
            out += [] if value in (None, False) else [flag] if value is True else [flag, str(value)]
        return out

    def measure_cost(self, settings):
        from yolo_attn.benchmarks import ablation as bench

        return bench.measure(settings)


class Ultralytics:
    """ultralytics models: ultralytics settings (key=value or --key value), validated by ultralytics."""

    name = "ultralytics"
    # One embedded-dataset run of yolo11n-cbam at train.sh's defaults (160 px, batch 16, no per-epoch validation)
    # measured about 11 s per epoch on one thread: 10 epochs -> about 2 min per run with validation.
    sweep_epochs = 10
    val_keys = ("device", "workers", "single_cls")

    def parsed_training_options(self, train_args):
        """What the training command makes of these flags (train.sh's own, its embedded defaults without --data,
        then ultralytics' settings)."""
        from yolo_attn import engines
        from yolo_attn.cli import train
        from yolo_attn.engines.ultralytics.commands.common import start
        from yolo_attn.engines.ultralytics.commands.train import EMBEDDED_DEFAULTS

        ours, rest = train.parser(engines.get("ultralytics")).parse_known_args(train_args)
        defaults = EMBEDDED_DEFAULTS if ours.data is None else {}
        return {**defaults, **start(rest), **vars(ours)}

    def validation_args(self, rest):
        from yolo_attn.engines.ultralytics.commands.common import start

        settings = start(rest)
        return [f"{key}={settings[key]}" for key in self.val_keys if key in settings]

    def measure_cost(self, settings):
        from yolo_attn.cli.ultralytics import bench
        from yolo_attn.engines.ultralytics.commands.common import start

        start([])
        return bench.measure(settings)


ENGINES = {e.name: e for e in (Yolov5(), Ultralytics())}
