"""A checkpoint save that runs out of disk space: one clear message (which file, how much space, what was kept)
instead of torch's ``RuntimeError: [enforce fail at inline_container.cc] unexpected pos`` traceback.

The save itself is atomic (``paths.save_atomically``): the checkpoint is written to a temporary file next to the
target and renamed over it only once complete, so the message can say the previous copy is untouched.
"""
import errno
import functools
import os
import shutil
from pathlib import Path

from yolo_attn.errors import UsageError

_FULL = (errno.ENOSPC, errno.EDQUOT)


class DiskFull(UsageError):
    """No space left to write a checkpoint; nothing was overwritten."""


def _out_of_space(error):
    """Whether ``error`` or an exception it came from is 'no space left' (torch wraps the OSError in a RuntimeError)."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in _FULL:
            return True
        error = error.__cause__ or error.__context__
    return False


def _nbytes(obj, seen=None):
    """About how many bytes of tensor data ``obj`` (a checkpoint dict, a model, an optimizer state) holds."""
    import torch

    seen = set() if seen is None else seen
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, torch.nn.Module):
        return sum(_nbytes(t, seen) for t in obj.state_dict().values())
    if isinstance(obj, dict):
        return sum(_nbytes(v, seen) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_nbytes(v, seen) for v in obj)
    return 0


def disk_full_message(path, obj):
    path = Path(path)
    free = shutil.disk_usage(path.parent).free
    kept = (f"{path} was not changed (the copy saved before is intact)" if path.exists()
            else f"nothing was written to {path}")
    run = path.parent.parent if path.parent.name == "weights" else None
    after = (f" and continue the run with: yolo-attn train --resume {run}" if run and path.name == "last.pt" else "")
    return (f"no space left on the disk of {path.parent} to save {path.name}: {free / 1e6:.1f} MB free, the checkpoint "
            f"needs about {_nbytes(obj) / 1e6:.1f} MB. {kept}; no temporary file is left behind. Free some space "
            f"(or write runs to another disk with --project DIR){after}.")


def explain_disk_full(save):
    """``save(obj, f, ...)`` that turns 'no space left' while writing to a path into a DiskFull message."""

    @functools.wraps(save)
    def save_or_explain(obj, f, *args, **kwargs):
        try:
            return save(obj, f, *args, **kwargs)
        except (OSError, RuntimeError) as e:
            if not isinstance(f, (str, os.PathLike)) or not _out_of_space(e):
                raise
            raise DiskFull(disk_full_message(f, obj)) from None

    return save_or_explain
