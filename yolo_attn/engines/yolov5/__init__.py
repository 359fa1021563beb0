"""The yolov5 (7.0.14) engine adapter: the safe parser, structural transfer and every fix yolov5 needs today.

``install()`` (called by ``import yolo_attn``) patches nothing by itself: it applies each patch of ``patches.PATCHES``
when the yolov5 module it targets is imported (or at once, for modules already imported). A program that uses only
``yolo_attn.modules``/``create_attn``/``inject`` and never imports yolov5 therefore keeps torch, numpy, Pillow and
warnings exactly as they were. ``uninstall()`` restores every original object.

What lives here: parser.py (the YAML parser), patches.py (the list of patches), noval.py, data.py, transfer.py,
model.py (quiet building, identity rows). Imports: yolov5, the registry, modules, transfer, checkpoints; never an
application (cli, heatmaps, benchmarks).
"""
from yolo_attn.engines._patch import PatchSet
from yolo_attn.engines.yolov5.patches import PATCHES

_patches = PatchSet(PATCHES)


def install():
    """Patch yolov5's modules as they are imported (and those already imported); idempotent."""
    _patches.install()


def uninstall():
    """Restore every object the patches replaced, and leave yolov5 modules imported later unpatched."""
    _patches.uninstall()


def installed():
    return _patches.installed


def applied():
    """Names of the patches applied so far, once per patched module."""
    return _patches.applied()
