"""yolo-attn: attention modules from the computer-vision literature as YOLOv5 layer types.

Importing the package makes yolov5 (7.0.14) work on today's stack (``yolo_attn.compat``) and makes it
build models through the safe, registry-aware YAML parser (``yolo_attn.registry.parser``), so every
registered layer can be named in a model YAML used by yolov5's own train/val/detect/export.
"""
from yolo_attn import compat as _compat

_compat.apply()

from yolo_attn.registry import LayerSpec, create_attn, find_layer, layer_names, register, registered_layers  # noqa: E402
from yolo_attn.registry import parser as _parser  # noqa: E402

_parser.install()

from yolo_attn.datasets import checks as _checks  # noqa: E402

_checks.install_guards()

__version__ = "0.1.0"
__all__ = ["LayerSpec", "create_attn", "find_layer", "layer_names", "register", "registered_layers"]
