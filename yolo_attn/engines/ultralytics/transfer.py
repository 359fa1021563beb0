"""Structural weight transfer inside ultralytics (``YOLO(yaml).load(pt)``, ``pretrained=pt``): its
``BaseModel.load`` matches checkpoint tensors by name, so every row after an inserted one starts from scratch."""
from yolo_attn.engines.common import transfer_by_structure


def intersect_dicts_by_structure(da, db, exclude=()):
    """Drop-in for ultralytics' ``intersect_dicts(checkpoint_sd, model_sd, exclude)`` that matches rows by structure
    (returns the checkpoint's tensors under the model's names, so ultralytics' "Transferred N/M" stays right)."""
    from ultralytics.utils import LOGGER

    return transfer_by_structure(LOGGER, da, db, exclude)
