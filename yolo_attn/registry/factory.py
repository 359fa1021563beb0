"""timm-style factory: ``create_attn('cbam', 256)``, and the one place a layer is built from its spec."""
import inspect

from yolo_attn.errors import ModelConfigError
from yolo_attn.modules._params import check_hyper_parameters
from yolo_attn.registry.layers import find_layer, layer_names, suggest


def lookup(name):
    """The spec of a registered layer; a ModelConfigError naming the closest and all known names otherwise."""
    spec = find_layer(name)
    if spec is None:
        raise ModelConfigError(
            f"unknown attention layer {name!r}.{suggest(name, layer_names())} Known: {', '.join(layer_names())}")
    return spec


def _member(item, channels):
    """One Chain member from 'name', [name, *args] or [name, *args, {kwargs}]."""
    if isinstance(item, (list, tuple)) and item and isinstance(item[0], str):
        name, args = item[0], list(item[1:])
    elif isinstance(item, str):
        name, args = item, []
    else:
        raise ValueError(f"Chain: each member is a layer name or [name, args...], got {item!r}")
    kwargs = args.pop() if args and isinstance(args[-1], dict) else {}
    spec = find_layer(name)
    if spec is None:
        raise ValueError(f"Chain: unknown layer {name!r}; known: {', '.join(layer_names())}")
    if not spec.keeps_channels:
        raise ValueError(f"Chain: {spec.name} cannot be chained; members must be one-input layers that keep the "
                         f"channel count (put channel-changing or two-input layers on their own row)")
    return build(spec, channels, *args, **kwargs)


def hyper_parameter_values(spec, channels, args, kwargs):
    """{name: value} of the hyper-parameters ``args``/``kwargs`` give (after the channel argument(s))."""
    try:
        bound = inspect.signature(spec.cls).bind_partial(channels, *args, **kwargs)
    except TypeError as e:
        raise ValueError(f"{spec.name}: {e}") from None
    return {k: v for k, v in bound.arguments.items() if k in spec.hyper_parameters}


def build(spec, channels, *args, **kwargs):
    """An instance of ``spec`` for ``channels`` input channels (members of a Chain built by name); hyper-parameters
    outside their valid range (``yolo_attn.modules._params``) are refused before anything is built."""
    if not spec.members:
        check_hyper_parameters(spec.name, channels, hyper_parameter_values(spec, channels, args, kwargs))
    if spec.members:
        return spec.cls(channels, *(_member(item, channels) for item in args), **kwargs)
    return spec.cls(channels, *args, **kwargs)


def create_attn(name, channels, *args, **kwargs):
    """Build the registered attention layer ``name`` (case-insensitive) for ``channels`` input channels.

    Two-input layers (``aff``, ``iaff``, ``attngate``) are called as ``m(x, y)``; the attention gate takes the gating
    signal's channels as the first extra argument (``create_attn('attngate', 128, 256)``, default: equal). Layers that
    change the channel count take the output channels as the first extra argument (default: ``channels``).
    ``create_attn('chain', 256, 'se', ['cbam', {'rd_ratio': 0.125}])`` chains layers by name.
    """
    return build(lookup(name), channels, *args, **kwargs)
