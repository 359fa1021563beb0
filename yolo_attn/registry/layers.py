"""The registry of layer types: the single source of truth for names, inputs and channel rules."""
import difflib
import inspect
import unicodedata
from dataclasses import dataclass, field
from typing import Optional

from torch import nn

from yolo_attn.modules import AttentionModule


@dataclass(frozen=True)
class LayerSpec:
    """How a layer type is found by name and wired into a YOLO model.

    inputs: 1 for ``m(x)``; 2 for fusion layers ``m(x, y)`` whose ``from`` is ``[a, b]`` of equal channels.
    changes_channels: False (the layer keeps its input channels) or True (its first YAML arg is the output
    channel count, scaled by ``width_multiple`` like yolov5's own Conv).
    out_from_first: for two-input layers whose inputs may differ in channels (and resolution), e.g. an attention
    gate ``m(skip, gate)``: the constructor takes both channel counts, ``m(c_a, c_b, ...)``, and the output has the
    first input's channels. False: the two inputs must have equal channels (``m(c, ...)``).
    members: the args are names of other registered one-input layers, built by the registry (``Chain``).
    starts_as_identity: a fresh layer computes exactly its input; identity start leaves it unwrapped.
    placements, cpu_goal: the shipped variants and the latency goal (``yolo_attn.modules.LayerInfo``).
    foreign_args: what other projects' positional args after a leading channel count mean (``LayerInfo``).
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
    members: bool = False
    starts_as_identity: bool = False
    placements: tuple = field(default=())
    cpu_goal: Optional[float] = None
    foreign_args: tuple = field(default=())

    @classmethod
    def of(cls, layer_cls):
        """The spec a class declares with ``yolo_attn.modules.declare_layer``."""
        info = getattr(layer_cls, "LAYER_INFO", None)
        if info is None:
            raise TypeError(f"{layer_cls.__name__} has no layer declaration (decorate it with declare_layer)")
        return cls(info.name, layer_cls, info.inputs, info.paper, info.family, yaml_args=info.yaml_args,
                   changes_channels=info.channels == "out", aliases=tuple(info.aliases),
                   out_from_first=info.channels == "first", members=info.members,
                   starts_as_identity=info.starts_as_identity, placements=tuple(info.placements),
                   cpu_goal=info.cpu_goal, foreign_args=tuple(info.foreign_args))

    @property
    def has_gates(self):
        """Whether the layer's gates can be read (it implements the AttentionModule contract)."""
        return issubclass(self.cls, AttentionModule)

    @property
    def keeps_channels(self):
        """One input, output channels = input channels: the layers that can be inserted after any row."""
        return self.inputs == 1 and not self.changes_channels

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
    """Add a layer type (a LayerSpec, or a class declared with ``declare_layer``). Names are unique
    case-insensitively and must not shadow each other; a clash leaves the registry unchanged."""
    if isinstance(spec, type):
        spec = LayerSpec.of(spec)
    if not (isinstance(spec.cls, type) and issubclass(spec.cls, nn.Module)):
        raise TypeError(f"{spec.name}: registered layers must be nn.Module classes, got {spec.cls!r}")
    if spec.inputs not in (1, 2):
        raise ValueError(f"{spec.name}: inputs must be 1 or 2, got {spec.inputs}")
    if spec.out_from_first and (spec.inputs != 2 or spec.changes_channels):
        raise ValueError(f"{spec.name}: out_from_first is for two-input layers that keep the first input's channels")
    keys = [key.lower() for key in (spec.name, *spec.aliases)]
    for key in keys:
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
    """" Did you mean 'X'?" for a close name, or what the name is in other projects when yolo-attn lacks it.

    Compatibility-normalised (NFKC: full-width 'ＣＢＡＭ' reads 'CBAM') and case-insensitive."""
    from yolo_attn.registry.elsewhere import elsewhere

    text = unicodedata.normalize("NFKC", str(name))
    what = elsewhere(text)
    if what:
        return f" {text!r} is {what}; yolo-attn has no layer that computes it."
    lowered = {key: spec.name for key, spec in _REGISTRY.items()}  # aliases point to their layer
    lowered.update({c.lower(): c for c in candidates})
    if text.lower() in lowered and text != str(name):
        return f" Did you mean {lowered[text.lower()]!r}?"
    close = difflib.get_close_matches(text.lower(), list(lowered), n=1, cutoff=0.7)
    return f" Did you mean {lowered[close[0]]!r}?" if close else ""
