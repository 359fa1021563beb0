"""Attentional feature fusion: MS-CAM, AFF and iAFF."""
import torch
import torch.nn as nn

from ._base import AttentionModule, Placement, declare_layer
from ._common import PooledBatchNorm2d, get_act_layer, make_rd_channels, no_second_input, two_inputs


def _bottleneck(channels, rd, act_layer, norm_layer):
    return nn.Sequential(
        nn.Conv2d(channels, rd, 1, bias=False), norm_layer(rd), get_act_layer(act_layer)(),
        nn.Conv2d(rd, channels, 1, bias=False), norm_layer(channels))


@declare_layer(name="MSCAM", paper="Dai et al., Attentional Feature Fusion (MS-CAM), WACV 2021", family="fusion",
               aliases=("MS-CAM",),
               placements=(Placement("stage_outputs",
                                     "YOLOv5s + MS-CAM (Dai et al., WACV 2021), r=4, as a one-input attention."),))
class MSCAM(AttentionModule):
    """Multi-Scale Channel Attention Module: M(x) = sigmoid(L(x) + G(GAP(x))), out = x * M(x).

    L and G are each 1x1 (C->C/r) -> BN -> act -> 1x1 (C/r->C) -> BN; G runs on the pooled
    N×C×1×1 map and is broadcast over H×W when added to L.

    Paper: Dai, Gieseke, Oehmcke, Wu, Barnard, "Attentional Feature Fusion", WACV 2021.
    Official code: github.com/YimianDai/open-aff (MXNet original; PyTorch port aff_pytorch).
    Defaults: r = 4 (rd_ratio=1/4, the official code; the paper's ImageNet ResNet-50 uses 16), ReLU.
    Deviations / choices:
      - the 1x1 convs have no bias (the official ones do): each is followed by BN, which cancels a
        bias in training and can absorb it otherwise, so such a bias only adds dead parameters;
      - the global branch's BNs are PooledBatchNorm2d: with N=1 in train mode (YOLOv5's build
        forward) they normalise with the running statistics instead of raising. The local branch
        keeps plain BN, so an N=1, 1×1 input in train mode still raises there.
    """

    def __init__(self, channels, rd_ratio=1 / 4, rd_channels=None, act_layer='relu'):
        super().__init__()
        rd = make_rd_channels(channels, rd_ratio, rd_channels)
        self.local_att = _bottleneck(channels, rd, act_layer, nn.BatchNorm2d)
        self.global_att = _bottleneck(channels, rd, act_layer, PooledBatchNorm2d)

    def fusion_weights(self, x):
        """M(x) = sigmoid(L(x) + G(GAP(x))), the weight map AFF and iAFF blend their two inputs with."""
        return torch.sigmoid(self.local_att(x) + self.global_att(x.mean((2, 3), keepdim=True)))

    def attention_maps(self, x, y=None):
        no_second_input(y)
        return {'fusion': self.fusion_weights(x)}

    def forward(self, x):
        return x * self.fusion_weights(x)


def _blend(m, x, y):
    return y + m * (x - y)  # = m * x + (1 - m) * y, and exactly x when y == x


@declare_layer(name="AFF", paper="Dai et al., Attentional Feature Fusion, WACV 2021", family="fusion", inputs=2,
               placements=(Placement("neck_fusions",
                                     "YOLOv5s + AFF (Dai et al., WACV 2021), r=4: the neck's four Concat fusions\n"
                                     "([-1,6], [-1,4], [-1,14], [-1,10]) become attentional feature fusion of the two\n"
                                     "equal-channel maps, so each following C3 reads C channels instead of 2C."),),
               cpu_goal=1.10)
class AFF(AttentionModule):
    """Attentional Feature Fusion of two equal-shape maps: Z = M(X+Y) * X + (1 - M(X+Y)) * Y.

    M is an MSCAM (see its docstring for the branch layout, BN handling and the conv-bias choice).
    forward(x, y) or forward([x, y]) (YOLOv5 passes a list for multi-input rows, as for Concat);
    output has the shape of one input.

    Paper: Dai, Gieseke, Oehmcke, Wu, Barnard, "Attentional Feature Fusion", WACV 2021.
    Official code: github.com/YimianDai/open-aff.
    Defaults: r = 4, ReLU.
    Deviation from the official code: it returns 2*X*M + 2*Y*(1 - M); the factor 2 is not in the
    paper and is left out here.
    """

    def __init__(self, channels, rd_ratio=1 / 4, rd_channels=None, act_layer='relu'):
        super().__init__()
        self.mscam = MSCAM(channels, rd_ratio, rd_channels, act_layer)

    def attention_maps(self, x, y=None):
        x, y = two_inputs(x, y)
        return {'fusion': self.mscam.fusion_weights(x + y)}

    def forward(self, x, y=None):
        x, y = two_inputs(x, y)
        return _blend(self.mscam.fusion_weights(x + y), x, y)


@declare_layer(name="iAFF", paper="Dai et al., Attentional Feature Fusion (iterative), WACV 2021", family="fusion",
               inputs=2,
               placements=(Placement("neck_fusions",
                                     "YOLOv5s + iAFF (Dai et al., WACV 2021), r=4: the neck's four Concat fusions\n"
                                     "([-1,6], [-1,4], [-1,14], [-1,10]) become iterative attentional feature fusion "
                                     "of the\ntwo equal-channel maps, so each following C3 reads C channels instead of "
                                     "2C."),))
class iAFF(AttentionModule):
    """Iterative AFF: X⊎Y = M1(X+Y) * X + (1 - M1(X+Y)) * Y; Z = M2(X⊎Y) * X + (1 - M2(X⊎Y)) * Y.

    M1 and M2 are two independent MSCAMs, each with its own local and global branch, as in the
    paper and the MXNet original. The official PyTorch port reuses M1's global branch in the
    second stage; that is a bug and is not reproduced. Calling convention as AFF.

    Paper: Dai, Gieseke, Oehmcke, Wu, Barnard, "Attentional Feature Fusion", WACV 2021.
    Official code: github.com/YimianDai/open-aff.
    Defaults: r = 4, ReLU. MSCAM choices (no conv bias, PooledBatchNorm2d after pooling) apply.
    """

    def __init__(self, channels, rd_ratio=1 / 4, rd_channels=None, act_layer='relu'):
        super().__init__()
        self.mscam1 = MSCAM(channels, rd_ratio, rd_channels, act_layer)
        self.mscam2 = MSCAM(channels, rd_ratio, rd_channels, act_layer)

    def _attn(self, x, y):
        m1 = self.mscam1.fusion_weights(x + y)
        return m1, self.mscam2.fusion_weights(_blend(m1, x, y))

    def attention_maps(self, x, y=None):
        m1, m2 = self._attn(*two_inputs(x, y))
        return {'fusion1': m1, 'fusion2': m2}

    def forward(self, x, y=None):
        x, y = two_inputs(x, y)
        return _blend(self._attn(x, y)[1], x, y)
