"""Triplet attention: three rotated Z-pool spatial gates, averaged."""
import torch
import torch.nn as nn

from ._base import AttentionModule, Placement, declare_layer
from ._common import PooledBatchNorm2d, no_second_input


class _ZPoolGate(nn.Module):
    """σ(BN(Conv_kxk([max, mean] over dim 1))): a gate over the last two axes of its input."""

    def __init__(self, kernel_size):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)
        self.bn = PooledBatchNorm2d(1, momentum=0.01)

    def forward(self, x):
        return torch.sigmoid(self.bn(self.conv(torch.cat([x.amax(1, keepdim=True), x.mean(1, keepdim=True)], 1))))


@declare_layer(name="TripletAttention", paper="Misra et al., Rotate to Attend: Convolutional Triplet Attention "
                                              "Module, WACV 2021", family="hybrid", aliases=("Triplet", "TA"),
               foreign_args=("kernel_size",),
               placements=(Placement("stage_outputs",
                                     "YOLOv5s + triplet attention (Misra et al., WACV 2021), 7x7 kernels."),))
class TripletAttention(AttentionModule):
    """Triplet attention: the mean of three gated copies of x, one per pair of axes (C,W), (H,C), (H,W).

    Each branch rotates x so that one axis plays the channels' role, Z-pools it (max and mean over that axis),
    convolves the 2-channel map (k×k, no bias) -> BN -> σ and multiplies the rotated x, which is rotated back:
      branch cw: pooled over H, gate over (C, W);  branch hc: pooled over W, gate over (H, C) (the official
      permute(0, 3, 2, 1) layout);  branch hw: pooled over C, gate over (H, W) (CBAM's spatial gate).
    out = (out_cw + out_hc + out_hw) / 3.

    Paper: Misra, Nalamada, Arasanipalai, Hou, "Rotate to Attend: Convolutional Triplet Attention Module",
    WACV 2021. Official code: github.com/landskape-ai/triplet-attention (TripletAttention, AttentionGate, ZPool).
    Defaults: kernel_size = 7; Z-pool order [max, mean] and BN(eps 1e-5, momentum 0.01) as the official code;
    3·(2k² + 2) parameters (300 at k = 7). `channels` is accepted for the uniform signature and unused.
    Choices: the BNs are PooledBatchNorm2d (a batch-1, 1×1 map in training uses the running statistics);
    no_spatial (the official option dropping the hw branch, averaging two) is kept. No deviation.
    attention_maps: {'cw': N×1×C×W, 'hc': N×1×H×C, 'hw': N×1×H×W}, each gate in its branch's layout.
    applied_gates: {'hw': N×1×H×W}, the one gate over the image plane.
    """

    def __init__(self, channels: int = 0, kernel_size: int = 7, no_spatial: bool = False):
        super().__init__()
        self.cw = _ZPoolGate(kernel_size)
        self.hc = _ZPoolGate(kernel_size)
        self.hw = None if no_spatial else _ZPoolGate(kernel_size)

    def attention_maps(self, x, y=None):
        no_second_input(y)
        maps = {'cw': self.cw(x.permute(0, 2, 1, 3)), 'hc': self.hc(x.permute(0, 3, 2, 1))}
        if self.hw is not None:
            maps['hw'] = self.hw(x)
        return maps

    def applied_gates(self, x, y=None):
        maps = self.attention_maps(x, y)
        return {'hw': maps['hw']} if 'hw' in maps else {}

    def forward(self, x):
        x_cw = x.permute(0, 2, 1, 3)  # N×H×C×W
        x_hc = x.permute(0, 3, 2, 1)  # N×W×H×C
        out = (x_cw * self.cw(x_cw)).permute(0, 2, 1, 3) + (x_hc * self.hc(x_hc)).permute(0, 3, 2, 1)
        if self.hw is None:
            return out / 2
        return (out + x * self.hw(x)) / 3
