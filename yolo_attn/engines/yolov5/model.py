"""Building yolov5 models quietly, and the attention rows a checkpoint lacks (identity start)."""
import contextlib
import logging
from pathlib import Path

from yolo_attn.engines.yolov5.parser import inner_attention
from yolo_attn.engines.yolov5.patches import save_atomically
from yolo_attn.registry import find_layer
from yolo_attn.transfer import structural_transfer


@contextlib.contextmanager
def quiet(level=logging.WARNING):
    """yolov5's logger at ``level`` (default: warnings only) inside the block: no per-layer printout."""
    from yolov5.utils.general import LOGGER

    previous = LOGGER.level
    LOGGER.setLevel(level)
    try:
        yield LOGGER
    finally:
        LOGGER.setLevel(previous)


def build_model(cfg, nc=None, ch=3):
    """A yolov5 DetectionModel from a YAML path or dict, without the per-layer printout."""
    from yolov5.models.yolo import Model

    with quiet():
        return Model(cfg if isinstance(cfg, dict) else str(cfg), ch=ch, nc=nc)


def identity_rows(source_state_dict, cfg_dict):
    """Rows of ``cfg_dict`` holding one-input, channel-keeping attention that ``source_state_dict`` has no weights
    for — attention rows, and C3 rows whose attention inside the bottlenecks is new — except layers that already
    start as the identity (wrapping them would leave both zero-initialised and never learning)."""
    target = build_model(dict(cfg_dict, identity_start=[]))
    _, report = structural_transfer(source_state_dict, target.state_dict())
    rows = cfg_dict["backbone"] + cfg_dict["head"]
    specs = {i: find_layer(rows[i][2]) for i in report.new_rows if isinstance(rows[i][2], str)}
    # C3 rows that match a checkpoint's C3 but whose attention inside the bottlenecks is new (c3attn.py)
    specs.update({i: inner_attention(rows[i][3][-1]["attn"], "")[0] for i in report.fresh_inner_rows})
    return sorted(i for i, spec in specs.items()
                  if spec is not None and spec.keeps_channels and not spec.starts_as_identity)


def save_checkpoint(model, path, opt=None, **extra):
    """Write ``model`` (e.g. a ``yolov5.models.yolo.Model`` built from a YAML) as yolov5's training writes its final
    weights: an FP16 copy with ``nc`` attached, no optimizer (what ``strip_optimizer`` leaves), so that yolov5's
    detect/val/export and ``load_checkpoint`` take it. ``opt``: training options to record (e.g. ``{"imgsz": 64}``,
    which export.sh/detect.sh/val.sh use as their default image size). Returns the path."""
    from copy import deepcopy
    from datetime import datetime

    from yolov5 import __version__
    from yolov5.utils.torch_utils import de_parallel

    model = deepcopy(de_parallel(model)).half()
    if not hasattr(model, "nc") and isinstance(getattr(model, "yaml", None), dict):
        model.nc = model.yaml["nc"]  # train.py attaches it; val.py reads it
    ckpt = {"epoch": -1, "best_fitness": None, "model": model, "ema": None,
            "updates": None, "optimizer": None, "opt": dict(opt or {}), "date": datetime.now().isoformat(),
            "yolov5pip_version": __version__, **extra}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_atomically(ckpt, path)
    return path
