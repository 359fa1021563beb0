"""Shuffle attention (SA-Net): channel and spatial gates on the two halves of each group, then a shuffle."""
import torch
import torch.nn as nn

from ._base import AttentionModule, Placement, declare_layer
from ._common import ChannelGroupNorm, check_divisible, no_second_input


@declare_layer(name="ShuffleAttn", paper="Zhang & Yang, SA-Net: Shuffle Attention for Deep Convolutional Neural "
                                         "Networks, ICASSP 2021", family="group",
               aliases=("ShuffleAttention", "sa_layer", "SANet"), foreign_args=("groups",),
               placements=(Placement("stage_outputs",
                                     "YOLOv5s + shuffle attention (Zhang & Yang, ICASSP 2021), 32 groups: the paper's 64\n"
                                     "would need 128 | C, which yolov5n (64) and yolov5x (320) widths do not give.",
                                     args=({"groups": 32},)),))
class ShuffleAttn(AttentionModule):
    """Shuffle attention: G groups, each split in halves gated by channel and by spatial statistics; shuffled.

    Within each group (C/G channels, folded into the batch) the first half x_c is gated per channel,
    x_c · σ(w₁ · GAP(x_c) + b₁), the second half x_s per position, x_s · σ(w₂ · GN(x_s) + b₂) (GroupNorm with
    one group per channel); (w, b) are per-channel parameters shared by all groups. The halves are concatenated,
    the groups restored, and a channel shuffle with 2 groups mixes the two halves across groups.

    Paper: Zhang, Yang, "SA-Net: Shuffle Attention for Deep Convolutional Neural Networks", ICASSP 2021.
    Official code: github.com/wofmanaf/SA-Net (sa_layer(channel, groups=64)).
    Defaults: groups = 64; w initialised to 0 and b to 1 as in the official code; 3·C/G parameters.
    `2·groups` must divide the channel count. The GroupNorm is a ChannelGroupNorm (same parameters and output;
    a single position in training gives its shift instead of raising). Otherwise no deviation from the official code.
    attention_maps: {'channel': N×C/2×1×1, 'spatial': N×C/2×H×W}, in the group-major order of the unshuffled halves.
    """

    def __init__(self, channels: int, groups: int = 64):
        super().__init__()
        check_divisible('ShuffleAttn', channels, 2 * groups, '2*groups')
        self.groups = groups
        c = channels // (2 * groups)
        self.cweight = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.cbias = nn.Parameter(torch.ones(1, c, 1, 1))
        self.sweight = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.sbias = nn.Parameter(torch.ones(1, c, 1, 1))
        self.gn = ChannelGroupNorm(c)

    def _gates(self, x):
        n, _, h, w = x.shape
        x_c, x_s = x.reshape(n * self.groups, -1, h, w).chunk(2, 1)
        channel = torch.sigmoid(self.cweight * x_c.mean((2, 3), keepdim=True) + self.cbias)
        spatial = torch.sigmoid(self.sweight * self.gn(x_s) + self.sbias)
        return x_c, x_s, channel, spatial

    def attention_maps(self, x, y=None):
        no_second_input(y)
        n, _, h, w = x.shape
        _, _, channel, spatial = self._gates(x)
        return {'channel': channel.reshape(n, -1, 1, 1), 'spatial': spatial.reshape(n, -1, h, w)}

    def forward(self, x):
        n, c, h, w = x.shape
        x_c, x_s, channel, spatial = self._gates(x)
        out = torch.cat([x_c * channel, x_s * spatial], 1).reshape(n, 2, c // 2, h, w)
        return out.transpose(1, 2).reshape(n, c, h, w)  # channel shuffle, 2 groups
