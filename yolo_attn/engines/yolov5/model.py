"""Building yolov5 models quietly, and the attention rows a checkpoint lacks (identity start)."""
import contextlib
import logging
from pathlib import Path

import torch
import yaml

from yolo_attn.engines.yolov5.parser import inner_attention
from yolo_attn.engines.yolov5.patches import save_atomically
from yolo_attn.errors import ModelConfigError
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


def check_readable_as_ascii(cfg_path):
    """yolov5 reads a model YAML file as ASCII, dropping every other character (``Model(path)``): refuse a file
    whose data would change by that (a layer name such as ``ＣＢＡＭ`` would vanish); comments may hold any text."""
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


def build_model(cfg, nc=None, ch=3):
    """A yolov5 DetectionModel from a YAML path or dict, without the per-layer printout."""
    from yolov5.models.yolo import Model

    with quiet():
        return Model(cfg if isinstance(cfg, dict) else str(cfg), ch=ch, nc=nc)


def identity_rows(source_state_dict, cfg_dict):
    """Rows of ``cfg_dict`` holding one-input, channel-keeping attention that ``source_state_dict`` has no weights
    for (attention rows, and C3 rows whose attention inside the bottlenecks is new), except rows that already
    start as the identity: declared so (``LayerInfo.starts_as_identity``, NonLocal) or found computing exactly their
    input when fresh (a Chain of such layers, a user's layer). Wrapped, their blend and their own zero-initialised
    output would both start at 0, and every gradient of either stays 0."""
    target = build_model(dict(cfg_dict, identity_start=[]))
    _, report = structural_transfer(source_state_dict, target.state_dict())
    rows = cfg_dict["backbone"] + cfg_dict["head"]
    specs = {i: find_layer(rows[i][2]) for i in report.new_rows if isinstance(rows[i][2], str)}
    # C3 rows that match a checkpoint's C3 but whose attention inside the bottlenecks is new (c3attn.py)
    specs.update({i: inner_attention(rows[i][3][-1]["attn"], "")[0] for i in report.fresh_inner_rows})
    candidates = sorted(i for i, spec in specs.items() if spec is not None and spec.keeps_channels)
    already = {i for i in candidates if specs[i].starts_as_identity} | _rows_computing_their_input(target, candidates)
    return [i for i in candidates if i not in already]


def _rows_computing_their_input(model, rows, size=64):
    """The rows among ``rows`` whose output equals their input exactly, for a random batch in training mode."""
    same = set()

    def record(i):
        return lambda module, args, out: same.add(i) if torch.equal(out, args[0]) else None

    handles = [model.model[i].register_forward_hook(record(i)) for i in rows]
    try:
        with torch.no_grad():
            model.train()(torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(0)))
    finally:
        for handle in handles:
            handle.remove()
    return same


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


def load_trained(weights, device="cpu"):
    """(model, training options) of a yolov5/yolo-attn checkpoint, loaded restricted: the EMA weights if saved,
    float32, eval mode, not fused."""
    from yolo_attn.checkpoints import load_checkpoint

    ckpt = load_checkpoint(weights)
    model = ckpt["ema"] if ckpt.get("ema") is not None else ckpt["model"]
    opt = ckpt.get("opt")
    opt = vars(opt) if hasattr(opt, "__dict__") and not isinstance(opt, dict) else dict(opt or {})
    return model.float().eval().to(device), opt
