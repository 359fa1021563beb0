"""The one place yolo-attn reads checkpoints (and, once ``import yolo_attn`` ran, yolov5 and ultralytics read them too).

A ``.pt`` file is a pickle: a plain ``torch.load(..., weights_only=False)`` runs whatever code the file names, and
even torch's restricted unpickler lets an allowed class be *called* with arguments from the file. So a checkpoint is
read as data, in steps:

0. its sizes are bounded before anything is inflated or scanned (file, members uncompressed, data.pkl, opcodes,
   memo, nesting: ``MAX_*`` here and in ``pickle_scan``), so a zip bomb or an opcode flood is refused at once;
1. the file is read once, and its pickle is scanned without running it (``pickle_scan.py``): every class or function it
   names must be a layer or model class *defined in* yolov5's, ultralytics', yolo-attn's (or a layer registered
   with it) or ``torch.nn``'s modules and not in ``NOT_IN_A_CHECKPOINT`` (``classes.py``), or one of the rebuild
   functions of tensors and a few data types (numpy arrays/scalars, paths, OrderedDict); what it does with them must
   be what torch writes for a model (module objects made empty and given their state, only the rebuild functions
   called, with plain data; the 'model'/'ema' a model class, every other module object in a module's ``_modules``);
2. the same bytes are unpickled by torch's restricted unpickler (``weights_only=True``) with every module class
   mapped to an inert record (``saved.SavedObject``): tensors and plain values only, no object of a class the file
   names is made; whatever that raises is the same refusal;
3. the fields the engines read are checked (``fields.py``), the stored model YAML within the model-YAML bounds;
4. the model is rebuilt from that YAML through the engine's parser, its module tree must be the saved one, and the
   saved tensors are loaded into it (``saved.py``; engines register their ``ModelBuilder``).

Anything else (``os.system``, an unknown class, a model class called with arguments, a module tree its YAML does not
build) is refused with a message naming it. ``YOLO_ATTN_TRUST_CHECKPOINTS=1`` in the environment (or ``trust=True``)
skips all of this for files you made or trust (a plain ``torch.load``). Every load logs the file it reads (absolute
path, size, sha256 prefix) and what the checkpoint says about itself (date, engine version, epoch, model YAML), so it
is always visible which file a run came from.

A file that is not a yolov5/yolo-attn checkpoint (not a torch.save archive, truncated, a bare state_dict,
a TorchScript file) is refused with a ``UsageError`` that says what it is; the command-line tools print it
without a traceback.
"""
import hashlib
import importlib
import importlib.util
import io
import logging
import os
import pickle
import pickletools
import zipfile
from pathlib import Path

import torch
from torch import nn
from torch._weights_only_unpickler import _get_allowed_globals

from yolo_attn.checkpoints.classes import NOT_IN_A_CHECKPOINT, attribute, denied, model_class, module_class
from yolo_attn.checkpoints.fields import check_fields
from yolo_attn.checkpoints.pickle_scan import (CALLS, MAX_OPS, OPCODES, PLAIN_CLASSES, Refused, UnknownGlobals,
                                               global_name, scan)
from yolo_attn.checkpoints.saved import (ModelBuilder, SavedObject, first_line, rebuild_models, register_builder,
                                         saved_class)
from yolo_attn.errors import UsageError

TRUST_ENV = "YOLO_ATTN_TRUST_CHECKPOINTS"

# Bounds checked before the pickle is read (docs/security.md gives the measured real sizes).
MAX_FILE_BYTES = 4 * 2 ** 30  # the .pt file, and all its members uncompressed (yolov5x last.pt with SGD state: 521 MB)
MAX_PICKLE_BYTES = 16 * 2 ** 20  # its data.pkl uncompressed (yolo11x last.pt with SGD state: 296 KB)
# The scan's rebuild functions and data types from modules other than torch (imported by name, nothing else is).
_DATA_MODULES = ("numpy", "numpy.core.multiarray", "numpy._core.multiarray", "pathlib", "argparse",
                 "ultralytics.utils")


def _logger():
    return logging.getLogger("yolov5")  # yolov5's own logger: its commands print it, tests can silence it


def trusted_by_environment():
    return os.environ.get(TRUST_ENV, "").strip().lower() in ("1", "true", "yes")


def _resolve(name):
    """What torch's restricted unpickler gets for a GLOBAL the scan accepted: for a module class, the inert
    ``SavedObject`` class standing in for it (no class a checkpoint names is ever made); for a rebuild function or
    data type, that object."""
    module_name, _, attr = name.rpartition(".")
    if module_name in _DATA_MODULES and (name in CALLS or name in PLAIN_CLASSES or name == "numpy.ndarray"):
        return attribute(module_name, attr)
    return (saved_class(name), name) if module_class(name) is not None else None


def _missing_module_hint(names):
    """For GLOBALs whose module cannot be imported here: what to import (yolo_attn, yolov5, or the user's module)."""
    hints = []
    for name in names:
        top = name.split(".")[0]
        if importlib.util.find_spec(top) is None:
            hints.append(f"{name} (module {top!r} is not installed here)")
    return hints


def _describe(path, raw):
    return f"{path} ({len(raw) / 1e6:.1f} MB, sha256 {hashlib.sha256(raw).hexdigest()[:12]})"


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


def _not_an_archive(raw, torchscript=False):
    if torchscript:
        return "it is a TorchScript model (load it with torch.jit.load; yolov5's detect.py/val.py take it as --weights)"
    if raw[:1] == b"\x80":  # pickle protocol 2+: a plain pickle, or torch.save's format before torch 1.6
        return ("it is a plain pickle or a pre-1.6 torch.save file, not the zip archive torch.save writes (and yolov5 "
                "checkpoints are); if you trust it, load it with torch and save it again with a current torch")
    return "it is not a PyTorch checkpoint (a torch.save archive) at all"


def _bounded_members(path, raw):
    """{member name: uncompressed size} of the archive, from its central directory (nothing is decompressed), after
    checking the sizes against MAX_FILE_BYTES and MAX_PICKLE_BYTES: a zip bomb is refused here, at once."""
    try:
        infos = zipfile.ZipFile(io.BytesIO(raw)).infolist()
    except Exception as e:  # noqa: BLE001  (BadZipFile, NotImplementedError of a version byte, ...: all the same)
        raise _not_a_checkpoint(path, f"the archive cannot be read ({first_line(e)}); the file may be "
                                      f"truncated") from None
    total = sum(i.file_size for i in infos)
    pickles = [i.file_size for i in infos if i.filename.rpartition("/")[2] == "data.pkl"]
    if total > MAX_FILE_BYTES:
        raise _refusal(path, Refused(f"its archive members hold {total / 1e9:.1f} GB uncompressed "
                                     f"({len(raw) / 1e6:.1f} MB compressed), above the "
                                     f"{MAX_FILE_BYTES / 2 ** 30:.0f} GiB a checkpoint may have (a zip bomb?)"))
    if max(pickles, default=0) > MAX_PICKLE_BYTES:
        raise _refusal(path, Refused(f"its data.pkl is {max(pickles) / 1e6:.1f} MB uncompressed, above the "
                                     f"{MAX_PICKLE_BYTES / 2 ** 20:.0f} MiB a checkpoint's pickle may have (a yolo11x "
                                     f"last.pt with optimizer state: 0.3 MB)"))
    return {i.filename: i.file_size for i in infos}


def _archive_pickle(path, raw):
    """(bytes of the archive's data.pkl, read with torch's own zip reader (the one torch.load uses); {member name:
    size})."""
    from torch.serialization import _is_torchscript_zip, _is_zipfile, _open_zipfile_reader

    f = io.BytesIO(raw)
    if not _is_zipfile(f):
        raise _not_a_checkpoint(path, _not_an_archive(raw))
    members = _bounded_members(path, raw)
    try:
        with _open_zipfile_reader(f) as archive:
            if _is_torchscript_zip(archive):
                raise _not_a_checkpoint(path, _not_an_archive(raw, torchscript=True))
            return archive.get_record("data.pkl"), members
    except UsageError:
        raise
    except Exception as e:  # noqa: BLE001  (whatever torch's zip reader raises on a damaged archive)
        raise _not_a_checkpoint(path, f"the archive cannot be read ({first_line(e)}); the file may be "
                                      f"truncated") from None


def _check_storages(path, scanned, members):
    """Each tensor storage the pickle loads must fit in its record: torch sizes the storage from the pickle's element
    count, not from the record."""
    from torch._utils import _element_size

    records = {}
    for name, size in members.items():
        head, _, key = name.rpartition("/data/")
        if head and "/" not in head:
            records[key] = size
    defaults = _get_allowed_globals()
    for key, numel, kind in scanned.storages:
        dtype = getattr(defaults.get(kind), "dtype", None)
        try:
            need = numel * _element_size(dtype) if isinstance(dtype, torch.dtype) else numel
        except (RuntimeError, TypeError, ValueError):
            need = numel
        if key not in records or records[key] < need:
            have = f"{records[key]:,} bytes" if key in records else "no record"
            raise _refusal(path, Refused(f"a tensor storage of {numel:,} elements ({kind}) has {have} in the archive "
                                         f"(record data/{key:.40})"))


def _refusal(path, e):
    denied_names = [n for n in getattr(e, "names", ()) if denied(n)]
    if denied_names:
        what = (f"its pickle names {', '.join(denied_names)}, which {'is' if len(denied_names) == 1 else 'are'} never "
                f"part of a saved model (a wrapper that opens files, downloads or loads other models: loading it as "
                f"the file chose would let the file pick what it reads or fetches)")
    elif isinstance(e, UnknownGlobals):
        names = e.names
        missing = _missing_module_hint(names)
        system = ("builtins.", "posix.", "nt.", "os.", "subprocess.")
        modules = sorted({n.rpartition(".")[0] for n in names if not n.startswith(system)})
        hint = (f"\n  not importable here: {'; '.join(missing)}. A yolo-attn checkpoint needs yolo_attn and yolov5 "
                f"installed." if missing else "")
        if modules:
            hint += (f"\n  If {', '.join(modules)} {'is' if len(modules) == 1 else 'are'} your own layer module: "
                     f"run `import {modules[0]}` and register its layers with yolo_attn.register(...) before loading.")
        what = (f"its pickle names {', '.join(names)}, which {'is' if len(names) == 1 else 'are'} not a "
                f"yolov5/yolo-attn/torch.nn model class{hint}")
    else:
        what = f"{e}"
    return UsageError(f"refusing to load {path}: {what}.\n  Checkpoints are pickles and loading one can run code; "
                      f"nothing of this file has run. If you made this file or trust its source, set {TRUST_ENV}=1 "
                      f"to load it without this check.")


def _safe_globals(names):
    """The objects torch's restricted unpickler may use for the scanned names (beyond its own defaults)."""
    defaults = _get_allowed_globals()
    safe = [_resolve(name) for name in sorted(names) if name not in defaults]
    if "numpy.dtype" in names:
        import numpy as np

        # np.dtype(...) makes instances of these classes (e.g. Float64DType), which torch then BUILDs
        safe += [t for t in vars(getattr(np, "dtypes", np)).values() if isinstance(t, type) and issubclass(t, np.dtype)]
    return [obj for obj in safe if obj is not None]


def _unpickle(path, raw, map_location, trust):
    if trust:
        _logger().warning(f"yolo-attn: {TRUST_ENV} is set: loading {path} as a full pickle (trusted, unchecked)")
        try:
            return torch.load(io.BytesIO(raw), map_location=map_location, weights_only=False)
        except (ModuleNotFoundError, AttributeError) as e:
            raise UsageError(f"{path} needs code that is not importable here ({e}). yolo-attn checkpoints need "
                             f"`import yolo_attn` (and yolov5) before loading.") from None
        except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, ValueError) as e:
            raise _not_a_checkpoint(path, first_line(e)) from None
    data, members = _archive_pickle(path, raw)
    try:
        scanned = scan(data, module_class, model_class)
    except Refused as e:
        raise _refusal(path, e) from None
    except ValueError as e:
        raise _not_a_checkpoint(path, f"its data.pkl is not a complete pickle ({e}); the file is truncated or "
                                      f"damaged") from None
    except RecursionError:
        raise _refusal(path, Refused("its pickle nests too deeply")) from None
    _check_storages(path, scanned, members)
    try:
        with torch.serialization.safe_globals(_safe_globals(scanned.names)):
            return torch.load(io.BytesIO(raw), map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:  # torch's own check, after ours: should not happen
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        raise _refusal(path, Refused(f"torch's restricted loader refused it ({lines[0][:300] if lines else e})"))
    except (RuntimeError, EOFError, zipfile.BadZipFile) as e:
        raise _not_a_checkpoint(path, f"it cannot be read ({first_line(e)}); the file may be "
                                      f"truncated") from None
    except Exception as e:  # anything else the file makes torch or an allowed rebuild function raise: MemoryError,
        # TypeError/ValueError of a rebuild function given other arguments, RecursionError, ...: the same refusal
        raise _refusal(path, Refused(f"loading it fails ({first_line(e)})")) from None


def pickle_globals(path):
    """The classes and functions a checkpoint's pickle names (``module.qualname``), read within the loader's bounds
    (file and data.pkl size, opcode count) and without unpickling anything; None for a file that is not a readable
    torch.save archive or exceeds a bound (``load_checkpoint`` then says which). Engines are chosen from these."""
    try:
        path = Path(path)
        if not path.is_file() or path.stat().st_size > MAX_FILE_BYTES:
            return None
        with zipfile.ZipFile(path) as archive:
            infos = [i for i in archive.infolist() if i.filename.rpartition("/")[2] == "data.pkl"
                     and i.filename.count("/") == 1]
            if len(infos) != 1 or infos[0].file_size > MAX_PICKLE_BYTES:
                return None
            data = archive.read(infos[0])
        names = set()
        for count, (op, arg, _) in enumerate(pickletools.genops(data)):
            if count > MAX_OPS or op.name not in OPCODES:
                return None
            if op.name == "GLOBAL":
                names.add(global_name(arg))
        return names
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, RuntimeError, NotImplementedError):
        return None


def load_checkpoint(path, map_location="cpu", trust=None):
    """The checkpoint dict of a yolov5/yolo-attn ``.pt`` file (a dict with 'model' or 'ema').

    Restricted to yolov5/yolo-attn/torch.nn model classes unless ``trust`` (default: the environment variable
    YOLO_ATTN_TRUST_CHECKPOINTS) is true; raises UsageError for anything that is not such a checkpoint.
    """
    trust = trusted_by_environment() if trust is None else trust
    if hasattr(path, "read"):  # an open file: read once, then scan and load the same bytes
        raw, path = path.read(MAX_FILE_BYTES + 1), "an open file"
        if len(raw) > MAX_FILE_BYTES:
            raise _refusal(path, Refused(f"it is larger than {MAX_FILE_BYTES / 2 ** 30:.0f} GiB"))
        _logger().info(f"yolo-attn: loading checkpoint from an open file ({len(raw) / 1e6:.1f} MB)")
    else:
        path = Path(path).expanduser()
        if not path.is_file():
            raise UsageError(f"checkpoint {path} does not exist" if not path.exists() else f"{path} is not a file")
        path = path.resolve()
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise _refusal(path, Refused(f"it is {size / 2 ** 30:.1f} GiB, above the {MAX_FILE_BYTES / 2 ** 30:.0f} "
                                         f"GiB a checkpoint may have"))
        raw = path.read_bytes()  # scanned and loaded from these bytes: the file cannot change in between
        _logger().info(f"yolo-attn: loading checkpoint {_describe(path, raw)}")
    ckpt = _unpickle(path, raw, map_location, trust)
    if not (isinstance(ckpt, dict) and (ckpt.get("ema") is not None or ckpt.get("model") is not None)):
        kind = ("a bare state_dict (tensors only, no model)" if isinstance(ckpt, dict) and ckpt
                and all(isinstance(v, torch.Tensor) for v in ckpt.values()) else f"a {type(ckpt).__name__}")
        raise _not_a_checkpoint(path, f"it holds {kind}, not a dict with 'model' or 'ema'")
    model = ckpt.get("ema") or ckpt.get("model")
    if not isinstance(model, (nn.Module, SavedObject)):
        raise _not_a_checkpoint(path, f"its 'model' is a {type(model).__name__}, not a model")
    check_fields(ckpt, path)  # before anything is built: the stored YAML within the model-YAML bounds
    rebuild_models(ckpt, path)
    about = _provenance(ckpt)
    if about:
        _logger().info(f"yolo-attn: {getattr(path, 'name', 'checkpoint')}: {about}")
    return ckpt


def model_classes(ckpt, path):
    """The class count (``.nc``) of a checkpoint's model, which yolov5's val/train read without checking; a
    UsageError naming the file and the fix when the model has none."""
    model = ckpt.get("ema") or ckpt["model"]
    nc = getattr(model, "nc", None)
    if isinstance(nc, int) and not isinstance(nc, bool) and nc > 0:
        return nc
    layers = getattr(model, "model", None)
    head = layers[-1] if isinstance(layers, nn.Sequential) and len(layers) else None
    known = getattr(head, "nc", None)
    fix = (f"Its detection head has {known} classes: save it again with that count, e.g. `ckpt = "
           f"load_checkpoint('{path}'); ckpt['model'].nc = {known}; torch.save(ckpt, 'fixed.pt')`"
           if isinstance(known, int) else "It is not a yolov5 detection model")
    raise UsageError(f"{path}: its model has no class count (.nc = {nc!r}), which yolov5's tools need; it was not "
                     f"saved by yolov5's training (or yolo_attn.engines.yolov5.model.save_checkpoint). {fix}.")


__all__ = ["ModelBuilder", "NOT_IN_A_CHECKPOINT", "SavedObject", "load_checkpoint", "model_classes", "pickle_globals",
           "register_builder", "TRUST_ENV", "trusted_by_environment"]
