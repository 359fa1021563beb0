"""Spatial gates: SGE (Spatial Group-wise Enhance) and scSE (concurrent spatial and channel SE)."""
import torch
import torch.nn as nn

from ._base import AttentionModule, Placement, declare_layer
from ._common import check_divisible, get_act_layer, make_rd_channels, no_second_input
from ._precision import float32_statistics


@declare_layer(name="SGE", paper="Li et al., Spatial Group-wise Enhance, arXiv 2019", family="group",
               aliases=("SpatialGroupEnhance",), foreign_args=("groups",),
               placements=(Placement("stage_outputs",
                                     "YOLOv5s + Spatial Group-wise Enhance (Li et al., 2019), 64 groups."),))
class SGE(AttentionModule):
    """Spatial Group-wise Enhance: per channel group, a spatial gate from the group's similarity to its mean.

    For each of G groups: g = GAP(group); c = Σ_channels(g ⊙ group) at every position; ĉ = (c − mean) / (std + ε)
    over the positions; a = w·ĉ + b with one learnable (w, b) per group; out = group · σ(a). 2·G parameters.

    Paper: Li, Hu, Yang, "Spatial Group-wise Enhance: Improving Semantic Feature Learning in Convolutional
    Networks", arXiv 1905.09646 (2019). Official code: github.com/implus/PytorchInsight (sge.py).
    Defaults: groups=64 (the paper's), eps=1e-5; w initialised to 0 and b to 1, as in the official code.
    Deviation from the official code: the standard deviation is the population one (1/m over the m positions,
    the paper's formula); the official code uses torch.std's unbiased estimate, which is NaN on a 1×1 map
    (here ĉ = 0 there). Not to be confused with the scSE code that a widely copied tutorial labels "SGE".
    `groups` must divide the channel count.
    attention_maps: {'spatial': N×G×H×W}, the gate of each group.
    """

    def __init__(self, channels, groups=64, eps=1e-5):
        super().__init__()
        check_divisible('SGE', channels, groups)
        self.groups, self.eps = groups, eps
        self.weight = nn.Parameter(torch.zeros(1, groups, 1, 1))
        self.bias = nn.Parameter(torch.ones(1, groups, 1, 1))

    @float32_statistics  # sim reaches C/G·x², its variance x⁴: past float16's range at activations of ~10
    def _attn(self, x):
        n, c, h, w = x.shape
        xg = x.reshape(n, self.groups, c // self.groups, h, w)
        sim = (xg * xg.mean((3, 4), keepdim=True)).sum(2)  # N×G×H×W
        mean = sim.mean((2, 3), keepdim=True)
        std = (sim - mean).square().mean((2, 3), keepdim=True).sqrt()
        return torch.sigmoid((sim - mean) / (std + self.eps) * self.weight + self.bias)

    def attention_maps(self, x, y=None):
        no_second_input(y)
        return {'spatial': self._attn(x)}

    def forward(self, x):
        n, c, h, w = x.shape
        gate = self._attn(x).unsqueeze(2)  # N×G×1×H×W
        return (x.reshape(n, self.groups, c // self.groups, h, w) * gate).reshape(n, c, h, w)


@declare_layer(name="scSE", paper="Roy et al., Concurrent Spatial and Channel Squeeze & Excitation, MICCAI 2018",
               family="hybrid",
               placements=(Placement("stage_outputs", "YOLOv5s + scSE (Roy et al., MICCAI 2018), r=2, x·cSE + x·sSE."),))
class scSE(AttentionModule):
    """Concurrent spatial and channel squeeze & excitation: x·cSE(x) + x·sSE(x).

    cSE: GAP -> 1x1 C -> C/r (bias) -> act -> 1x1 C/r -> C (bias) -> σ, a channel gate (SE with r=2);
    sSE: 1x1 C -> 1 (bias) -> σ, a spatial gate. The two recalibrated maps are combined.

    Paper: Roy, Navab, Wachinger, "Concurrent Spatial and Channel 'Squeeze & Excitation' in Fully
    Convolutional Networks", MICCAI 2018 (journal version: IEEE TMI 2019, which also studies max).
    Official code: github.com/ai-med/squeeze_and_excitation (ChannelSpatialSELayer combines with max).
    Defaults: r = 2 (rd_ratio=1/2), combine='add' (the MICCAI paper; 'max' gives the official code's
    element-wise maximum), ReLU, sigmoid. Choices: FCs as 1x1 convs with bias (same maths as Linear).
    attention_maps: {'channel': N×C×1×1, 'spatial': N×1×H×W}.
    """

    def __init__(self, channels, rd_ratio=1 / 2, rd_channels=None, combine='add', act_layer='relu',
                 gate_layer='sigmoid'):
        super().__init__()
        if combine not in ('add', 'max'):
            raise ValueError(f"scSE: combine must be 'add' or 'max', got {combine!r}")
        rd = make_rd_channels(channels, rd_ratio, rd_channels)
        self.fc1 = nn.Conv2d(channels, rd, 1, bias=True)
        self.act = get_act_layer(act_layer)()
        self.fc2 = nn.Conv2d(rd, channels, 1, bias=True)
        self.spatial = nn.Conv2d(channels, 1, 1, bias=True)
        self.gate = get_act_layer(gate_layer)()
        self.combine = combine

    def _attn(self, x):
        channel = self.gate(self.fc2(self.act(self.fc1(x.mean((2, 3), keepdim=True)))))
        return channel, self.gate(self.spatial(x))

    def attention_maps(self, x, y=None):
        no_second_input(y)
        channel, spatial = self._attn(x)
        return {'channel': channel, 'spatial': spatial}

    def forward(self, x):
        channel, spatial = self._attn(x)
        if self.combine == 'max':
            return torch.maximum(x * channel, x * spatial)
        return x * channel + x * spatial
