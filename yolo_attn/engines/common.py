"""Helpers both engine adapters use the same way: quiet logging, the offline font, writing a checkpoint, structural
transfer in place of an engine's ``intersect_dicts``. Engine-neutral: each engine passes its own logger or keys."""
import contextlib
import logging
from pathlib import Path

from yolo_attn.paths import save_atomically
from yolo_attn.transfer import structural_transfer


@contextlib.contextmanager
def quiet(logger, level=logging.WARNING):
    """``logger`` at ``level`` (default: warnings only) inside the block (no per-layer printout); yields it."""
    previous = logger.level
    logger.setLevel(level)
    try:
        yield logger
    finally:
        logger.setLevel(previous)


def fallback_font_path():
    """A TrueType font that is already on disk: matplotlib's DejaVuSans (matplotlib is a dependency of both
    engines)."""
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"


def write_checkpoint(ckpt, path):
    """Save the checkpoint dict ``ckpt`` at ``path`` atomically, its folder made if needed; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_atomically(ckpt, path)
    return path


def transfer_by_structure(logger, source_state_dict, model_state_dict, exclude=()):
    """An engine's ``intersect_dicts(checkpoint_sd, model_sd, exclude)`` matched by structure
    (``yolo_attn.transfer``): the checkpoint's tensors under the model's names; the report logged on ``logger``."""
    mapped, report = structural_transfer(source_state_dict, model_state_dict, exclude)
    logger.info(f"yolo-attn: {report.summary()}")
    return mapped
