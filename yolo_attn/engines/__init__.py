"""Engines: each makes the registered layers usable by one YOLO engine and answers, as an ``Engine`` object
(``base.py``), everything that differs between engines.

``of(thing)`` is the one rule for "which engine is this": a model-YAML dict or file, a --cfg name, a checkpoint, a
run folder, an ONNX file or a built model. ``get(name)`` returns an engine by name; ``register`` adds one (a third
engine is a folder; see ``engines/README.md``). Engines registered later are asked first.

What lives here: ``base.py`` (the contract), ``lookup.py`` (the registered engines and ``of``), ``yolov5/`` (yolov5 7.0.14, anchor-based YAMLs with ``anchors:``),
``ultralytics/`` (ultralytics 8.4.190: YOLOv5u, YOLOv8, YOLO11 YAMLs). Imports: the engine's package, and
yolo-attn's layers below (modules, registry, yaml_rows, core); never an application; no engine folder imports
another.
"""
from yolo_attn.engines.lookup import (Engine, cfg_not_found, default, find_cfg, get, install, names, of,  # noqa: F401
                                     of_checkpoint, of_model, of_onnx, of_yaml, register, registered, unregister,
                                     weights_file)


def _register_builtin() -> None:
    from yolo_attn.engines.ultralytics.engine import UltralyticsEngine
    from yolo_attn.engines.yolov5.engine import Yolov5Engine

    # yolov5 last: asked first, as before (a YAML with anchors is yolov5's; ultralytics takes the rest)
    register(UltralyticsEngine())
    register(Yolov5Engine())


_register_builtin()

__all__ = ["Engine", "cfg_not_found", "default", "find_cfg", "get", "install", "names", "of", "of_checkpoint",
           "of_model", "of_onnx", "of_yaml", "register", "registered", "unregister", "weights_file"]
