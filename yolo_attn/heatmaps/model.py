"""The detector to explain: loading a checkpoint, and naming the layers a heatmap is taken at."""
from dataclasses import dataclass

import torch
import torch.nn as nn

from yolo_attn import engines
from yolo_attn.errors import BadParameter, UsageError
from yolo_attn.heatmaps.heads import head_of
from yolo_attn.modules import AttentionModule


def load_detector(weights, device="cpu"):
    """(model, imgsz) from a checkpoint of any engine (yolov5, ultralytics, yolo-attn's): the EMA weights if saved,
    float32, eval mode, not fused.

    ``imgsz`` is the image size the checkpoint was trained with (None if it does not say)."""
    engine = engines.of_checkpoint(weights)  # (not engines.of: a file without a suffix would be a --cfg name)
    if engine is None:  # missing, not a checkpoint, or no engine's model: the loader and check_detector say which
        from yolo_attn.checkpoints import load_checkpoint

        ckpt = load_checkpoint(weights)
        check_detector(ckpt["ema"] if ckpt.get("ema") is not None else ckpt["model"], weights)
        raise UsageError(f"{weights}: no engine recognises this checkpoint")
    model, settings = engine.load_model(weights, device)
    check_detector(model, weights)
    imgsz = settings.get("imgsz")
    if isinstance(imgsz, (list, tuple)):
        imgsz = max(imgsz)
    return model, (int(imgsz) if imgsz else None)


def check_detector(model, source="the model"):
    """The model's head adapter; UsageError for a model no engine owns or a head its engine cannot explain."""
    return head_of(model, source)


def names_of(model):
    names = getattr(model, "names", None)
    nc = model.model[-1].nc
    if isinstance(names, dict):
        return {int(k): str(v) for k, v in names.items()}
    if isinstance(names, (list, tuple)) and len(names) == nc:
        return dict(enumerate(map(str, names)))
    return {i: f"class{i}" for i in range(nc)}


@dataclass
class Layer:
    """A module whose output a heatmap is computed at: its name in ``model.named_modules()`` and its YAML row."""
    name: str
    module: nn.Module
    row: int

    @property
    def label(self):
        kind = type(self.module).__name__
        return f"row {self.row} {kind}" if self.name == f"model.{self.row}" else f"{self.name} ({kind})"


def _row_of(name):
    parts = name.split(".")
    if len(parts) >= 2 and parts[0] == "model" and parts[1].isdigit():
        return int(parts[1])
    return None


def is_attention(module):
    return isinstance(module, AttentionModule)


def attention_modules(model):
    """[(row, name inside the row, module)] of the attention modules in the rows before Detect, outermost only: a
    row that is one (CBAM, a Chain) gives itself; attention inside a block (C3 bottlenecks) is found inside it."""
    found = []
    for i, row in enumerate(model.model[:-1]):
        kept = []
        for name, m in row.named_modules():
            if is_attention(m) and not any(name.startswith(k + ".") or k == "" for k in kept):
                kept.append(name)
                found.append((i, name, m))
    return found


def attention_rows(model):
    return sorted({i for i, _, _ in attention_modules(model)})


def neck_rows(model):
    """The rows Detect reads (the neck outputs P3, P4, P5 in every shipped YAML and in stock yolov5)."""
    f = model.model[-1].f
    return sorted(f if isinstance(f, (list, tuple)) else [f])


def backbone_rows(model):
    """The backbone rows the head reads: the backbone's outputs at P3, P4 and P5 (after the attention layer where
    a variant puts one there). Stock yolov5s: 4, 6, 9; yolov5s-cbam: 5, 8, 12 (two CBAM rows and SPPF)."""
    yaml = getattr(model, "yaml", None)
    if not isinstance(yaml, dict) or not isinstance(yaml.get("backbone"), list):
        return neck_rows(model)
    nb = len(yaml["backbone"])
    read = set()
    for i, m in enumerate(model.model[nb:-1], start=nb):
        for j in (m.f if isinstance(m.f, (list, tuple)) else [m.f]):
            src = i - 1 if j == -1 else j
            if 0 <= src < nb:
                read.add(src)
    return sorted(read) or neck_rows(model)


DEFAULT_LAYERS = "backbone"
KEYWORDS = {"backbone": backbone_rows, "neck": neck_rows, "attention": attention_rows}


def _describe_rows(model):
    return "\n".join(f"  {i:>3}  {type(m).__name__}" for i, m in enumerate(model.model))


def resolve_layers(model, specs=None):
    """Layers from ``specs``: YAML row indices ('5'), module names ('model.20.cv3', or '20.cv3'), layer types
    ('CBAM': all rows of that type), or the keywords 'backbone' (the backbone rows the head reads: the default,
    the same places in every shipped YAML and in stock yolov5), 'neck' (the rows Detect reads) and 'attention'
    (every attention row)."""
    specs = [DEFAULT_LAYERS] if not specs else [str(s) for s in specs]
    modules = dict(model.named_modules())
    rows = model.model
    last = len(rows) - 1
    chosen = []
    for spec in specs:
        if spec.lower() in KEYWORDS:
            found = KEYWORDS[spec.lower()](model)
            if not found:
                raise BadParameter("layer", f"{{name}} {spec}: this model has no {spec} rows; its rows are:\n"
                                            f"{_describe_rows(model)}")
            names = [f"model.{i}" for i in found]
        elif spec.lstrip("-").isdigit():
            i = int(spec)
            if not 0 <= i < last:
                raise BadParameter("layer", f"{{name}} {spec}: rows are numbered 0..{last - 1} (row {last} is Detect, "
                                            f"whose output is not a feature map); the rows are:\n{_describe_rows(model)}")
            names = [f"model.{i}"]
        elif spec in modules or f"model.{spec}" in modules:
            names = [spec if spec in modules else f"model.{spec}"]
        else:
            typed = [i for i, m in enumerate(rows[:-1]) if type(m).__name__.lower() == spec.lower()]
            if not typed:
                raise BadParameter("layer", f"{{name}} {spec!r}: not a row index, a module name (as in "
                                            f"model.named_modules(), e.g. model.20.cv3), a layer type of this model, or "
                                            f"one of {', '.join(KEYWORDS)}. The rows are:\n{_describe_rows(model)}")
            names = [f"model.{i}" for i in typed]
        for name in names:
            row = _row_of(name)
            if row is None or row == last:
                raise BadParameter("layer", f"{{name}} {spec}: {name} is not inside a row before Detect (row {last})")
            if name not in (layer.name for layer in chosen):
                chosen.append(Layer(name, modules[name], row))
    return chosen


def freeze(model):
    """Stop gradients to the parameters (heatmaps need them for activations only); returns the previous flags."""
    flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    return flags


def unfreeze(model, flags):
    for p, flag in zip(model.parameters(), flags):
        p.requires_grad_(flag)


def device_of(model):
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")
