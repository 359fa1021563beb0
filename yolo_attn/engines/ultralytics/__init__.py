"""The ultralytics (8.4.190) engine adapter: registered layers by name in ultralytics model YAMLs (YOLOv5u, YOLOv8,
YOLO11, ...), through ultralytics' own ``YOLO("my.yaml")``, ``.train()``, ``.val()``, ``.predict()``, ``.export()``.

``install()`` (called by ``import yolo_attn``) patches nothing by itself: each patch of ``patches.PATCHES`` is
applied when the ultralytics module it targets is imported (or at once, for modules already imported), and
``uninstall()`` restores every original object. yolov5 imports parts of ultralytics too; none of those parts is
patched, so the yolov5 engine behaves the same with or without this adapter.

What lives here: parser.py (the YAML parser), yamls.py (scale and lookup of YAML files), checkpoint.py (restricted
loading), transfer.py, callbacks.py, model.py (building, checkpoints, identity rows), options.py (the CLI's
arguments as ultralytics' settings), version.py (the supported version and what we rely on). Imports: ultralytics,
the registry, modules, transfer, checkpoints; never an application (cli, heatmaps, benchmarks).
"""
from yolo_attn.engines._patch import PatchSet
from yolo_attn.engines.ultralytics.patches import PATCHES

_patches = PatchSet(PATCHES)


def install():
    """Patch ultralytics' modules as they are imported (and those already imported); idempotent."""
    _patches.install()


def uninstall():
    """Restore every object the patches replaced, and leave ultralytics modules imported later unpatched."""
    _patches.uninstall()


def installed():
    return _patches.installed


def applied():
    """Names of the patches applied so far, once per patched module."""
    return _patches.applied()
