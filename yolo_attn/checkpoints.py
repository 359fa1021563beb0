"""The one place yolo-attn reads checkpoints (and, once ``import yolo_attn`` ran, yolov5 reads them too).

A yolov5 ``.pt`` file is a pickle: a plain ``torch.load(..., weights_only=False)`` runs whatever code the
file names. So a checkpoint is loaded here in two steps:

1. its pickle is scanned (without running it) for the Python objects it names;
2. if every one is a model class of yolov5, yolo-attn (or a layer registered with it) or ``torch.nn``, or one
   of a few harmless data types (numpy arrays/scalars, paths), it is loaded with torch's restricted
   unpickler (``weights_only=True``) allowing exactly those; anything else (``os.system``, an unknown class)
   is refused with a message naming it, before any of the file runs.

``YOLO_ATTN_TRUST_CHECKPOINTS=1`` in the environment (or ``trust=True``) skips the restriction for files you
made or trust, e.g. a checkpoint whose model uses classes from your own module. Every load logs the file it
reads (absolute path, size, sha256 prefix) and what the checkpoint says about itself (date, yolov5 version,
epoch, model YAML), so it is always visible which file a run came from.

A file that is not a yolov5/yolo-attn checkpoint (not a torch.save archive, truncated, a bare state_dict,
a TorchScript file) is refused with a ``UsageError`` that says what it is; the command-line tools print it
without a traceback.
"""
import hashlib
import importlib
import importlib.util
import inspect
import io
import logging
import os
import pickle
import zipfile
from pathlib import Path

import torch
from torch import nn

from yolo_attn.errors import UsageError

TRUST_ENV = "YOLO_ATTN_TRUST_CHECKPOINTS"

# Modules whose nn.Module classes a checkpoint may name. "models." is yolov5's own folder on sys.path (older
# yolov5 checkpoints, e.g. the official release weights, name "models.yolo.DetectionModel"); it is accepted only
# when that is where it resolves. "ultralytics.nn.": the ultralytics engine's layers and models.
_MODEL_MODULE_PREFIXES = ("torch.nn.modules.", "yolov5.models.", "yolo_attn.", "models.", "ultralytics.nn.modules.",
                          "ultralytics.nn.tasks")

# Non-module objects yolov5 checkpoints contain: best_fitness is a numpy array; opt may hold paths.
_DATA_GLOBALS = {
    "numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct", "numpy.ndarray", "numpy.dtype",
    "numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar",
    "pathlib.PosixPath", "pathlib.WindowsPath", "pathlib.PurePosixPath", "pathlib.PureWindowsPath", "pathlib.Path",
    "argparse.Namespace",
    "ultralytics.utils.IterableSimpleNamespace",  # an unstripped ultralytics last.pt: the EMA's training args
}


def _logger():
    return logging.getLogger("yolov5")  # yolov5's own logger: its commands print it, tests can silence it


def trusted_by_environment():
    return os.environ.get(TRUST_ENV, "").strip().lower() in ("1", "true", "yes")


def _yolov5_dir():
    spec = importlib.util.find_spec("yolov5")
    return Path(spec.origin).parent.resolve()


def _resolve(name):
    """The object a pickle GLOBAL ``module.qualname`` names, importing only modules we trust; else None."""
    module_name, _, attr = name.rpartition(".")
    if not module_name:
        return None
    if module_name.startswith("numpy") or module_name in ("pathlib", "argparse", "ultralytics.utils"):
        if name not in _DATA_GLOBALS and not module_name == "numpy.dtypes":
            return None
    elif not module_name.startswith(_MODEL_MODULE_PREFIXES):
        from yolo_attn.registry import registered_layers

        registered = {f"{s.cls.__module__}.{s.cls.__qualname__}": s.cls for s in registered_layers()}
        return registered.get(name)  # a layer registered in this process (its module is already imported)
    if module_name.startswith("models."):
        spec = importlib.util.find_spec("models")  # the top-level package only: finding it runs nothing
        if spec is None or spec.origin is None or _yolov5_dir() not in Path(spec.origin).resolve().parents:
            return None
    try:
        obj = importlib.import_module(module_name)
    except ImportError:
        return None
    for part in attr.split("."):
        obj = getattr(obj, part, None)
    if name in _DATA_GLOBALS:
        return obj
    if module_name == "numpy.dtypes":
        import numpy as np

        return obj if isinstance(obj, type) and issubclass(obj, np.dtype) else None
    return obj if inspect.isclass(obj) and issubclass(obj, nn.Module) else None


def _missing_module_hint(names):
    """For GLOBALs whose module cannot be imported here: what to import (yolo_attn, yolov5, or the user's module)."""
    hints = []
    for name in names:
        top = name.split(".")[0]
        if importlib.util.find_spec(top) is None:
            hints.append(f"{name} (module {top!r} is not installed here)")
    return hints


def _describe(path):
    size = path.stat().st_size
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return f"{path} ({size / 1e6:.1f} MB, sha256 {h.hexdigest()[:12]})"


def _provenance(ckpt):
    """What the checkpoint says about itself: when and by what it was saved, its epoch and model YAML."""
    if not isinstance(ckpt, dict):
        return ""
    parts = []
    if ckpt.get("date"):
        parts.append(f"saved {str(ckpt['date'])[:19]}")
    git = ckpt.get("git") if isinstance(ckpt.get("git"), dict) else {}
    version = ckpt.get("yolov5pip_version") or git.get("commit")
    if "train_args" in ckpt:  # ultralytics: its git field records the repository it ran in, not its version
        parts.append(f"ultralytics {ckpt.get('version')}")
    elif version:
        parts.append(f"yolov5 {version}")
    if isinstance(ckpt.get("epoch"), int):
        parts.append("final (optimizer stripped)" if ckpt["epoch"] == -1 else f"epoch {ckpt['epoch']}")
    opt = next((o for o in (ckpt.get("opt"), ckpt.get("train_args")) if isinstance(o, dict)), {})
    model = ckpt.get("ema") or ckpt.get("model")
    yaml_file = getattr(model, "yaml_file", None) or (Path(opt["cfg"]).name if opt.get("cfg") else None)
    if yaml_file:
        parts.append(f"model {yaml_file}")
    if opt.get("data"):
        parts.append(f"data {opt['data']}")
    return "; ".join(parts)


def _not_a_checkpoint(path, what):
    return UsageError(f"{path} is not a yolov5/yolo-attn checkpoint: {what}. Give the .pt file written by training "
                      f"(runs/train/<name>/weights/best.pt or last.pt).")


def _not_an_archive(path, error):
    if "torchscript" in str(error).lower():
        return "it is a TorchScript model (load it with torch.jit.load; yolov5's detect.py/val.py take it as --weights)"
    with open(path, "rb") if not isinstance(path, io.BytesIO) else io.BytesIO(path.getvalue()) as f:
        head = f.read(2)
    if head[:1] == b"\x80":  # pickle protocol 2+: a plain pickle, or torch.save's format before torch 1.6
        return ("it is a plain pickle or a pre-1.6 torch.save file, not the zip archive torch.save writes (and yolov5 "
                "checkpoints are); if you trust it, load it with torch and save it again with a current torch")
    return "it is not a PyTorch checkpoint (a torch.save archive) at all"


def _source(path):
    """A fresh handle on the file's bytes: the path itself, or a rewound copy of an in-memory file."""
    return io.BytesIO(path.getvalue()) if isinstance(path, io.BytesIO) else str(path)


def _restricted_globals(path):
    """The objects the pickle names, all vetted; raises UsageError naming any that is not allowed."""
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(_source(path))
    except ValueError as e:  # not a zip archive, or a TorchScript archive
        raise _not_a_checkpoint(path, _not_an_archive(path, e)) from None
    except (RuntimeError, zipfile.BadZipFile, EOFError, KeyError, OSError) as e:
        raise _not_a_checkpoint(path, f"the archive cannot be read ({str(e).splitlines()[0][:160]}); "
                                      f"the file may be truncated") from None
    allowed, refused = [], []
    for name in sorted(names):
        obj = _resolve(name)
        (allowed if obj is not None else refused).append((name, obj))
    if refused:
        names = [n for n, _ in refused]
        missing = _missing_module_hint(names)
        system = ("builtins.", "posix.", "nt.", "os.", "subprocess.")
        modules = sorted({n.rpartition(".")[0] for n in names if not n.startswith(system)})
        hint = (f"\n  not importable here: {'; '.join(missing)}. A yolo-attn checkpoint needs yolo_attn and yolov5 "
                f"installed." if missing else "")
        if modules:
            hint += (f"\n  If {', '.join(modules)} {'is' if len(modules) == 1 else 'are'} your own layer module: "
                     f"run `import {modules[0]}` and register its layers with yolo_attn.register(...) before loading.")
        raise UsageError(
            f"refusing to load {path}: its pickle names {', '.join(names)}, which "
            f"{'is' if len(names) == 1 else 'are'} not a yolov5/yolo-attn/torch.nn model class. Checkpoints are "
            f"pickles and loading one can run code.{hint}\n  If you made this file or trust its source, set "
            f"{TRUST_ENV}=1 to load it without this check.")
    safe = [obj for _, obj in allowed]
    numpy_data = ("numpy.dtype", "numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar")
    if any(name in numpy_data for name, _ in allowed):
        import numpy as np

        # np.dtype(...) makes instances of these classes (e.g. Float64DType), which the scan cannot see
        safe += [t for t in vars(getattr(np, "dtypes", np)).values() if isinstance(t, type) and issubclass(t, np.dtype)]
    return safe


def _unpickle(path, map_location, trust):
    if trust:
        _logger().warning(f"yolo-attn: {TRUST_ENV} is set: loading {path} as a full pickle (trusted, unchecked)")
        try:
            return torch.load(_source(path), map_location=map_location, weights_only=False)
        except (ModuleNotFoundError, AttributeError) as e:
            raise UsageError(f"{path} needs code that is not importable here ({e}). yolo-attn checkpoints need "
                             f"`import yolo_attn` (and yolov5) before loading.") from None
        except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, ValueError) as e:
            raise _not_a_checkpoint(path, f"{type(e).__name__}: {str(e).splitlines()[0][:160]}") from None
    safe = _restricted_globals(path)
    try:
        with torch.serialization.safe_globals(safe):
            return torch.load(_source(path), map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:  # something the scan could not see (made while unpickling)
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        reason = next((ln for ln in lines if ln.startswith(("Can only", "Trying to", "Unsupported"))), lines[-1][:300])
        raise UsageError(f"refusing to load {path}: its pickle asks for something that is not a yolov5/yolo-attn/"
                         f"torch.nn model class ({reason}). Checkpoints are pickles and loading one can run code.\n"
                         f"  If you made this file or trust its source, set {TRUST_ENV}=1 to load it without this "
                         f"check.") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError) as e:
        raise _not_a_checkpoint(path, f"it cannot be read ({str(e).splitlines()[0][:160]}); the file may be "
                                      f"truncated") from None


def load_checkpoint(path, map_location="cpu", trust=None):
    """The checkpoint dict of a yolov5/yolo-attn ``.pt`` file (a dict with 'model' or 'ema').

    Restricted to yolov5/yolo-attn/torch.nn model classes unless ``trust`` (default: the environment variable
    YOLO_ATTN_TRUST_CHECKPOINTS) is true; raises UsageError for anything that is not such a checkpoint.
    """
    trust = trusted_by_environment() if trust is None else trust
    if hasattr(path, "read"):  # an open file: read once, then scan and load the same bytes
        path = io.BytesIO(path.read())
        _logger().info(f"yolo-attn: loading checkpoint from an open file ({len(path.getvalue()) / 1e6:.1f} MB)")
    else:
        path = Path(path).expanduser()
        if not path.is_file():
            raise UsageError(f"checkpoint {path} does not exist" if not path.exists() else f"{path} is not a file")
        path = path.resolve()
        _logger().info(f"yolo-attn: loading checkpoint {_describe(path)}")
    ckpt = _unpickle(path, map_location, trust)
    if not (isinstance(ckpt, dict) and (ckpt.get("ema") is not None or ckpt.get("model") is not None)):
        kind = ("a bare state_dict (tensors only, no model)" if isinstance(ckpt, dict) and ckpt
                and all(isinstance(v, torch.Tensor) for v in ckpt.values()) else f"a {type(ckpt).__name__}")
        raise _not_a_checkpoint(path, f"it holds {kind}, not a dict with 'model' or 'ema'")
    model = ckpt.get("ema") or ckpt.get("model")
    if not isinstance(model, nn.Module):
        raise _not_a_checkpoint(path, f"its 'model' is a {type(model).__name__}, not a model")
    about = _provenance(ckpt)
    if about:
        _logger().info(f"yolo-attn: {getattr(path, 'name', 'checkpoint')}: {about}")
    return ckpt


__all__ = ["load_checkpoint", "TRUST_ENV", "trusted_by_environment"]
