"""Where things are: the shipped model YAMLs and hyper-parameter files (a checkout's model_yamls/ and data/hyps/, or
the installed package data: yolo_attn._data), the data folder (the embedded dataset, local dataset conversions),
yolov5's own models/ and data/, yolo-attn's cache folder, and whether the network is there for yolov5's downloads.

Nothing is ever written into the installed package: installed (not a checkout), the data folder is yolo-attn's
home, $YOLO_ATTN_HOME, else the user's cache folder (``cache_dir()``); in a checkout it is the checkout's data/
(unless $YOLO_ATTN_HOME is set). Runs go to ./runs (the engines' defaults, relative to the current folder)."""
import contextlib
import importlib.util
import os
import socket
import tempfile
from pathlib import Path

from yolo_attn import _data
from yolo_attn.errors import BadParameter, DatasetError, UsageError

REPO_ROOT = _data.REPO_ROOT  # a checkout's root (only meaningful when IN_CHECKOUT)
IN_CHECKOUT = _data.in_checkout()
MODEL_YAMLS = _data.folder("model_yamls")  # read only
HYPS = _data.folder("hyps")  # read only


def cache_dir():
    """yolo-attn's cache folder (label caches): $YOLO_ATTN_CACHE_DIR, else $XDG_CACHE_HOME/yolo-attn, else
    ~/.cache/yolo-attn. Never inside a dataset or run folder; everything in it can be deleted."""
    if os.environ.get("YOLO_ATTN_CACHE_DIR"):
        return Path(os.environ["YOLO_ATTN_CACHE_DIR"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "yolo-attn"


def home():
    """yolo-attn's data folder (the embedded dataset, local conversions named by --data): $YOLO_ATTN_HOME, else a
    checkout's data/, else the user's cache folder (``cache_dir()``, e.g. ~/.cache/yolo-attn). Never the installed
    package."""
    if os.environ.get("YOLO_ATTN_HOME"):
        return Path(os.environ["YOLO_ATTN_HOME"]).expanduser().absolute()
    return REPO_ROOT / "data" if IN_CHECKOUT else cache_dir().absolute()


DATA_DIR = home()
EMBEDDED_DATASET = DATA_DIR / "shapes"


def writable_home(folder):
    """``folder`` (the embedded dataset's) if it can be created and written, else a UsageError (exit 2) naming it
    and $YOLO_ATTN_HOME."""
    folder = Path(folder)
    existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
    try:
        if existing is None or not existing.is_dir():
            raise NotADirectoryError(f"{existing} is not a folder")
        os.rmdir(tempfile.mkdtemp(prefix=".yolo-attn-write-test-", dir=existing))
    except OSError as e:
        raise UsageError(f"cannot write the embedded dataset to {folder} ({e.strerror or e}). Set YOLO_ATTN_HOME to "
                         f"a folder you can write to (e.g. YOLO_ATTN_HOME={Path.home() / 'yolo-attn'}), or give "
                         f"your own dataset with --data.") from None
    return folder


def yolov5_root():
    """yolov5's install folder (found without importing it)."""
    return Path(importlib.util.find_spec("yolov5").origin).parent


def online():
    """Whether yolov5's downloads (GitHub releases) can work: github.com must resolve and accept a connection.
    (A bare connection to 1.1.1.1, yolov5's own test, succeeds behind sandboxes and proxies that let nothing out.)"""
    try:
        socket.create_connection(("github.com", 443), timeout=3).close()
        return True
    except OSError:
        return False


def _with_yaml_suffix(name):
    return name if name.endswith((".yaml", ".yml")) else f"{name}.yaml"


def _find(name, folders, kind, listing_folder, hint):
    path = Path(name).expanduser()
    if path.is_file():
        return path.resolve()
    looked = [path]
    for folder in folders:
        for candidate in dict.fromkeys((folder / name, folder / _with_yaml_suffix(name))):
            looked.append(candidate)
            if candidate.is_file():
                return candidate.resolve()
    available = sorted(p.name for p in listing_folder.glob("*.yaml")) if listing_folder.is_dir() else []
    raise UsageError(f"{kind} {name!r} not found. Looked at:\n" + "\n".join(f"  {p}" for p in looked)
                     + (f"\nAvailable in {listing_folder}: {', '.join(available)}" if available else "") + f"\n{hint}")


def resolve_cfg(name):
    """A model YAML given as a path or a name in model_yamls/ (then yolov5's models/)."""
    return _find(name, [MODEL_YAMLS, yolov5_root() / "models"], "model cfg", MODEL_YAMLS,
                 "Give a path to your own YAML, or generate a variant with `yolo-attn insert`.")


# ``--data coco`` / ``--data voc``: a local conversion in data/<name>/ (``yolo-attn convert``) when there is one,
# else yolov5's own definition, which downloads the dataset.
DATA_ALIASES = {"coco": "coco.yaml", "voc": "VOC.yaml"}


def local_copy(alias):
    """data/coco/data.yaml or data/voc/data.yaml (any case of the folder name) if present, else None."""
    for folder in dict.fromkeys((alias, alias.upper(), alias.lower())):
        candidate = DATA_DIR / folder / "data.yaml"
        if candidate.is_file():
            return candidate.resolve()
    return None


def resolve_data(name):
    """A data YAML given as a path or a name in data/ (then yolov5's data/, e.g. coco.yaml, VOC.yaml).

    The bare names ``coco`` and ``voc`` (any case) mean the local conversion in data/coco/ or data/voc/ if there is
    one, else yolov5's coco.yaml / VOC.yaml.
    """
    alias = str(name).lower()
    if alias in DATA_ALIASES and not Path(name).expanduser().exists():
        return local_copy(alias) or (yolov5_root() / "data" / DATA_ALIASES[alias]).resolve()
    return _find(name, [DATA_DIR, yolov5_root() / "data"], "data YAML", yolov5_root() / "data",
                 "Give a path to your dataset's YAML (see docs/datasets.md, 'Your own data').")


def is_yolov5_data(path):
    """Whether a data YAML is one of yolov5's own (coco.yaml, VOC.yaml: paths relative to yolov5's folder)."""
    return Path(path).resolve().parent == (yolov5_root() / "data").resolve()


@contextlib.contextmanager
def atomic_file(path, mode="w", prefix=None, suffix="", fsync=False):
    """An open temporary file in ``path``'s folder, renamed over ``path`` when the block completes: readers never
    see half of it, and a failure (a full disk, a kill) leaves the previous file as it was and no temporary one.
    ``mode``: "w" (text, UTF-8) or "wb"; ``fsync``: flush to disk before the rename (checkpoints)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}." if prefix is None else prefix, suffix=suffix, dir=path.parent)
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomically(path, data):
    """Write a small file (``data``: text, or bytes) through a temporary one in the same folder (``atomic_file``)."""
    with atomic_file(path, "wb" if isinstance(data, (bytes, bytearray)) else "w") as f:
        f.write(data)


def save_atomically(obj, f, *args, **kwargs):
    """``torch.save`` to a path through a temporary file in the same folder, renamed over the target once
    complete: a full disk or a kill never leaves a truncated checkpoint under the real name. (A file object is
    saved to as it is.)"""
    import torch

    if not isinstance(f, (str, os.PathLike)):
        return torch.save(obj, f, *args, **kwargs)
    with atomic_file(f, "wb", suffix=".partial", fsync=True) as out:
        torch.save(obj, out, *args, **kwargs)


def walk_files(folder):
    """Every file under ``folder`` as yolov5's recursive glob sees it: folders behind symbolic links are followed,
    names starting with '.' skipped. A symbolic link to a folder that contains it is refused (DatasetError naming
    it): glob would follow it until paths are 40 links deep, and with two such links list 2^40 paths."""
    stack = [(Path(folder), (os.path.realpath(folder),))]
    while stack:
        here, ancestors = stack.pop()
        try:
            entries = sorted(os.scandir(here), key=lambda e: e.name)
        except OSError as e:
            raise DatasetError(f"{here}: cannot list this folder ({e.strerror})") from None
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_dir():
                real = os.path.realpath(entry.path)
                if real in ancestors:
                    raise DatasetError(f"{entry.path} is a symbolic link to {real}, a folder it is inside of: walking "
                                       f"the images would follow it forever. Remove the link (or point it elsewhere).")
                stack.append((Path(entry.path), ancestors + (real,)))
            else:
                yield Path(entry.path)


def writable_folder(folder, param="project"):
    """Refuse a folder where nothing can be created (read-only, no permission), before anything is written; the
    check makes and removes a temporary folder in the nearest existing parent, so it holds for root too."""
    folder = Path(folder).expanduser().absolute()
    existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
    try:
        if existing is None or not existing.is_dir():
            raise NotADirectoryError(f"{existing} is not a folder")
        os.rmdir(tempfile.mkdtemp(prefix=".yolo-attn-write-test-", dir=existing))
    except OSError as e:
        raise BadParameter(param, f"{{name}} {folder}: cannot create the run folder there "
                                  f"({e.strerror or e}). Choose a folder you can write to, e.g. {{name}} "
                                  f"{Path.home() / 'runs'}.") from None
    return folder
