"""The layer registry: names, aliases, channel rules and the factory.

What lives here: ``LayerSpec`` (read from each module's declaration), ``register``/``find_layer``, ``create_attn``,
and the engine-independent reading of YAML rows (``rows``: safe args, ``from`` checks, attention channel rules).
Imports: ``yolo_attn.modules`` and ``yolo_attn.errors`` only — never an engine or an application.
"""
from yolo_attn.registry import builtin  # noqa: F401  (registers the shipped layers)
from yolo_attn.registry.factory import build, create_attn, lookup
from yolo_attn.registry.layers import LayerSpec, find_layer, layer_names, register, registered_layers

__all__ = ["LayerSpec", "build", "create_attn", "find_layer", "layer_names", "lookup", "register",
           "registered_layers"]
