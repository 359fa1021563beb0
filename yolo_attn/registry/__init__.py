"""The layer registry: names, aliases and the factory.

What lives here: ``register``/``find_layer`` (by name and alias, case-insensitive) holding the ``LayerSpec`` each
module declares (``yolo_attn.modules``; re-exported here), ``create_attn``/``build``, and the suggestions of an
unknown-name error. Reading a model YAML's rows is ``yolo_attn.yaml_rows``, the layer above.
Imports: ``yolo_attn.modules`` and ``yolo_attn.errors`` only — never an engine or an application.
"""
from yolo_attn.registry import builtin  # noqa: F401  (registers the shipped layers)
from yolo_attn.registry.factory import build, create_attn, lookup
from yolo_attn.registry.layers import LayerSpec, find_layer, layer_names, register, registered_layers

__all__ = ["LayerSpec", "build", "create_attn", "find_layer", "layer_names", "lookup", "register",
           "registered_layers"]
