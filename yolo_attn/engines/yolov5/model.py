"""Building yolov5 models quietly, and the attention rows a checkpoint lacks (identity start)."""
import logging
from pathlib import Path

import yaml

from yolo_attn.checkpoints.saved import ModelBuilder
from yolo_attn.engines import common, identity
from yolo_attn.errors import ModelConfigError, UsageError


def quiet(level=logging.WARNING):
    """yolov5's logger at ``level`` (default: warnings only) inside the block: no per-layer printout."""
    from yolov5.utils.general import LOGGER

    return common.quiet(LOGGER, level)


def check_readable_as_ascii(cfg_path):
    """yolov5 reads a model YAML file as ASCII, dropping every other character (``Model(path)``): refuse a file
    whose data would change by that (a layer name such as ``ＣＢＡＭ`` would vanish); comments may hold any text.
    First, a file that is not a model YAML at all (a YAML syntax error, a ``!!python`` tag, no backbone/head) is a
    ModelConfigError naming the line, before yolov5 reads it (its own ``yaml.safe_load`` would be a traceback)."""
    from yolo_attn.model_yaml.edit import load_model_yaml

    load_model_yaml(cfg_path)
    text = Path(cfg_path).read_text(encoding="utf-8", errors="replace")
    ascii_text = text.encode("ascii", "ignore").decode()
    if ascii_text == text:
        return
    try:
        meant = yaml.safe_load(text)
    except yaml.YAMLError:
        return  # the parser names what is wrong with the file
    try:
        same = yaml.safe_load(ascii_text) == meant
    except yaml.YAMLError:
        same = False
    if same:
        return
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if not line.isascii()]
    # the line whose data holds them; a '#' inside a quoted value is not a comment, so else the first such line
    n, line = next(((n, line) for n, line in lines if not line.split("#", 1)[0].isascii()), lines[0])
    data = line.split("#", 1)[0]
    odd = "".join(sorted({c for c in (line if data.isascii() else data) if ord(c) > 127}))
    raise ModelConfigError(f"{cfg_path}, line {n}: {line.strip()!r} holds characters outside ASCII ({odd!r}). "
                           f"yolov5 reads model YAMLs as ASCII and drops them, so it would build another model "
                           f"than the one written: write layer names, numbers and keys in ASCII (e.g. CBAM, not "
                           f"ＣＢＡＭ); comments may stay as they are.")


def build_model(cfg, nc=None, ch=3, level=logging.WARNING, model_class=None):
    """A yolov5 DetectionModel (or ``model_class``, e.g. SegmentationModel) from a YAML path or dict, without the
    per-layer printout (``level``: yolov5's logging while it is built)."""
    from yolov5.models.yolo import Model

    with quiet(level):
        return (model_class or Model)(cfg if isinstance(cfg, dict) else str(cfg), ch=ch, nc=nc)


class Yolov5Builder(ModelBuilder):
    """Rebuilds a yolov5 checkpoint's model from its stored YAML (``yolo_attn.checkpoints.saved``): detection and
    segmentation models, through yolo-attn's parser; training's plain values (class names and count, the
    hyper-parameters, the class weights, the YAML's file name) carried over."""

    bases = frozenset({"models.yolo.BaseModel"})
    model_values = ("names", "nc", "hyp", "class_weights", "yaml_file")

    def build(self, cls, yaml):
        from yolov5.models import yolo

        built = getattr(yolo, cls.__name__, None)  # yolov5's own copy, also for a "models.yolo" name
        if built not in (yolo.DetectionModel, yolo.SegmentationModel):
            raise UsageError(f"yolo-attn rebuilds yolov5 detection and segmentation models, not a {cls.__name__}")
        return build_model(yaml, nc=yaml.get("nc"), ch=yaml.get("ch", 3), level=logging.ERROR, model_class=built)


def identity_rows(source_state_dict, cfg):
    """Rows of ``cfg`` (a model dict or YAML path) holding one-input, channel-keeping attention that
    ``source_state_dict`` has no weights for (attention rows, and C3 rows whose attention inside the bottlenecks is
    new), except rows that already start as the identity (``yolo_attn.engines.identity``: the rule the YAML's
    ``identity_start:`` follows too)."""
    d = cfg if isinstance(cfg, dict) else yaml.safe_load(Path(cfg).read_text(encoding="ascii", errors="ignore"))
    return identity.rows_to_start(source_state_dict, d, lambda x: build_model(x, level=logging.ERROR))


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
    return common.write_checkpoint(ckpt, path)


def load_trained(weights, device="cpu"):
    """(model, training options) of a yolov5/yolo-attn checkpoint, loaded restricted: the EMA weights if saved,
    float32, eval mode, not fused."""
    from yolo_attn.checkpoints import load_checkpoint

    ckpt = load_checkpoint(weights)
    model = ckpt["ema"] if ckpt.get("ema") is not None else ckpt["model"]
    opt = ckpt.get("opt")
    opt = vars(opt) if hasattr(opt, "__dict__") and not isinstance(opt, dict) else dict(opt or {})
    return model.float().eval().to(device), opt
