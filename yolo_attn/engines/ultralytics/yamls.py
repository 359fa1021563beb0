"""Model YAMLs for ultralytics: the scale of a file, and finding a YAML by name.

ultralytics takes a YAML's scale (n/s/m/l/x of its ``scales:``) from the file name only (``yolo11n-cbam.yaml``: n)
and overwrites any ``scale:`` key; a name without the letter silently builds the first scale. ``yaml_model_load``
(installed over both of ultralytics' bindings, patch ``yaml_scale``) keeps ultralytics' lookup and the letter of
the name, honours a ``scale:`` key when the name has no letter, and refuses the rest with a message: a file whose
scale cannot be told, a name and a ``scale:`` key that disagree, a letter the YAML has no scale for, a yolov5-format
YAML. Files inside the ultralytics package keep its own behaviour.
"""
import re
from pathlib import Path

import yaml

from yolo_attn import paths
from yolo_attn.engines.ultralytics.parser import check_format
from yolo_attn.errors import ModelConfigError, UsageError

ULTRALYTICS_YAMLS = paths.MODEL_YAMLS / "ultralytics"
_SCALE = re.compile(r"yolo(e-)?[v]?\d+([nslmx])")  # ultralytics' guess_model_scale


def ultralytics_root():
    import importlib.util

    return Path(importlib.util.find_spec("ultralytics").origin).parent


def scale_in_name(path):
    """The scale letter ultralytics reads from a file name ('' if none)."""
    m = _SCALE.search(Path(path).stem)
    return m.group(2) if m else ""


def _read(path):
    try:
        d = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ModelConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(d, dict):
        raise ModelConfigError(f"{path}: not a model YAML (it needs 'backbone:' and 'head:' sections)")
    return d


def choose_scale(path, scales, own):
    """The scale to build ``path`` at: the letter in its name, else its ``scale:`` key; errors as described above."""
    letter = scale_in_name(path)
    if own is not None and not isinstance(own, str):
        raise ModelConfigError(f"{path}: 'scale:' must be one letter of its scales, got {own!r}")
    if letter and own and letter != own:
        raise ModelConfigError(f"{path}: the file name says scale {letter!r} ({Path(path).name}) but its 'scale:' "
                               f"key says {own!r}. ultralytics builds the scale of the name; rename the file or "
                               f"change the key so that they agree.")
    scale = letter or own or ""
    if not scales:
        return scale
    if not scale:
        if len(scales) == 1:
            return next(iter(scales))
        raise ModelConfigError(
            f"{path}: its scale is unknown: the file name has no scale letter and the YAML no 'scale:' key "
            f"(its scales: {', '.join(scales)}); ultralytics would silently build scale {next(iter(scales))!r}. "
            f"Name the file like yolo11n-mine.yaml (scale n), or add 'scale: n' to it.")
    if scale not in scales:
        raise ModelConfigError(f"{path}: scale {scale!r} is not one of its scales ({', '.join(scales)})")
    return scale


def yaml_model_load(path):
    """Drop-in for ``ultralytics.nn.tasks.yaml_model_load(path)`` with the scale rules above."""
    from yolo_attn.engines.ultralytics.stock import original

    file = Path(path)
    if not file.is_file():
        file = shipped_yaml(str(path)) or file
    if not file.is_file() or ultralytics_root() in file.resolve().parents:
        # a name ultralytics finds in its package (yolo11n.yaml -> 11/yolo11.yaml, scale n)
        return original("ultralytics.nn.tasks", "yaml_model_load")(path)
    d = _read(file)  # read as it is: ultralytics would rewrite some names first (yolov5su.yaml -> yolov5s.yaml)
    check_format(d, str(file))
    d["scale"] = choose_scale(file, d.get("scales"), d.get("scale"))
    d["yaml_file"] = str(path)
    return d


def shipped_yaml(name):
    """The file of model_yamls/ultralytics/ a bare name (``yolo26n-cbam.yaml``) means where ultralytics' package has
    no YAML of that name, else None: ``YOLO("yolo11n-cbam.yaml")``, a trainer's ``model=`` and a DDP worker's rebuild
    find the shipped variants, and stock names stay ultralytics' own."""
    if Path(name).name != name or not name.endswith((".yaml", ".yml")):
        return None
    candidate = ULTRALYTICS_YAMLS / name
    return candidate if candidate.is_file() and package_yaml(name) is None else None


def package_yaml(name):
    """The file of ultralytics' package a stock YAML name (yolov8s.yaml) is built from, or None."""
    from ultralytics.utils.checks import check_yaml

    unified = re.sub(r"(\d+)([nslmx])(.+)?$", r"\1\3", name)
    for candidate in dict.fromkeys((name, unified)):
        try:
            found = check_yaml(candidate, hard=False)
        except Exception:  # noqa: BLE001  (ultralytics raises several kinds for a name it cannot place)
            found = None
        if found and ultralytics_root().resolve() in Path(found).resolve().parents:  # (a venv behind a link too)
            return Path(found)
    return None


def resolve_cfg(name):
    """An ultralytics model YAML given as a path, a name in model_yamls/ultralytics/ (then model_yamls/), or a stock
    ultralytics name (yolov8s.yaml): what to give ``YOLO()`` (an absolute path, or the stock name)."""
    path = Path(name).expanduser()
    if path.is_file():
        return str(path.resolve())
    wanted = name if str(name).endswith((".yaml", ".yml")) else f"{name}.yaml"
    looked = [path]
    for folder in (ULTRALYTICS_YAMLS, paths.MODEL_YAMLS):
        candidate = folder / wanted
        looked.append(candidate)
        if candidate.is_file():
            return str(candidate.resolve())
    if Path(wanted).name == wanted and package_yaml(wanted):
        return wanted
    shipped = sorted(p.name for p in ULTRALYTICS_YAMLS.glob("*.yaml"))
    raise UsageError(f"model cfg {name!r} not found. Looked at:\n" + "\n".join(f"  {p}" for p in looked)
                     + f"\n  ultralytics' own models ({ultralytics_root() / 'cfg' / 'models'})"
                     + f"\nShipped ultralytics YAMLs: {', '.join(shipped)}")


def load_cfg(cfg):
    """The model dict of a resolved cfg (a path or a stock name), scale chosen, as ultralytics will build it."""
    return yaml_model_load(cfg)
