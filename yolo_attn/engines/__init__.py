"""Engine adapters: each makes the registered layers usable by one YOLO engine's own tools (train, val, detect,
export) and carries every fix that engine needs, as named, undoable patches (``_patch.Patch``).

What lives here: ``yolov5/`` (yolov5 7.0.14, anchor-based YAMLs with ``anchors:``), ``ultralytics/`` (ultralytics
8.4.190: YOLOv5u, YOLOv8, YOLO11 YAMLs), and ``engine_of_yaml`` / ``engine_of_checkpoint``: which engine a file is
for. Imports: the engine's package, and yolo-attn's modules, registry, transfer and checkpoints; never an application
(cli, heatmaps, benchmarks, datasets tools).
"""
ENGINES = ("yolov5", "ultralytics")


def install():
    """Install every engine adapter (each patches its engine's modules only when they are imported)."""
    from yolo_attn.engines import ultralytics, yolov5

    yolov5.install()
    ultralytics.install()


def engine_of_yaml(d):
    """The engine a model YAML dict is written for: 'yolov5' (anchor-based, an ``anchors:`` key, which yolov5 needs)
    or 'ultralytics' (anchor-free heads: no anchors)."""
    return "yolov5" if "anchors" in d else "ultralytics"


def engine_of_checkpoint(path):
    """'ultralytics' or 'yolov5' from the classes a checkpoint's pickle names (scanned, nothing unpickled); None
    for a file that names neither (or is not a checkpoint)."""
    import torch

    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except Exception:  # noqa: BLE001  (not a readable archive: the loader explains it)
        return None
    if any(n.startswith("ultralytics.nn.tasks.") for n in names):
        return "ultralytics"
    if any(n.startswith(("yolov5.models.", "models.yolo.")) for n in names):
        return "yolov5"
    return None
