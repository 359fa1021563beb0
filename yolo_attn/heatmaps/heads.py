"""The detection head a heatmap explains, asked of the model's engine: ``head_of(model)`` returns the engine's
adapter (``yolo_attn.engines.heatmap_head.HeatmapHead``: ``targets``, ``split``, ``nms``, ``target_value``,
``target_hint``); the adapters live in the engine folders (``engines/yolov5/heatmap.py``: yolov5's anchor-based
Detect; ``engines/ultralytics/heatmap.py``: ultralytics' anchor-free Detect)."""
from yolo_attn import engines
from yolo_attn.errors import BadParameter, UsageError


def head_of(model, source="the model"):
    """The head adapter of ``model``'s engine; UsageError (naming ``source``) for a model no engine owns or a head
    its engine cannot explain."""
    engine = engines.of(model)
    if engine is None:
        raise UsageError(f"{source} is not a yolov5 detection model (its last layer must be Detect)")
    return engine.heatmap_head(model, source)


def check_target(head, target):
    if target not in head.targets:
        raise BadParameter("target", f"{{name}} {target}: choose one of {', '.join(head.targets)}"
                                     f"{head.target_hint(target)}")
