"""CPCA: channel prior convolutional attention (channel weights first, then multi-scale strip convolutions)."""
import torch
import torch.nn as nn

from ._base import AttentionModule, Placement, declare_layer
from ._common import make_rd_channels, no_second_input
from ._precision import accumulation_dtype

STRIPS = (7, 11, 21)  # the 1×k, k×1 depth-wise pairs after the 5×5


class _ChannelPrior(nn.Module):
    """w = σ(MLP(GAP(u))) + σ(MLP(GMP(u))), one MLP (fc1 -> ReLU -> fc2, biases); the official ChannelAttention."""

    def __init__(self, channels, hidden):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.relu = nn.ReLU()
        self.fc2 = nn.Conv2d(hidden, channels, 1)

    def _mlp(self, t):
        return torch.sigmoid(self.fc2(self.relu(self.fc1(t))))

    def forward(self, u):
        avg = u.mean((2, 3), keepdim=True, dtype=accumulation_dtype(u)).to(u.dtype)
        return self._mlp(avg) + self._mlp(u.amax((2, 3), keepdim=True))


@declare_layer(name="CPCA", paper="Huang et al., Channel prior convolutional attention for medical image "
                                  "segmentation, arXiv 2306.05196, 2023", family="hybrid",
               aliases=("ChannelPriorConvAttention", "ChannelPriorConvolutionalAttention"),
               foreign_args=("reduction",),
               placements=(Placement("stage_outputs",
                                     "YOLOv5s + CPCA (Huang et al., 2023), channel prior r=4, depth-wise 5x5 and 1x7/7x1, "
                                     "1x11/11x1,\n1x21/21x1 strips, one shared 1x1 conv."),))
class CPCA(AttentionModule):
    """Channel prior convolutional attention: channel weights, then a multi-scale depth-wise spatial map.

    u = GELU(P(x)), P a 1×1 conv C -> C with bias. Channel prior: w = σ(MLP(GAP(u))) + σ(MLP(GMP(u))), one MLP for
    both (1×1 C -> C·r -> ReLU -> 1×1 -> C, biases), so each weight lies in (0, 2); v = w · u. Spatial: t = DW5×5(v);
    s = t + DW7×1(DW1×7(t)) + DW11×1(DW1×11(t)) + DW21×1(DW1×21(t)) (depth-wise, bias, no norm or activation);
    A = P(s) (no sigmoid); out = P(A · v).

    Paper: Hejun Huang, Zuguo Chen, Ying Zou, Ming Lu, Chaoyang Chen, "Channel prior convolutional attention for
    medical image segmentation", arXiv 2306.05196 (2023; journal version 2024). Official code:
    github.com/Cuthbert-Huang/CPCANet, CPCANet/nnunet/network_architecture/CPCANet.py, classes ChannelAttention and
    RepBlock (= CPCA) @ 550b49a. The z1069614715 YOLO copy (CPCA(channels, channelAttention_reduce=4)) computes the
    same.
    Defaults: rd_ratio = 1/4 (the official channelAttention_reduce = 4; a YAML row [-1, 1, CPCA, [256, 4]] reads the
    4 as that reduction); hidden width int(C/4), as the official C // 4.
    Shared projection: the official code applies ONE 1×1 conv P (one weight tensor) three times — input projection,
    spatial-map projection and output projection. Kept (self.conv), for parity with the official code, its
    checkpoints and the YOLO copy, and so that the parameter count is the official 1.5·C² + 112.25·C (13,328 at
    C = 64, 127,040 at C = 256); three separate convs would add 2·(C² + C) and be another module.
    Choices: GAP sums in float32 for float16 input. Parameter names as the official RepBlock's (conv, ca.fc1,
    ca.fc2, dconv5_5, dconv1_7, ...), so its state dict loads as is. No deviation in the computation: stride 1, 'same' padding,
    any H×W (1×1 included). CPCA has no residual (CPCANet adds it, with a BatchNorm, in its Block).
    attention_maps: {'channel': N×C×1×1 (w, in (0, 2)), 'spatial': N×C×H×W (A, unbounded)}.
    """

    def __init__(self, channels: int, rd_ratio: float = 1 / 4, rd_channels: int = None):
        super().__init__()
        c = channels
        rd = make_rd_channels(c, rd_ratio, rd_channels)
        self.conv = nn.Conv2d(c, c, 1)  # P, shared by the three projections
        self.act = nn.GELU()
        self.ca = _ChannelPrior(c, rd)
        self.dconv5_5 = nn.Conv2d(c, c, 5, padding=2, groups=c)
        for k in STRIPS:
            setattr(self, f'dconv1_{k}', nn.Conv2d(c, c, (1, k), padding=(0, k // 2), groups=c))
            setattr(self, f'dconv{k}_1', nn.Conv2d(c, c, (k, 1), padding=(k // 2, 0), groups=c))

    def _spatial(self, v):
        t = self.dconv5_5(v)
        strips = [getattr(self, f'dconv{k}_1')(getattr(self, f'dconv1_{k}')(t)) for k in STRIPS]
        return self.conv(strips[0] + strips[1] + strips[2] + t)

    def _gates(self, x):
        u = self.act(self.conv(x))
        w = self.ca(u)
        v = w * u
        return w, v, self._spatial(v)

    def attention_maps(self, x, y=None):
        no_second_input(y)
        w, _, a = self._gates(x)
        return {'channel': w, 'spatial': a}

    def applied_gates(self, x, y=None):
        """The channel weights w and the spatial map A as they multiply (GELU(P(x)) and w·GELU(P(x)))."""
        return self.attention_maps(x, y)

    def forward(self, x):
        _, v, a = self._gates(x)
        return self.conv(a * v)
