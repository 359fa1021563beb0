"""timm-style factory: ``create_attn('cbam', 256)``."""
from yolo_attn.errors import ModelConfigError
from yolo_attn.registry.layers import find_layer, layer_names, suggest


def create_attn(name, channels, *args, **kwargs):
    """Build the registered attention layer ``name`` (case-insensitive) for ``channels`` input channels.

    Two-input layers (``aff``, ``iaff``, ``attngate``) are called as ``m(x, y)``; the attention gate takes the gating
    signal's channels as the first extra argument (``create_attn('attngate', 128, 256)``, default: equal). Layers that
    change the channel count take the output channels as the first extra argument (default: ``channels``).
    """
    spec = find_layer(name)
    if spec is None:
        raise ModelConfigError(
            f"unknown attention layer {name!r}.{suggest(name, layer_names())} Known: {', '.join(layer_names())}")
    return spec.cls(channels, *args, **kwargs)
