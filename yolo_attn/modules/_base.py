"""The contract every yolo-attn attention module fulfils, and the declaration that makes it a YOLO layer type.

``AttentionModule``: an ``nn.Module`` whose gates can be read. ``attention_maps(x[, y])`` returns the named tensors
the module multiplies (or blends) its input with, computed from the same input as ``forward``; ``applied_gates``
returns the ones that are drawn over an image (``heatmap.sh --attention``), each N×C×H×W as applied.

``declare_layer(...)``: one declaration next to each class — its YAML name and aliases, paper, number of inputs,
channel rule, where the shipped yolov5s variant places it and its latency goal — made a ``LayerSpec`` for the class
(``LAYER_INFO``). The registry holds that object itself; the shipped YAMLs, the layer table of docs/layers.md and the benchmarks read
it there. Nothing else lists the layers.
"""
import inspect
from dataclasses import dataclass, replace
from typing import ClassVar, Optional

import torch
from torch import nn

from ._common import no_second_input


class AttentionModule(nn.Module):
    """Base class of the attention layers: ``forward`` plus readable gates."""

    LAYER_INFO: ClassVar[Optional["LayerSpec"]] = None  # set by declare_layer

    def attention_maps(self, x: torch.Tensor, y: Optional[torch.Tensor] = None) -> dict:
        """{name: tensor}: the module's gates for input ``x`` (and ``y`` for two-input layers)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement attention_maps")

    def applied_gates(self, x: torch.Tensor, y: Optional[torch.Tensor] = None) -> dict:
        """{name: N×C×H×W tensor}: the gates as they multiply the input (C or H·W may be 1), for drawing."""
        return {k: v for k, v in self.attention_maps(x, y).items() if isinstance(v, torch.Tensor) and v.dim() == 4}


class DirectionalAttention(AttentionModule):
    """x · a_h · a_w: a gate along the height times a gate along the width (Coordinate Attention, ELA). Subclasses
    give ``_attn(x) -> (a_h N×C×H×1, a_w N×C×1×W)``."""

    def _attn(self, x: torch.Tensor):
        raise NotImplementedError

    def attention_maps(self, x: torch.Tensor, y: Optional[torch.Tensor] = None) -> dict:
        no_second_input(y)
        a_h, a_w = self._attn(x)
        return {'h': a_h, 'w': a_w}

    def applied_gates(self, x: torch.Tensor, y: Optional[torch.Tensor] = None) -> dict:
        """The gate the module applies, a_h ⊗ a_w (C×H×W), rather than its two 1-D factors."""
        a_h, a_w = self.attention_maps(x, y).values()
        return {'h⊗w': a_h * a_w}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a_h, a_w = self._attn(x)
        return x * a_h * a_w


# Where the shipped yolov5s variant puts a layer (``yolo_attn.model_yaml.variants`` knows each place's rows):
PLACES = {
    "stage_outputs": "after the C3 that ends each backbone stage feeding the neck (P3, P4, P5)",
    "end_of_backbone": "once after SPPF, at the lowest resolution",
    "neck_fusions": "instead of the neck's two-input Concats",
    "stage_downsamples": "instead of the stride-2 3x3 Convs that open the P3, P4, P5 stages",
    "top_down_skips": "on the neck's top-down skips, gated by the coarser map",
    "c3_bottlenecks": "inside the bottlenecks of the backbone's C3 blocks",
}


@dataclass(frozen=True)
class Placement:
    """One shipped variant: ``where`` (a key of PLACES), the row's args, and the YAML header's first lines."""

    where: str
    header: str
    args: tuple = ()
    file_tag: str = ""  # file name part after "yolov5s-" (default: the layer name in lower case)

    def __post_init__(self):
        if self.where not in PLACES:
            raise ValueError(f"unknown placement {self.where!r}; known: {', '.join(PLACES)}")


@dataclass(frozen=True)
class LayerSpec:
    """A YOLO layer type: how it is found by name and wired into a model YAML. Each shipped class carries its own
    (``declare_layer``: ``LAYER_INFO``) and the registry holds that very object; ``LayerSpec(name, cls, inputs, paper,
    family, ...)`` describes a layer of your own for ``yolo_attn.register``. Checked once, when it is made.

    inputs: 1 (``m(x)``) or 2 (``m(x, y)``, ``from: [a, b]`` of equal channels).
    changes_channels: the first YAML arg is the output channel count, scaled by ``width_multiple`` like yolov5's own
      Conv (False: the layer keeps its input channels).
    out_from_first: for two-input layers whose inputs may differ in channels (and resolution), e.g. an attention gate
      ``m(skip, gate)``: the constructor takes both channel counts, ``m(c_a, c_b, ...)``, and the output has the first
      input's channels. False: the two inputs must have equal channels (``m(c, ...)``).
    members: the YAML args are the names of other registered one-input layers (``Chain``), built by the registry.
    starts_as_identity: a fresh module computes exactly its input (zero-initialised output), so it needs no
      identity-start wrapper when inserted into a pretrained network.
    placements: the shipped yolov5s variants (``Placement``); cpu_goal: the CPU latency goal of its shipped variant
      (ratio to the baseline), if one is set.
    foreign_args: for one-input, channel-keeping layers, what the positional args after a leading channel count mean
      in other projects' YAMLs (``[-1, 1, CBAM, [1024, 3]]``: the input channels, then ``spatial_kernel_size``);
      a name of the constructor, or ``reduction`` (an integer r, read as ``rd_ratio = 1/r``).
    """

    name: str
    cls: type
    inputs: int
    paper: str
    family: str
    yaml_args: str = "[]"
    changes_channels: bool = False
    aliases: tuple = ()
    out_from_first: bool = False
    members: bool = False
    starts_as_identity: bool = False
    placements: tuple = ()
    cpu_goal: Optional[float] = None
    foreign_args: tuple = ()

    def __post_init__(self):
        if not (isinstance(self.cls, type) and issubclass(self.cls, nn.Module)):
            raise TypeError(f"{self.name}: registered layers must be nn.Module classes, got {self.cls!r}")
        if self.inputs not in (1, 2):
            raise ValueError(f"{self.name}: inputs must be 1 or 2, got {self.inputs}")
        if self.out_from_first and (self.inputs != 2 or self.changes_channels):
            raise ValueError(
                f"{self.name}: out_from_first is for two-input layers that keep the first input's channels")

    @classmethod
    def of(cls, layer_cls):
        """The spec a class declares with ``declare_layer`` (a subclass that does not declare its own: the same, for
        the subclass)."""
        spec = getattr(layer_cls, "LAYER_INFO", None)
        if spec is None:
            raise TypeError(f"{layer_cls.__name__} has no layer declaration (decorate it with declare_layer)")
        return spec if spec.cls is layer_cls else replace(spec, cls=layer_cls)

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


def declare_layer(*, inputs=1, **spec):
    """Class decorator: attach the class's ``LayerSpec`` (every field but ``cls``; ``inputs`` defaults to 1) to an
    ``AttentionModule`` subclass as ``LAYER_INFO``."""

    def decorate(cls):
        if not (isinstance(cls, type) and issubclass(cls, AttentionModule)):
            raise TypeError(f"declare_layer: {cls!r} is not an AttentionModule subclass")
        cls.LAYER_INFO = LayerSpec(cls=cls, inputs=inputs, **spec)
        return cls

    return decorate
