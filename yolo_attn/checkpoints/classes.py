"""Which classes a checkpoint may name, and what each name means here.

A checkpoint's pickle names classes by ``module.qualname``. These rules say which names are module classes a saved
model's tree may hold, which may be the model itself, and which are never part of a saved model; they import only
yolov5's, ultralytics', yolo-attn's and torch.nn's modules (and read layers registered with yolo-attn).
"""
import importlib
import importlib.util
import inspect
from pathlib import Path

from torch import nn

# Modules whose nn.Module classes a checkpoint may name. "models." is yolov5's own folder on sys.path (older
# yolov5 checkpoints, e.g. the official release weights, name "models.yolo.DetectionModel"); it is accepted only
# when that is where it resolves. "ultralytics.nn.": the ultralytics engine's layers and models.
_MODEL_MODULE_PREFIXES = ("torch.nn.modules.", "yolov5.models.", "yolo_attn.", "models.", "ultralytics.nn.modules.",
                          "ultralytics.nn.tasks")
# Classes of those modules that are never part of a saved model: wrappers that open files, download, read images or
# load other models (yolov5's DetectMultiBackend and AutoShape made the issue-22 gadget: a DetectMultiBackend with
# TFLite flags whose interpreter was an AutoShape fetched a URL stored in the file), and ensembles/text-prompt models
# that loading never needs. Names without the "yolov5." prefix also match yolov5's "models." copy.
NOT_IN_A_CHECKPOINT = frozenset({"models.common.DetectMultiBackend", "models.common.AutoShape",
                                 "models.experimental.Ensemble", "ultralytics.nn.tasks.Ensemble",
                                 "ultralytics.nn.tasks.WorldModel", "ultralytics.nn.tasks.YOLOEModel",
                                 "ultralytics.nn.tasks.YOLOESegModel", "ultralytics.nn.tasks.YOLOESegModel26",
                                 "ultralytics.nn.tasks.YOLOEModel26"})
# What a checkpoint's 'model'/'ema' may be: a subclass of one of these (yolov5's/ultralytics' model classes).
MODEL_BASES = frozenset({"models.yolo.BaseModel", "ultralytics.nn.tasks.BaseModel"})


def _yolov5_dir():
    spec = importlib.util.find_spec("yolov5")
    return Path(spec.origin).parent.resolve()


def attribute(module_name, attr):
    """``module_name.attr`` (a dotted attr), importing the module; None when either is missing."""
    try:
        obj = importlib.import_module(module_name)
    except ImportError:
        return None
    for part in attr.split("."):
        obj = getattr(obj, part, None)
    return obj


def canonical(cls):
    """``module.qualname`` of a class, with yolov5's two homes (``yolov5.models.`` and ``models.``) made one."""
    name = f"{cls.__module__}.{cls.__qualname__}"
    return name[len("yolov5."):] if name.startswith("yolov5.") else name


def _registered():
    from yolo_attn.registry import registered_layers

    return {f"{s.cls.__module__}.{s.cls.__qualname__}": s.cls for s in registered_layers()}


def tree_class(name):
    """The nn.Module class a GLOBAL names in the allowed modules (or a layer registered in this process), else None."""
    module_name, _, attr = name.rpartition(".")
    if not module_name.startswith(_MODEL_MODULE_PREFIXES):
        return _registered().get(name)  # a layer registered in this process (its module is already imported)
    if module_name.startswith("models."):
        spec = importlib.util.find_spec("models")  # the top-level package only: finding it runs nothing
        if spec is None or spec.origin is None or _yolov5_dir() not in Path(spec.origin).resolve().parents:
            return None
    obj = attribute(module_name, attr)
    return obj if inspect.isclass(obj) and issubclass(obj, nn.Module) else None


def module_class(name):
    """The nn.Module class a pickle GLOBAL ``module.qualname`` names, if it is a class a model's module tree may hold;
    else None. The class must be defined in the module the GLOBAL names (not imported there:
    ``yolov5.models.yolo.DetectMultiBackend`` is refused as well) and not in NOT_IN_A_CHECKPOINT."""
    cls = tree_class(name)
    if cls is None or canonical(cls) in NOT_IN_A_CHECKPOINT:
        return None
    if cls.__module__ != name.rpartition(".")[0] and name not in _registered():
        return None
    return cls


def denied(name):
    """Whether a GLOBAL names a class of NOT_IN_A_CHECKPOINT (wherever it is imported)."""
    cls = tree_class(name)
    return cls is not None and canonical(cls) in NOT_IN_A_CHECKPOINT


def model_class(name):
    """The class a checkpoint's 'model'/'ema' may be: a yolov5/ultralytics model class (BaseModel subclass)."""
    cls = module_class(name)
    if cls is None or not any(canonical(b) in MODEL_BASES for b in cls.__mro__):
        return None
    return cls


__all__ = ["MODEL_BASES", "NOT_IN_A_CHECKPOINT", "attribute", "canonical", "denied", "model_class", "module_class",
           "tree_class"]
