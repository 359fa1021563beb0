"""Building ultralytics models quietly, saving them as training does, and the attention rows a checkpoint lacks."""
import logging
from copy import deepcopy
from datetime import datetime

from yolo_attn.engines import common, identity


def quiet(level=logging.WARNING):
    """ultralytics' logger at ``level`` (default: warnings only) inside the block: no per-layer table."""
    from ultralytics.utils import LOGGER

    return common.quiet(LOGGER, level)


def build_model(cfg, nc=None, ch=3, level=logging.WARNING, model_class=None):
    """An ultralytics DetectionModel (or ``model_class``, another BaseModel subclass) from a YAML path (scale from
    its name or 'scale:') or a model dict (with 'scale' when it has 'scales'), without the layer table (``level``:
    ultralytics' logging while it is built)."""
    from ultralytics.nn.tasks import DetectionModel

    with quiet(level):
        return (model_class or DetectionModel)(deepcopy(cfg) if isinstance(cfg, dict) else str(cfg), ch=ch, nc=nc,
                                               verbose=False)


def model_dict(cfg):
    """The model dict ultralytics builds from ``cfg`` (a YAML path, a stock name, or a dict)."""
    from yolo_attn.engines.ultralytics.yamls import load_cfg

    return deepcopy(cfg) if isinstance(cfg, dict) else load_cfg(cfg)


def identity_rows(source_state_dict, cfg):
    """Rows of ``cfg`` holding one-input, channel-keeping attention (a row, or inside a block) that
    ``source_state_dict`` has no weights for, except layers that already start as the identity
    (``yolo_attn.engines.identity``: the rule the YAML's ``identity_start:`` follows too)."""
    return identity.rows_to_start(source_state_dict, model_dict(cfg), lambda d: build_model(d, level=logging.ERROR))


def save_checkpoint(model, path, train_args=None, **extra):
    """Write ``model`` as ultralytics' training leaves best.pt (``strip_optimizer``: an FP16 copy in 'model', no
    optimizer, ``train_args``, e.g. ``{"imgsz": 64}``), so that ``YOLO(path)``, val/predict/export and
    ``load_checkpoint`` take it. ``extra``: more checkpoint keys."""
    from ultralytics import __version__
    from ultralytics.cfg import DEFAULT_CFG_DICT

    model = deepcopy(model).half()
    for p in model.parameters():
        p.requires_grad = False
    ckpt = {"date": datetime.now().astimezone().isoformat(), "version": __version__, "epoch": -1,
            "best_fitness": None, "model": model, "ema": None, "updates": None, "optimizer": None,
            "train_args": {**DEFAULT_CFG_DICT, **(train_args or {})}, **extra}
    return common.write_checkpoint(ckpt, path)


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
