"""The registry of attention layer types: the single source of truth for names, inputs and channel rules."""
import difflib
import inspect
from dataclasses import dataclass, field

from torch import nn


@dataclass(frozen=True)
class LayerSpec:
    """How a layer type is found by name and wired into a YOLOv5 model.

    inputs: 1 for ``m(x)``; 2 for fusion layers ``m(x, y)`` whose ``from`` is ``[a, b]`` of equal channels.
    changes_channels: False (the layer keeps its input channels) or True (its first YAML arg is the output
    channel count, scaled by ``width_multiple`` like yolov5's own Conv).
    out_from_first: for two-input layers whose inputs may differ in channels (and resolution), e.g. an attention
    gate ``m(skip, gate)``: the constructor takes both channel counts, ``m(c_a, c_b, ...)``, and the output has the
    first input's channels. False: the two inputs must have equal channels (``m(c, ...)``).
    """

    name: str
    cls: type
    inputs: int
    paper: str
    family: str
    yaml_args: str = "[]"
    changes_channels: bool = False
    aliases: tuple = field(default=())
    out_from_first: bool = False

    @property
    def channel_args(self):
        """How many leading constructor args are channel counts: 2 for (in, out) or (c_a, c_b), else 1."""
        return 2 if self.changes_channels or self.out_from_first else 1

    @property
    def hyper_parameters(self):
        """Constructor parameters after the channel argument(s), with defaults, as YAML args may give them."""
        params = list(inspect.signature(self.cls.__init__).parameters.values())[1:]
        skip = self.channel_args
        return {p.name: p.default for p in params[skip:] if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


_REGISTRY = {}


def register(spec):
    """Add a layer type. Names are unique case-insensitively and must not shadow each other."""
    if not (isinstance(spec.cls, type) and issubclass(spec.cls, nn.Module)):
        raise TypeError(f"{spec.name}: registered layers must be nn.Module classes, got {spec.cls!r}")
    if spec.inputs not in (1, 2):
        raise ValueError(f"{spec.name}: inputs must be 1 or 2, got {spec.inputs}")
    if spec.out_from_first and (spec.inputs != 2 or spec.changes_channels):
        raise ValueError(f"{spec.name}: out_from_first is for two-input layers that keep the first input's channels")
    keys = [key.lower() for key in (spec.name, *spec.aliases)]
    for key in keys:  # check every name before adding any, so a clash leaves the registry unchanged
        if key in _REGISTRY and _REGISTRY[key] is not spec:
            raise ValueError(f"layer name {key!r} is already registered for {_REGISTRY[key].name}")
    for key in keys:
        _REGISTRY[key] = spec
    return spec


def find_layer(name):
    """The LayerSpec registered under ``name`` (case-insensitive), or None."""
    return _REGISTRY.get(str(name).lower())


def registered_layers():
    """Every registered LayerSpec once, in registration order."""
    seen = {}
    for spec in _REGISTRY.values():
        seen.setdefault(spec.name, spec)
    return list(seen.values())


def layer_names():
    return [spec.name for spec in registered_layers()]


def suggest(name, candidates):
    close = difflib.get_close_matches(str(name), list(candidates), n=1, cutoff=0.6)
    if not close:
        lowered = {c.lower(): c for c in candidates}
        close = [lowered[c] for c in difflib.get_close_matches(str(name).lower(), list(lowered), n=1, cutoff=0.6)]
    return f" Did you mean {close[0]!r}?" if close else ""
