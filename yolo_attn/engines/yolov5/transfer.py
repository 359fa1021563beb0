"""Structural weight transfer inside yolov5's training (``--weights`` into a changed architecture)."""
from yolo_attn.engines.common import transfer_by_structure


def intersect_dicts_by_structure(da, db, exclude=()):
    """Drop-in for yolov5's ``intersect_dicts(checkpoint_sd, model_sd, exclude)`` that matches by structure.

    Tensors whose row matched but whose shape differs cannot occur (shapes are part of the signature)."""
    from yolov5.utils.general import LOGGER

    return transfer_by_structure(LOGGER, da, db, exclude)
