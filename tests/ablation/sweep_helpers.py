"""A stand-in for the training and validation commands of a sweep, and detectors of known quality as match records.

``FakeCommands`` is a launcher (``launcher(module, argv, log) -> exit code``): it writes what the real commands
write (weights/last.pt, opt.yaml, summary.json; val/summary.json and val/matches.npz) and records every call.
"""
import json
import zlib
from pathlib import Path

import numpy as np
import yaml

from yolo_attn.ablation.bootstrap import map_scores
from yolo_attn.matches import ImageMatches, MatchRecord
from yolo_attn.ablation.sweep import TRAIN


def detector_record(seed, hit_rate, n_images=60, n_classes=3, prefix="images/val/im"):
    """A detector's record on a fixed validation set (the targets depend on nothing but the image): each target is
    found with probability ``hit_rate`` by a prediction whose confidence and IoU grow with the detector's quality;
    plus two false positives per image."""
    images = []
    rng = np.random.default_rng(seed)
    for i in range(n_images):
        tcls = np.random.default_rng(i).integers(0, n_classes, 1 + i % 4)
        found = rng.random(tcls.size) < hit_rate
        iou = np.clip(rng.normal(0.55 + 0.4 * hit_rate, 0.1, found.sum()), 0, 1)
        correct = np.concatenate([iou[:, None] >= np.linspace(0.5, 0.95, 10)[None], np.zeros((2, 10), bool)])
        conf = np.concatenate([rng.uniform(0.3, 1.0, found.sum()), rng.uniform(0.0, 0.6, 2)]).astype(np.float32)
        pcls = np.concatenate([tcls[found], rng.integers(0, n_classes, 2)])
        images.append(ImageMatches(f"{prefix}{i}.jpg", correct, conf, pcls, tcls))
    return MatchRecord.from_images(images)


def _flag(argv, name, default=None):
    """``--name value``, or ultralytics' ``name=value``."""
    argv = list(map(str, argv))
    if name in argv:
        return argv[argv.index(name) + 1]
    setting = name.lstrip("-") + "="
    return next((a[len(setting):] for a in argv if a.startswith(setting)), default)


class FakeCommands:
    """Trains and validates instantly. ``quality``: {cfg stem: hit rate}; ``fail``: {(run name, module): exit code};
    ``interrupt``: a (run name, module) pair that writes last.pt and then raises KeyboardInterrupt, as Ctrl-C would
    in the middle of training; ``imgsz``/``data``: what the runs record (per run name, else the default);
    ``options_file``: yolov5's opt.yaml or ultralytics' args.yaml."""

    def __init__(self, quality=None, fail=None, interrupt=None, imgsz=None, data="data.yaml", coco=False,
                 options_file="opt.yaml"):
        self.quality, self.fail, self.interrupt = quality or {}, fail or {}, interrupt
        self.options_file = options_file
        self.imgsz, self.data, self.coco = imgsz or {}, data, coco
        self.calls = []
        self.envs = {}  # (run name, module) -> the env the sweep gave that command

    def __call__(self, module, argv, log, env=None):
        argv = list(map(str, argv))
        folder = self._folder(module, argv)
        self.calls.append((folder.name, module, argv))
        self.envs[(folder.name, module)] = dict(env or {})
        Path(log).parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a") as f:
            f.write(f"{module} {argv}\n")
        if (folder.name, module) in self.fail:
            return self.fail[(folder.name, module)]
        if module == TRAIN:
            return self._train(folder, argv)
        return self._validate(folder, argv)

    @staticmethod
    def _folder(module, argv):
        if module == TRAIN and "--resume" in argv:
            return Path(_flag(argv, "--resume")).parent.parent
        if module == TRAIN:
            return Path(_flag(argv, "--project")) / _flag(argv, "--name")
        return Path(_flag(argv, "--project"))

    def _train(self, folder, argv):
        (folder / "weights").mkdir(parents=True, exist_ok=True)
        if "--resume" not in argv:
            imgsz = self.imgsz.get(folder.name, int(_flag(argv, "--imgsz", 160)))
            opt = {"cfg": _flag(argv, "--cfg"), "data": _flag(argv, "--data", self.data), "imgsz": imgsz,
                   "epochs": int(_flag(argv, "--epochs", 6)), "seed": int(_flag(argv, "--seed")),
                   "hyp": {"lr0": 0.002}}
            (folder / self.options_file).write_text(yaml.safe_dump(opt))
        (folder / "weights" / "last.pt").write_bytes(b"not a real checkpoint")
        if self.interrupt == (folder.name, TRAIN):
            self.interrupt = None
            raise KeyboardInterrupt
        (folder / "weights" / "best.pt").write_bytes(b"not a real checkpoint")
        summary = {"weights": str(folder / "weights" / "best.pt"), "seconds": 100.0}
        (folder / "summary.json").write_text(json.dumps(summary))
        return 0

    def _validate(self, folder, argv):
        opt = yaml.safe_load((folder / self.options_file).read_text())
        stem, seed = folder.name.rsplit("-seed", 1)
        record = detector_record(zlib.crc32(folder.name.encode()), self.quality.get(stem, 0.6))
        matches = Path(_flag(argv, "--save-matches"))
        matches.parent.mkdir(parents=True, exist_ok=True)
        record.save(matches)
        scores = map_scores(record)
        summary = {"mAP50": scores.map50, "mAP50-95": scores.map50_95, "data": _flag(argv, "--data"),
                   "imgsz": opt["imgsz"], "weights": _flag(argv, "--weights"), "matches": str(matches)}
        if self.coco:
            summary["coco_stats"] = {"AP": scores.map50_95 * 0.9, "APs": 0.1, "APm": 0.2 + int(seed) / 100,
                                     "APl": 0.3}
        (folder / "val" / "summary.json").write_text(json.dumps(summary))
        return 0

    def launched(self, module=None):
        return [(name, m) for name, m, _ in self.calls if module is None or m == module]

    def argvs(self, module):
        return [argv for _, m, argv in self.calls if m == module]
