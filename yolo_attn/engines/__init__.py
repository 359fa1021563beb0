"""Engine adapters: each makes the registered layers usable by one YOLO engine's own tools (train, val, detect,
export) and carries every fix that engine needs, as named, undoable patches (``_patch.Patch``).

What lives here: ``yolov5/``. Imports: the engine's package, and yolo-attn's modules, registry, transfer and
checkpoints; never an application (cli, heatmaps, benchmarks, datasets tools).
"""


def install():
    """Install every engine adapter (each patches its engine's modules only when they are imported)."""
    from yolo_attn.engines import yolov5

    yolov5.install()
