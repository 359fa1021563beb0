"""The ultralytics objects the patches replaced, so that the adapter can still call (and restore) the originals."""
_STOCK = {}  # our replacement -> the ultralytics object it replaced


def swap(module, attr, ours):
    """Set ``module.attr = ours``; returns the undo. The original is remembered once per replacement, also when a
    module imported ``attr`` from an already patched one (``from .tasks import parse_model``)."""
    current = vars(module).get(attr)
    stock = _STOCK.get(ours) if current is ours else current
    if stock is not None:
        _STOCK.setdefault(ours, stock)
    setattr(module, attr, ours)

    def undo():
        if vars(module).get(attr) is ours:
            setattr(module, attr, _STOCK.get(ours, stock))

    return undo


def stock_of(obj):
    """The ultralytics original of ``obj`` if it is one of our replacements, else ``obj``."""
    try:
        return _STOCK.get(obj, obj)
    except TypeError:  # unhashable
        return obj


def original(module_name, attr):
    """ultralytics' own ``module.attr`` (the stock object even while a patch replaces it)."""
    import importlib

    return stock_of(getattr(importlib.import_module(module_name), attr))
