"""GC block (GCNet): query-independent global context added to every position."""
import torch
import torch.nn as nn

from ._base import AttentionModule, Placement, declare_layer
from ._common import get_act_layer, make_rd_channels, no_second_input
from ._precision import float32_statistics


@declare_layer(name="GCBlock", paper="Cao et al., GCNet: Non-local Networks Meet Squeeze-Excitation Networks and "
                                     "Beyond, ICCVW 2019", family="global",
               aliases=("GC", "GlobalContextBlock", "ContextBlock", "GlobalContext", "GCNet"),
               foreign_args=("rd_ratio",), starts_as_identity=True,
               placements=(Placement("stage_outputs",
                                     "YOLOv5s + GC blocks (Cao et al., GCNet, 2019), r=16, zero-initialised last\n"
                                     "conv (each block starts as the identity)."),))
class GCBlock(AttentionModule):
    """Global context block: out = x + T(Σ_j softmax_j(W_k x_j) · x_j), the same context at every position.

    Context modelling: W_k is a 1x1 conv C -> 1; its softmax over the H·W positions weights the positions into a
    C×1×1 context. Transform T: 1x1 C -> C·r (bias) -> LayerNorm over the C·r values -> act -> 1x1 C·r -> C
    (bias). Fusion: broadcast addition.

    Paper: Cao, Xu, Lin, Wei, Hu, "GCNet: Non-local Networks Meet Squeeze-Excitation Networks and Beyond",
    ICCV Workshops 2019 (TPAMI 2020: "Global Context Networks"). Official code: github.com/xvjiarui/GCNet
    (ContextBlock2d, as in mmcv's ContextBlock, pooling 'att', fusion 'channel_add').
    Defaults: r = 1/16 (rd_ratio), ReLU, zero_init=True: the last conv's weight and bias start at zero as in the
    official/mmcv init (last_zero_init), so a fresh block is exactly the identity (declared starts_as_identity:
    identity start leaves it unwrapped); W_k is Kaiming-normal (fan_in), as mmcv's kaiming_init.
    Deviation: W_k has no bias (the official conv has one): a constant added to every logit is cancelled by the
    softmax over positions, so it would be a parameter that never learns (one parameter fewer per block).
    attention_maps: {'context': N×1×H×W}, the softmax weights of the positions.
    """

    def __init__(self, channels: int, rd_ratio: float = 1 / 16, rd_channels: int = None, act_layer='relu',
                 zero_init: bool = True):
        super().__init__()
        rd = make_rd_channels(channels, rd_ratio, rd_channels)
        self.conv_mask = nn.Conv2d(channels, 1, 1, bias=False)
        nn.init.kaiming_normal_(self.conv_mask.weight, mode='fan_in', nonlinearity='relu')
        self.transform = nn.Sequential(nn.Conv2d(channels, rd, 1), nn.LayerNorm([rd, 1, 1]),
                                       get_act_layer(act_layer)(), nn.Conv2d(rd, channels, 1))
        if zero_init:
            nn.init.zeros_(self.transform[-1].weight)
            nn.init.zeros_(self.transform[-1].bias)

    @float32_statistics  # the softmax logits over H·W positions (a 1x1 conv of x) in float32
    def _weights(self, x):
        return self.conv_mask(x).flatten(2).softmax(-1)  # N×1×HW

    def attention_maps(self, x, y=None):
        no_second_input(y)
        return {'context': self._weights(x).reshape(x.shape[0], 1, *x.shape[2:])}

    def forward(self, x):
        context = torch.bmm(x.flatten(2), self._weights(x).transpose(1, 2)).unsqueeze(-1)  # N×C×1×1
        return x + self.transform(context)
