"""LSK block (LSKNet): spatial selection between two large depth-wise receptive fields."""
import torch
import torch.nn as nn

from ._base import AttentionModule, Placement, declare_layer
from ._common import check_divisible, no_second_input
from ._precision import float32_statistics


@declare_layer(name="LSKBlock", paper="Li et al., Large Selective Kernel Network for Remote Sensing Object "
                                      "Detection, ICCV 2023", family="kernel", aliases=("LSK", "LSKAttention"),
               placements=(Placement("stage_outputs",
                                     "YOLOv5s + LSK blocks (Li et al., LSKNet, ICCV 2023): depth-wise 5x5 then 7x7\n"
                                     "dilation 3, spatial selection."),))
class LSKBlock(AttentionModule):
    """Large selective kernel: out = x · Conv1x1(U₁ · s₁ + U₂ · s₂), the s from the two branches' statistics.

    Large kernel: A₁ = DW5x5(x), A₂ = DW7x7,dilation 3(A₁) (receptive field 23); U₁ = 1x1(A₁), U₂ = 1x1(A₂),
    each C -> C/2. Selection: SA = [mean over channels, max over channels] of [U₁, U₂]; (s₁, s₂) =
    σ(Conv7x7(SA)) (2 -> 2 channels), one spatial map per branch. out = x · Conv1x1_{C/2 -> C}(s₁·U₁ + s₂·U₂);
    the attention is not passed through a sigmoid (the module multiplies x by a learned linear map).

    Paper: Li, Hou, Wang, Gao, Xu, Yang, Cheng, "Large Selective Kernel Network for Remote Sensing Object
    Detection", ICCV 2023. Official code: github.com/zcablii/LSKNet (LSKblock(dim)).
    Defaults: none to set; all convs with bias as in the official code; 1.5·C² + 78·C + 198 parameters.
    This is the LSK block the detectors plug in; LSKNet wraps it in 1x1 projections, GELU and a residual
    (its "Attention" unit), which are not part of the block. `channels` must be even. No deviation.
    attention_maps: {'selection': N×2×H×W (s₁, s₂)}; applied_gates: {'attention': N×C×H×W, the multiplier}.
    """

    def __init__(self, channels: int):
        super().__init__()
        check_divisible('LSKBlock', channels, 2, 'halves')
        self.conv0 = nn.Conv2d(channels, channels, 5, padding=2, groups=channels)
        self.conv_spatial = nn.Conv2d(channels, channels, 7, padding=9, groups=channels, dilation=3)
        self.conv1 = nn.Conv2d(channels, channels // 2, 1)
        self.conv2 = nn.Conv2d(channels, channels // 2, 1)
        self.conv_squeeze = nn.Conv2d(2, 2, 7, padding=3)
        self.conv = nn.Conv2d(channels // 2, channels, 1)

    def _branches(self, x):
        a1 = self.conv0(x)
        u1, u2 = self.conv1(a1), self.conv2(self.conv_spatial(a1))
        return u1, u2, self._selection(u1, u2)

    @float32_statistics  # channel statistics and conv_squeeze's weight gradient (a sum over the map) in float32
    def _selection(self, u1, u2):
        both = torch.cat([u1, u2], 1)
        return torch.sigmoid(self.conv_squeeze(torch.cat([both.mean(1, keepdim=True), both.amax(1, keepdim=True)], 1)))

    def _attn(self, x):
        u1, u2, s = self._branches(x)
        return self.conv(u1 * s[:, :1] + u2 * s[:, 1:])

    def attention_maps(self, x, y=None):
        no_second_input(y)
        return {'selection': self._branches(x)[2]}

    def applied_gates(self, x, y=None):
        no_second_input(y)
        return {'attention': self._attn(x)}

    def forward(self, x):
        return x * self._attn(x)
