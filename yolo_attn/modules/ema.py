"""EMA: efficient multi-scale attention with cross-spatial learning."""
import torch
import torch.nn as nn

from ._base import AttentionModule, Placement, declare_layer
from ._common import ChannelGroupNorm, check_divisible, no_second_input


@declare_layer(name="EMA", paper="Ouyang et al., Efficient Multi-Scale Attention Module with Cross-Spatial Learning, "
                                 "ICASSP 2023", family="group", aliases=("EMAttention", "EMA_attention"),
               foreign_args=("groups",),
               placements=(Placement("stage_outputs", "YOLOv5s + EMA (Ouyang et al., ICASSP 2023), 32 groups."),
                           Placement("c3_bottlenecks", "YOLOv5s + EMA inside the backbone C3s' bottlenecks "
                                                       "(Ouyang et al., ICASSP 2023), 8 groups: the bottlenecks'\n"
                                       "widths (16 in yolov5n's first C3, 80 in yolov5x's) are not multiples of 32.",
                                     args=({"groups": 8},), file_tag="c3ema")))
class EMA(AttentionModule):
    """Efficient Multi-scale Attention: per channel group, two branches and a cross-spatial gate.

    The C channels are split into G groups folded into the batch (each group, C/G channels, is one sample):
      1x1 branch: pool along W and along H (as Coordinate Attention), a shared 1x1 conv on the concatenation,
        σ gates along H and along W, applied to the group, then GroupNorm (one group per channel) -> x1;
      3x3 branch: a 3x3 conv of the group -> x2;
      cross-spatial learning: softmax over the C/G channels of GAP(x1), times x2 (C/G × HW), plus softmax of
        GAP(x2) times x1 -> one H×W map per group; out = group · σ(map).

    Paper: Ouyang, He, Zhang, Huang, Huang, Luo, Guo, "Efficient Multi-Scale Attention Module with Cross-Spatial
    Learning", ICASSP 2023. Official code: github.com/YOLOonMe/EMA-attention-module (EMA(channels, factor)).
    Defaults: groups = 32 (the official `factor`). Convs with bias and the GroupNorm's affine parameters as in the
    official code; 10·(C/G)² + 4·C/G parameters.
    Choices: 1-D pooling with mean over an axis (the official AdaptiveAvgPool2d((None, 1)) breaks ONNX export);
    `groups` must divide the channel count. The GroupNorm (one group per channel) is a ChannelGroupNorm: the same
    parameters and output, but a single position in training (a 1×1 map with one group at batch 1) gives its shift
    instead of the official nn.GroupNorm's error. Otherwise no deviation from the official code.
    attention_maps: {'spatial': N×G×H×W}, the gate of each group.
    """

    def __init__(self, channels: int, groups: int = 32):
        super().__init__()
        check_divisible('EMA', channels, groups)
        self.groups = groups
        cg = channels // groups
        self.conv1x1 = nn.Conv2d(cg, cg, 1)
        self.conv3x3 = nn.Conv2d(cg, cg, 3, padding=1)
        self.gn = ChannelGroupNorm(cg)

    def _attn(self, g):
        """g: (N·G)×(C/G)×H×W groups -> (N·G)×1×H×W gate."""
        h, w = g.shape[2:]
        hw = self.conv1x1(torch.cat([g.mean(3, keepdim=True), g.mean(2, keepdim=True).transpose(2, 3)], 2))
        a_h, a_w = hw[:, :, :h], hw[:, :, h:].transpose(2, 3)
        x1 = self.gn(g * a_h.sigmoid() * a_w.sigmoid())
        x2 = self.conv3x3(g)
        s1, s2 = (t.mean((2, 3)).softmax(-1).unsqueeze(1) for t in (x1, x2))  # (N·G)×1×(C/G)
        weights = torch.bmm(s1, x2.flatten(2)) + torch.bmm(s2, x1.flatten(2))
        return weights.reshape(g.shape[0], 1, h, w).sigmoid()

    def attention_maps(self, x, y=None):
        no_second_input(y)
        n, c, h, w = x.shape
        return {'spatial': self._attn(x.reshape(n * self.groups, -1, h, w)).reshape(n, self.groups, h, w)}

    def forward(self, x):
        n, c, h, w = x.shape
        g = x.reshape(n * self.groups, -1, h, w)
        return (g * self._attn(g)).reshape(n, c, h, w)
