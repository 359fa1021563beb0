"""The ultralytics objects the patches replaced, so that the adapter can still call (and restore) the originals
(remembered by ``yolo_attn.engines._patch.replace``, the one patch primitive)."""
from yolo_attn.engines._patch import ORIGINALS as _STOCK  # noqa: F401  (our replacement -> the ultralytics object)
from yolo_attn.engines._patch import original_of as stock_of


def original(module_name, attr):
    """ultralytics' own ``module.attr`` (the stock object even while a patch replaces it)."""
    import importlib

    return stock_of(getattr(importlib.import_module(module_name), attr))
