"""GAM: global attention mechanism (channel MLP per position, then a 7x7 convolutional spatial gate)."""
import torch.nn as nn

from ._base import AttentionModule, Placement, declare_layer
from ._common import PooledBatchNorm2d, get_act_layer, make_rd_channels, no_second_input


@declare_layer(name="GAM", paper="Liu et al., Global Attention Mechanism: Retain Information to Enhance "
                                 "Channel-Spatial Interactions, arXiv 2021", family="hybrid",
               aliases=("GAM_Attention", "GAMAttention", "GlobalAttentionMechanism"),
               placements=(Placement("stage_outputs",
                                     "YOLOv5s + GAM (Liu et al., 2021), reduction 4. Heavy: two 7x7 convs C->C/4->C\n"
                                     "per layer, about 25·C² parameters each (+8.6M params on yolov5s, more than the\n"
                                     "model itself)."),))
class GAM(AttentionModule):
    """Global Attention Mechanism: M_c from a channel MLP at every position, then a convolutional spatial gate.

    Channel: M_c = σ(MLP(x)) with the MLP (C -> C·r -> C, act between) applied to the channel vector of each
    position (the paper's permute -> MLP -> permute back, written as 1x1 convs); x' = x · M_c.
    Spatial: M_s = σ(BN(Conv7x7(act(BN(Conv7x7(x')))))) with C -> C·r -> C channels; out = x' · M_s. No pooling.

    Paper: Liu, Shao, Hoffmann, "Global Attention Mechanism: Retain Information to Enhance Channel-Spatial
    Interactions", arXiv 2112.05561 (2021). No official code was released; the widely copied GAM_Attention
    (Linear C -> C/rate -> C; Conv7x7 -> BN -> ReLU -> Conv7x7 -> BN -> σ) is the reference layout.
    Defaults: rd_ratio = 1/4 (the paper's r = 4, for both sub-modules), ReLU, sigmoid.
    Choices / deviations:
      - the channel gate has its σ, as in the paper's formula (the widely copied code multiplies by the raw MLP
        output, without σ);
      - the two 7x7 convs have no bias: each is followed by BN, which cancels it (the copied code keeps it);
      - no grouped convs / channel shuffle (an option of some copies, not the paper's module);
      - the BNs are PooledBatchNorm2d (a batch-1, 1×1 map in training uses the running statistics).
    Cost: 2·C²·r + 98·C²·r weights, i.e. ≈ 25·C² at r = 1/4 — by far the heaviest layer here.
    attention_maps: {'channel': N×C×H×W, 'spatial': N×C×H×W} (the spatial gate read on x · channel).
    """

    def __init__(self, channels: int, rd_ratio: float = 1 / 4, rd_channels: int = None, act_layer='relu',
                 gate_layer='sigmoid'):
        super().__init__()
        rd = make_rd_channels(channels, rd_ratio, rd_channels)
        act = get_act_layer(act_layer)
        self.channel_mlp = nn.Sequential(nn.Conv2d(channels, rd, 1), act(), nn.Conv2d(rd, channels, 1))
        self.spatial = nn.Sequential(nn.Conv2d(channels, rd, 7, padding=3, bias=False), PooledBatchNorm2d(rd), act(),
                                     nn.Conv2d(rd, channels, 7, padding=3, bias=False), PooledBatchNorm2d(channels))
        self.gate = get_act_layer(gate_layer)()

    def attention_maps(self, x, y=None):
        no_second_input(y)
        mc = self.gate(self.channel_mlp(x))
        return {'channel': mc, 'spatial': self.gate(self.spatial(x * mc))}

    def forward(self, x):
        x = x * self.gate(self.channel_mlp(x))
        return x * self.gate(self.spatial(x))
