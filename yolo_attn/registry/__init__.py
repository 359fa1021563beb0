"""The layer registry, the timm-style factory and the safe YOLOv5 YAML parser."""
from yolo_attn.registry import builtin  # noqa: F401  (registers the shipped layers)
from yolo_attn.registry.factory import create_attn
from yolo_attn.registry.layers import LayerSpec, find_layer, layer_names, register, registered_layers

__all__ = ["LayerSpec", "create_attn", "find_layer", "layer_names", "register", "registered_layers"]
