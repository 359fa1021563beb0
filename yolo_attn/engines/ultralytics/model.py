"""Building ultralytics models quietly, saving them as training does, and the attention rows a checkpoint lacks."""
import contextlib
import logging
from copy import deepcopy
from datetime import datetime
from pathlib import Path

from yolo_attn.registry import find_layer
from yolo_attn.transfer import structural_transfer


@contextlib.contextmanager
def quiet(level=logging.WARNING):
    """ultralytics' logger at ``level`` (default: warnings only) inside the block: no per-layer table."""
    from ultralytics.utils import LOGGER

    previous = LOGGER.level
    LOGGER.setLevel(level)
    try:
        yield LOGGER
    finally:
        LOGGER.setLevel(previous)


def build_model(cfg, nc=None, ch=3):
    """An ultralytics DetectionModel from a YAML path (scale from its name or 'scale:') or a model dict (with
    'scale' when it has 'scales'), without the layer table."""
    from ultralytics.nn.tasks import DetectionModel

    with quiet():
        return DetectionModel(deepcopy(cfg) if isinstance(cfg, dict) else str(cfg), ch=ch, nc=nc, verbose=False)


def model_dict(cfg):
    """The model dict ultralytics builds from ``cfg`` (a YAML path, a stock name, or a dict)."""
    from yolo_attn.engines.ultralytics.yamls import load_cfg

    return deepcopy(cfg) if isinstance(cfg, dict) else load_cfg(cfg)


def identity_rows(source_state_dict, cfg):
    """Rows of ``cfg`` holding one-input, channel-keeping attention that ``source_state_dict`` has no weights for,
    except layers that already start as the identity."""
    d = model_dict(cfg)
    target = build_model(dict(d, identity_start=[]))
    _, report = structural_transfer(source_state_dict, target.state_dict())
    rows = d["backbone"] + d["head"]
    specs = {i: find_layer(rows[i][2]) for i in report.new_rows if isinstance(rows[i][2], str)}
    return [i for i, spec in specs.items() if spec is not None and spec.keeps_channels and not spec.starts_as_identity]


def save_checkpoint(model, path, train_args=None, **extra):
    """Write ``model`` as ultralytics' training leaves best.pt (``strip_optimizer``: an FP16 copy in 'model', no
    optimizer, ``train_args``, e.g. ``{"imgsz": 64}``), so that ``YOLO(path)``, val/predict/export and
    ``load_checkpoint`` take it. ``extra``: more checkpoint keys."""
    from ultralytics import __version__
    from ultralytics.cfg import DEFAULT_CFG_DICT

    from yolo_attn.engines.yolov5.patches import save_atomically

    model = deepcopy(model).half()
    for p in model.parameters():
        p.requires_grad = False
    ckpt = {"date": datetime.now().astimezone().isoformat(), "version": __version__, "epoch": -1,
            "best_fitness": None, "model": model, "ema": None, "updates": None, "optimizer": None,
            "train_args": {**DEFAULT_CFG_DICT, **(train_args or {})}, **extra}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_atomically(ckpt, path)
    return path


def load_model(weights, fuse=False, device="cpu"):
    """The model of an ultralytics checkpoint (loaded restricted), float32, eval mode, as ultralytics' own
    ``load_checkpoint`` prepares it (the EMA when saved; ``fuse``: Conv+BN folded as for prediction and export)."""
    from ultralytics.nn.tasks import load_checkpoint

    with quiet():
        model, _ = load_checkpoint(str(weights), device=device, fuse=fuse)
    return model.float().eval()


def load_trained(weights, device="cpu"):
    """(model, training settings) of an ultralytics checkpoint, loaded restricted: the EMA weights if saved,
    float32, eval mode, not fused."""
    from yolo_attn.checkpoints import load_checkpoint

    ckpt = load_checkpoint(weights)
    model = ckpt["ema"] if ckpt.get("ema") is not None else ckpt["model"]
    args = ckpt.get("train_args")
    return model.float().eval().to(device), dict(args) if isinstance(args, dict) else {}
