"""Where things are: the repository's model_yamls/ and data/, yolov5's own models/ and data/, and whether the
network is there for yolov5's downloads."""
import importlib.util
import socket
from pathlib import Path

from yolo_attn.errors import UsageError

REPO_ROOT = Path(__file__).resolve().parents[1]
MODEL_YAMLS = REPO_ROOT / "model_yamls"
DATA_DIR = REPO_ROOT / "data"
EMBEDDED_DATASET = DATA_DIR / "shapes"


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
                 "Give a path to your dataset's YAML (see README, 'Your own data').")


def is_yolov5_data(path):
    """Whether a data YAML is one of yolov5's own (coco.yaml, VOC.yaml: paths relative to yolov5's folder)."""
    return Path(path).resolve().parent == (yolov5_root() / "data").resolve()
