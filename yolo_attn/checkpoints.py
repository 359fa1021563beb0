"""The one place yolo-attn reads checkpoints.

yolov5 checkpoints are pickles: loading one runs whatever code the file names. Load only files you
made or trust; every load here says which file it reads, and a file that is not a yolov5/yolo-attn
checkpoint is refused with a clear message.
"""
import pickle
import zipfile
from pathlib import Path

import torch

from yolo_attn.errors import UsageError


def load_checkpoint(path):
    """The checkpoint dict of a yolov5/yolo-attn ``.pt`` file (with 'model' or 'ema')."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)  # a pickle: trusted files only
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, ValueError) as e:
        raise UsageError(f"{path} is not a PyTorch checkpoint ({type(e).__name__}: {e})") from None
    except (ModuleNotFoundError, AttributeError) as e:
        raise UsageError(f"{path} needs code that is not importable here ({e}). yolo-attn checkpoints need "
                         f"`import yolo_attn` (and yolov5) before loading.") from None
    if not (isinstance(ckpt, dict) and (ckpt.get("ema") is not None or ckpt.get("model") is not None)):
        raise UsageError(f"{path} is not a yolov5/yolo-attn checkpoint (expected a dict with 'model' or 'ema')")
    return ckpt
