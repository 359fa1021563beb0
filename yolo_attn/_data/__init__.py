"""The files yolo-attn ships besides its code: the model YAMLs (``model_yamls``, ``model_yamls/ultralytics``) and
the hyper-parameter files (``hyps``).

The repository keeps them in its top-level ``model_yamls/`` and ``data/hyps/`` (the one copy in git); setup.py maps
those folders onto the packages ``yolo_attn._data.model_yamls``, ``yolo_attn._data.model_yamls.ultralytics`` and
``yolo_attn._data.hyps``, so a wheel holds them inside this package. ``folder`` finds them: in a checkout (also an
editable install, or PYTHONPATH pointing at one) the checkout's own folders, else the installed package data
through ``importlib.resources``. Nothing is ever written here (see docs/install.md).
"""
import importlib.resources
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
# The folders of the checkout, by name of the packaged folder (the mapping setup.py gives setuptools).
CHECKOUT_FOLDERS = {"model_yamls": "model_yamls", "hyps": "data/hyps"}


def in_checkout():
    """Whether this package is a source checkout's (its pyproject.toml and model_yamls/ beside it), not an install."""
    pyproject = REPO_ROOT / "pyproject.toml"
    try:
        return (REPO_ROOT / "model_yamls").is_dir() and 'name = "yolo-attn"' in pyproject.read_text(encoding="utf-8")
    except OSError:
        return False


def folder(name):
    """The folder of the shipped files ``name`` ("model_yamls" or "hyps") as a real path."""
    if in_checkout():
        return REPO_ROOT / CHECKOUT_FOLDERS[name]
    # A wheel's package data: plain files next to this module (a zipped install is not supported).
    return Path(str(importlib.resources.files(__name__).joinpath(name)))
