"""Restricted loading for ultralytics: checkpoints through ``yolo_attn.checkpoints``, label caches without pickle
code.

ultralytics reads ``.pt`` files with ``torch.load(weights_only=False)`` (a full pickle: any code the file names
runs) in ``torch_safe_load`` (every ``YOLO(pt)``, ``.load``, validation, prediction, export, resume) and in
``strip_optimizer``; and a dataset's ``labels/*.cache`` with ``np.load(allow_pickle=True)``. ``torch_load`` below
replaces both checkpoint bindings (patch ``restricted_checkpoint_load``): the pickle is scanned first and only model
classes of torch.nn, ultralytics and yolo-attn are allowed. A yolov5 checkpoint is refused with a message naming
its engine.
"""
import logging
import numbers
import pickle

import numpy as np

from yolo_attn.checkpoints import load_checkpoint
from yolo_attn.checkpoints.saved import ModelBuilder
from yolo_attn.errors import UsageError


class UltralyticsBuilder(ModelBuilder):
    """Rebuilds an ultralytics checkpoint's model from its stored YAML (``yolo_attn.checkpoints.saved``) with the
    class it names (detection, segmentation, pose, OBB, classification), through yolo-attn's parser; carried over:
    class names and count, the training settings, the task, the YAML's file name, and the head's inference choice
    (``end2end``: YOLO26's one-to-one branch) and ``max_det``."""

    bases = frozenset({"ultralytics.nn.tasks.BaseModel"})
    model_values = ("names", "nc", "args", "task", "yaml_file")
    head_values = {"_end2end": lambda v: isinstance(v, bool),
                   "max_det": lambda v: (isinstance(v, numbers.Integral) and not isinstance(v, bool)
                                         and 0 < v <= 100_000)}

    def build(self, cls, yaml):
        from yolo_attn.engines.ultralytics.model import build_model

        return build_model(yaml, nc=yaml.get("nc"), ch=yaml.get("channels", 3), level=logging.ERROR, model_class=cls)


def torch_load(file, *args, map_location=None, weights_only=None, **kwargs):
    """Drop-in for ultralytics' ``torch_load`` on checkpoint paths: the restricted, logged yolo-attn loader.

    ``weights_only`` is accepted and ignored: the load is always restricted (unless YOLO_ATTN_TRUST_CHECKPOINTS)."""
    if args or kwargs:
        raise TypeError(f"yolo-attn: unexpected torch_load arguments from ultralytics: {args} {sorted(kwargs)}")
    ckpt = load_checkpoint(file, map_location=map_location or "cpu")
    from yolo_attn.engines import lookup

    model = ckpt.get("ema") or ckpt.get("model")
    engine = lookup.of_model(model)
    if engine is None or engine.name != "ultralytics":
        what = engine.name if engine else type(model).__module__
        raise UsageError(f"{file} is a {what} checkpoint ({type(model).__module__}.{type(model).__name__}), not an "
                         f"ultralytics one. Use it with the {what} engine: scripts/val.sh / detect.sh / export.sh "
                         f"choose the engine from the checkpoint.")
    return ckpt


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays, dtypes and plain Python data only (what ultralytics' label caches hold)."""

    ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
               ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar")}

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED or module == "numpy.dtypes":
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"label cache names {module}.{name}, which is not array data")


def load_dataset_cache_file(path):
    """Drop-in for ultralytics' ``load_dataset_cache_file``: the cache dict, unpickled with ``_ArrayUnpickler``.

    A cache that names anything else raises, and ultralytics then rebuilds it from the labels."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
        if version not in read_header:
            raise ValueError(f"{path}: unsupported .npy version {version}")
        _, _, dtype = read_header[version](f)
        if not dtype.hasobject:
            raise ValueError(f"{path}: not an ultralytics label cache (no pickled dict)")
        return _ArrayUnpickler(f).load().item()
