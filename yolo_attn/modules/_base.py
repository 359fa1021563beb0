"""The contract every yolo-attn attention module fulfils, and the declaration that makes it a YOLO layer type.

``AttentionModule``: an ``nn.Module`` whose gates can be read. ``attention_maps(x[, y])`` returns the named tensors
the module multiplies (or blends) its input with, computed from the same input as ``forward``; ``applied_gates``
returns the ones that are drawn over an image (``heatmap.sh --attention``), each N×C×H×W as applied.

``declare_layer(...)``: one declaration next to each class — its YAML name and aliases, paper, number of inputs,
channel rule, where the shipped yolov5s variant places it and its latency goal. The registry, the shipped YAMLs,
the README table and the benchmarks read it from the class (``LAYER_INFO``); nothing else lists the layers.
"""
from dataclasses import dataclass, field
from typing import ClassVar, Optional

import torch
from torch import nn


class AttentionModule(nn.Module):
    """Base class of the attention layers: ``forward`` plus readable gates."""

    LAYER_INFO: ClassVar[Optional["LayerInfo"]] = None  # set by declare_layer

    def attention_maps(self, x: torch.Tensor, y: Optional[torch.Tensor] = None) -> dict:
        """{name: tensor}: the module's gates for input ``x`` (and ``y`` for two-input layers)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement attention_maps")

    def applied_gates(self, x: torch.Tensor, y: Optional[torch.Tensor] = None) -> dict:
        """{name: N×C×H×W tensor}: the gates as they multiply the input (C or H·W may be 1), for drawing."""
        return {k: v for k, v in self.attention_maps(x, y).items() if isinstance(v, torch.Tensor) and v.dim() == 4}


# Where the shipped yolov5s variant puts a layer (``yolo_attn.model_yaml.variants`` knows each place's rows):
PLACES = {
    "stage_outputs": "after the C3 that ends each backbone stage feeding the neck (P3, P4, P5)",
    "end_of_backbone": "once after SPPF, at the lowest resolution",
    "neck_fusions": "instead of the neck's two-input Concats",
    "stage_downsamples": "instead of the stride-2 3x3 Convs that open the P3, P4, P5 stages",
    "top_down_skips": "on the neck's top-down skips, gated by the coarser map",
    "c3_bottlenecks": "inside the bottlenecks of the backbone's C3 blocks",
}
CHANNEL_RULES = ("keep", "out", "first")


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
class LayerInfo:
    """What a YOLO model YAML and the tools need to know about a layer type.

    inputs: 1 (``m(x)``) or 2 (``m(x, y)``, ``from: [a, b]``).
    channels: 'keep' (output = input channels), 'out' (the first YAML arg is the output channel count, scaled by
      width like yolov5's Conv) or 'first' (two inputs of any channels; output = the first input's).
    members: the YAML args are the names of other registered layers (``Chain``), built by the registry.
    starts_as_identity: a fresh module computes exactly its input (zero-initialised output), so it needs no
      identity-start wrapper when inserted into a pretrained network.
    cpu_goal: the CPU latency goal of its shipped variant (ratio to the baseline), if one is set.
    foreign_args: for one-input, channel-keeping layers, what the positional args after a leading channel count mean
      in other projects' YAMLs (``[-1, 1, CBAM, [1024, 3]]``: the input channels, then ``spatial_kernel_size``);
      a name of the constructor, or ``reduction`` (an integer r, read as ``rd_ratio = 1/r``).
    """

    name: str
    paper: str
    family: str
    inputs: int = 1
    channels: str = "keep"
    aliases: tuple = ()
    yaml_args: str = "[]"
    members: bool = False
    starts_as_identity: bool = False
    placements: tuple = field(default=())
    cpu_goal: Optional[float] = None
    foreign_args: tuple = ()

    def __post_init__(self):
        if self.inputs not in (1, 2):
            raise ValueError(f"{self.name}: inputs must be 1 or 2, got {self.inputs}")
        if self.channels not in CHANNEL_RULES:
            raise ValueError(f"{self.name}: channels must be one of {CHANNEL_RULES}, got {self.channels!r}")
        if self.channels == "first" and self.inputs != 2:
            raise ValueError(f"{self.name}: channels='first' is for two-input layers")


def declare_layer(**info):
    """Class decorator: attach a ``LayerInfo`` (see there) to an ``AttentionModule`` subclass."""

    def decorate(cls):
        if not (isinstance(cls, type) and issubclass(cls, AttentionModule)):
            raise TypeError(f"declare_layer: {cls!r} is not an AttentionModule subclass")
        cls.LAYER_INFO = LayerInfo(**info)
        return cls

    return decorate
