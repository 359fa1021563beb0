"""A third engine over plain torch, for tests: the proof that an engine is a folder (yolo_attn/engines/README.md).

Its model YAMLs say ``fake_engine: true``; its models (``FakeDetector``) are rows as in the built-in engines (a
stem, an optional registered attention layer, a one-level anchor-free head); it trains and validates on a small
synthetic set of images (one square each) that it makes itself; its checkpoints hold tensors and plain values only.
Nothing in ``yolo_attn`` knows it: ``register()`` makes the commands, heatmaps and the sweep use it.
"""
from __future__ import annotations

import argparse
import contextlib
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
import torch.nn as nn
import yaml
from torchvision.ops import batched_nms, box_iou

from yolo_attn import create_attn, engines
from yolo_attn.engines.base import Engine
from yolo_attn.engines.heatmap_head import HeatmapHead
from yolo_attn.errors import UsageError
from yolo_attn.matches import AP_LINE_TO_END, IOU_THRESHOLDS, ImageMatches, MatchRecord
from yolo_attn.paths import save_atomically, write_atomically
from yolo_attn.runs import run_folder, write_summary

STRIDE, SIZE, NC = 4, 64, 2
OPTIONS_FILE = "fake_args.yaml"


# --- the model --------------------------------------------------------------------------------------------------
class FakeHead(nn.Module):
    """Per cell: 4 box logits (centre offsets, log size) and ``nc`` class logits. Eval: (decoded (b, A, 4 + nc): xywh
    in input pixels and class probabilities, raw (b, A, 4 + nc)); training: raw."""

    def __init__(self, c: int, nc: int):
        super().__init__()
        self.nc = nc
        self.conv = nn.Conv2d(c, 4 + nc, 1)

    def forward(self, xs):
        p = self.conv(xs[0])
        b, no, h, w = p.shape
        raw = p.flatten(2).transpose(1, 2)
        if self.training:
            return raw
        gy, gx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        grid = torch.stack([gx, gy], -1).reshape(1, -1, 2).to(raw)
        centre = (grid + 0.5 + raw[..., :2].tanh()) * STRIDE
        size = raw[..., 2:4].clamp(-4, 4).exp() * STRIDE * 4
        return torch.cat([centre, size, raw[..., 4:].sigmoid()], -1), raw


class FakeDetector(nn.Module):
    def __init__(self, d: dict, nc: int = NC):
        super().__init__()
        c = int(d.get("width", 16))
        rows = [nn.Sequential(nn.Conv2d(3, c, 3, 2, 1), nn.SiLU(), nn.Conv2d(c, c, 3, 2, 1), nn.SiLU())]
        if d.get("attention"):
            rows.append(create_attn(d["attention"], c))
        rows.append(FakeHead(c, nc))
        for i, row in enumerate(rows):
            row.i, row.f = i, ([i - 1] if i == len(rows) - 1 else -1)
        self.model = nn.Sequential(*rows)
        self.yaml, self.nc = dict(d), nc
        self.names = {k: f"shape{k}" for k in range(nc)}
        self.register_buffer("stride", torch.tensor([float(STRIDE)]), persistent=False)

    def forward(self, x):
        y = []
        for m in self.model:
            if m.f != -1:
                x = [y[j] for j in m.f]
            x = m(x)
            y.append(x)
        return x


def synthetic_images(n: int, seed: int):
    """(images (n, 3, SIZE, SIZE) in [0, 1], xyxy boxes (n, 4), classes (n,)): one square per image, class 0 red,
    class 1 green, on a grey background."""
    g = torch.Generator().manual_seed(seed)
    images = torch.full((n, 3, SIZE, SIZE), 0.5)
    boxes, classes = torch.zeros(n, 4), torch.arange(n) % NC
    for k in range(n):
        side = int(torch.randint(12, 28, (1,), generator=g))
        x0, y0 = (int(v) for v in torch.randint(0, SIZE - side, (2,), generator=g))
        images[k, :, y0:y0 + side, x0:x0 + side] = 0.1
        images[k, int(classes[k]), y0:y0 + side, x0:x0 + side] = 0.9
        boxes[k] = torch.tensor([x0, y0, x0 + side, y0 + side], dtype=torch.float32)
    return images, boxes, classes


# --- heatmaps ---------------------------------------------------------------------------------------------------
class FakeHeatmapHead(HeatmapHead):
    targets = ("class", "box", "all")

    def split(self, out):
        decoded, raw = out
        return decoded, [raw]

    def nms(self, decoded, conf, iou, classes, max_det):
        result = []
        for zi in decoded:
            scores, cls = zi[:, 4:].max(1)
            keep = scores > conf
            if classes is not None:
                keep &= torch.isin(cls, torch.as_tensor(classes))
            rows = keep.nonzero()[:, 0]
            xy, wh = zi[rows, :2], zi[rows, 2:4]
            boxes = torch.cat([xy - wh / 2, xy + wh / 2], 1)
            k = batched_nms(boxes, scores[rows], cls[rows], iou)[:max_det]
            result.append(torch.cat([boxes[k], scores[rows][k, None], cls[rows][k, None].to(zi),
                                     rows[k, None].to(zi)], 1))
        return result

    def target_value(self, logits, cls, kind):
        if kind not in self.targets:
            raise ValueError(f"unknown target {kind!r}")
        logits = logits if logits.dim() == 2 else logits[None]
        cls = torch.as_tensor(cls, device=logits.device).long().reshape(-1)
        parts = []
        if kind in ("class", "all"):
            parts.append(logits.gather(1, (4 + cls)[:, None])[:, 0].sigmoid())
        if kind in ("box", "all"):
            parts.append(logits[:, :4].tanh().sum(1))
        return sum(parts)


# --- the engine -------------------------------------------------------------------------------------------------
class FakeEngine(Engine):
    name = "fake"
    sweep_epochs = 2
    options_file = OPTIONS_FILE
    compared_options = ("epochs", "imgsz")
    bench_baseline = ""

    def owns_yaml(self, d: dict) -> bool:
        return d.get("fake_engine") is True

    def owns_checkpoint(self, path: Path, class_names: set[str]) -> bool:
        try:
            return torch.load(path, map_location="cpu", weights_only=True).get("fake_engine") == 1
        except Exception:  # noqa: BLE001  (another engine's checkpoint: not ours)
            return False

    def owns_model(self, model: nn.Module) -> bool:
        return isinstance(model, FakeDetector)

    def find_cfg(self, name: str) -> Optional[Path]:
        path = Path(name).expanduser()
        return path.resolve() if path.is_file() else None

    def build_model(self, cfg: Any, nc: Optional[int] = None, ch: int = 3) -> nn.Module:
        d = cfg if isinstance(cfg, dict) else yaml.safe_load(Path(cfg).read_text(encoding="utf-8"))
        return FakeDetector(d, nc or NC)

    def load_model(self, weights: Any, device: str = "cpu"):
        ckpt = torch.load(weights, map_location="cpu", weights_only=True)
        model = FakeDetector(ckpt["yaml"], ckpt["nc"])
        model.load_state_dict(ckpt["state_dict"])
        return model.float().eval().to(device), dict(ckpt["train_args"])

    def save_checkpoint(self, model, path, train_settings=None, **extra):
        ckpt = {"fake_engine": 1, "yaml": model.yaml, "nc": model.nc, "state_dict": model.state_dict(),
                "train_args": dict(train_settings or {}), **extra}
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        save_atomically(ckpt, Path(path))
        return Path(path)

    def heatmap_head(self, model, source="the model"):
        return FakeHeatmapHead()

    # the commands
    def add_options(self, command, parser):
        parser.prog += " (fake)"

    def run(self, command, opt, rest, argv):
        if command not in ("train", "val"):
            raise self._lacks(f"the {command} command")
        p = argparse.ArgumentParser(prog=f"yolo-attn {command} (fake)", allow_abbrev=False)
        for flag, kind, default in (("--epochs", int, 3), ("--seed", int, 0), ("--imgsz", int, SIZE),
                                    ("--project", str, f"runs/{command}"), ("--name", str, "exp")):
            p.add_argument(flag, type=kind, default=default)
        p.add_argument("--exist-ok", action="store_true")
        settings, unknown = p.parse_known_args(rest)
        if unknown:
            raise UsageError(f"the fake engine takes no {' '.join(unknown)}")
        folder = run_folder(Path(settings.project), settings.name, settings.exist_ok)
        folder.mkdir(parents=True, exist_ok=True)
        return (self._train if command == "train" else self._val)(opt, settings, folder)

    def _train(self, opt, settings, folder):
        torch.manual_seed(settings.seed)
        model = self.build_model(self.resolve_cfg(opt.cfg)).train()
        images, boxes, classes = synthetic_images(16, seed=1)
        optimiser = torch.optim.Adam(model.parameters(), 1e-2)
        for _ in range(settings.epochs * 4):
            raw = model(images)
            target = torch.zeros_like(raw[..., 4:])
            centre = ((boxes[:, :2] + boxes[:, 2:]) / 2 / STRIDE).long()
            cell = centre[:, 1] * (SIZE // STRIDE) + centre[:, 0]
            target[torch.arange(len(cell)), cell, classes] = 1
            loss = nn.functional.binary_cross_entropy_with_logits(raw[..., 4:], target)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        train_args = {"epochs": settings.epochs, "imgsz": settings.imgsz, "seed": settings.seed, "data": opt.data}
        write_atomically(folder / OPTIONS_FILE, yaml.safe_dump(train_args))
        for name in ("last.pt", "best.pt"):
            self.save_checkpoint(model.eval(), folder / "weights" / name, train_args)
        record = validate(model)
        write_summary(summaries(record), folder, cfg=str(opt.cfg), weights=str(folder / "weights" / "best.pt"),
                      epochs=settings.epochs)

    def _val(self, opt, settings, folder):
        model, train_args = self.load_model(opt.weights)
        record = validate(model)
        if opt.save_matches:
            record.save(opt.save_matches)
        write_summary(summaries(record), folder, weights=str(opt.weights), data=opt.data or train_args.get("data"),
                      imgsz=settings.imgsz)

    # the sweep
    def training_settings(self, train_args, parser):
        ours, rest = parser.parse_known_args(train_args)
        return {**vars(ours), "rest": rest}

    def match_collector(self):
        raise self._lacks("match collectors (its val writes the record itself)")

    def bench_cfgs(self, cfgs, baseline):
        return [Path(c) for c in dict.fromkeys([baseline, *cfgs])]

    def fuse(self, model):
        return model

    @contextlib.contextmanager
    def usage_errors(self):
        yield


def validate(model: FakeDetector) -> MatchRecord:
    """The per-image matches of ``model`` on the synthetic validation images (greedy by confidence, one target
    each, as the engines' validations match)."""
    images, boxes, classes = synthetic_images(12, seed=2)
    with torch.no_grad():
        detections = FakeHeatmapHead().nms(model.eval()(images)[0], 0.001, 0.6, None, 30)
    found = []
    for k, det in enumerate(detections):
        correct = np.zeros((len(det), len(IOU_THRESHOLDS)), bool)
        if len(det):
            iou = box_iou(det[:, :4], boxes[k:k + 1])[:, 0].numpy()
            first = int(np.argmax((det[:, 5] == classes[k]).numpy() * (iou >= 0.5)))
            if det[first, 5] == classes[k]:
                correct[first] = iou[first] >= IOU_THRESHOLDS
        found.append(ImageMatches(f"synthetic/val/{k}.png", correct, det[:, 4].numpy().astype(np.float32),
                                  det[:, 5].numpy().astype(int), classes[k:k + 1].numpy()))
    return MatchRecord.from_images(found, ap_rule=AP_LINE_TO_END)


def summaries(record: MatchRecord) -> list[float]:
    from yolo_attn.ablation.bootstrap import map_scores  # a test's engine may; a real one computes its own mAP

    scores = map_scores(record)
    return [0.0, 0.0, scores.map50, scores.map50_95]


@contextlib.contextmanager
def registered():
    """The fake engine registered inside the block."""
    engine = engines.register(FakeEngine())
    try:
        yield engine
    finally:
        engines.unregister(engine.name)
