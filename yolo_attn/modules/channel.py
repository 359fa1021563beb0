"""Channel attention: SE and ECA."""
import math

import torch.nn as nn

from ._base import AttentionModule, Placement, declare_layer
from ._common import get_act_layer, make_rd_channels, no_second_input


@declare_layer(name="SE", paper="Hu et al., Squeeze-and-Excitation Networks, CVPR 2018", family="channel",
               aliases=("SEAttention", "SELayer", "SEBlock", "SE_Block", "SqueezeExcitation", "SqueezeExcite"),
               foreign_args=("reduction",),
               placements=(Placement("stage_outputs", "YOLOv5s + SE (Hu et al., CVPR 2018), r=16."),
                           Placement("c3_bottlenecks", "YOLOv5s + SE inside the backbone C3s' bottlenecks (Hu et al., "
                                                       "CVPR 2018), r=16.", file_tag="c3se")), cpu_goal=1.05)
class SE(AttentionModule):
    """Squeeze-and-Excitation: out = x * gate(FC2(act(FC1(GAP(x))))).

    Paper: Hu, Shen, Sun, "Squeeze-and-Excitation Networks", CVPR 2018 (TPAMI 2019).
    Official code: github.com/hujie-frank/SENet (Caffe); FCs carry biases.
    Defaults: r = 16 (rd_ratio=1/16), ReLU, sigmoid; reduced width exactly int(C/r) (min 1).
    Choices: the FCs are 1x1 convs with bias on the N×C×1×1 pooled map (same maths as Linear).
    No deviation from the paper.
    """

    def __init__(self, channels, rd_ratio=1 / 16, rd_channels=None, act_layer='relu', gate_layer='sigmoid'):
        super().__init__()
        rd = make_rd_channels(channels, rd_ratio, rd_channels)
        self.fc1 = nn.Conv2d(channels, rd, 1, bias=True)
        self.act = get_act_layer(act_layer)()
        self.fc2 = nn.Conv2d(rd, channels, 1, bias=True)
        self.gate = get_act_layer(gate_layer)()

    def _attn(self, x):
        return self.gate(self.fc2(self.act(self.fc1(x.mean((2, 3), keepdim=True)))))

    def attention_maps(self, x, y=None):
        no_second_input(y)
        return {'channel': self._attn(x)}

    def forward(self, x):
        return x * self._attn(x)


def eca_kernel_size(channels, gamma=2, beta=1):
    """ECA's adaptive kernel: t = int(|(log2(C) + b) / gamma|), the nearest odd k >= t."""
    t = int(abs((math.log2(channels) + beta) / gamma))
    return t if t % 2 else t + 1


@declare_layer(name="ECA", paper="Wang et al., ECA-Net, CVPR 2020", family="channel",
               aliases=("ECAAttention", "EfficientChannelAttention", "eca_layer", "ECALayer", "ECABlock"),
               foreign_args=("kernel_size",),
               placements=(Placement("stage_outputs",
                                     "YOLOv5s + ECA (Wang et al., CVPR 2020), adaptive kernel size."),), cpu_goal=1.05)
class ECA(AttentionModule):
    """Efficient Channel Attention: out = x * gate(Conv1d_k(GAP(x))) across the channel axis.

    Paper: Wang, Wu, Zhu, Li, Zuo, Hu, "ECA-Net: Efficient Channel Attention for Deep
    Convolutional Neural Networks", CVPR 2020.
    Official code: github.com/BangguWu/ECANet (eca_module.py): Conv1d(1, 1, k), no bias,
    padding (k-1)//2; its layer takes a fixed k (3 by default, 3/5/5/7 per ResNet stage).
    Defaults: kernel_size=None -> k from the paper's formula with gamma=2, b=1; sigmoid gate.
    Choices: an explicit even kernel_size is rejected (it could not keep C outputs with
    symmetric padding). No deviation from the paper.
    """

    def __init__(self, channels, kernel_size=None, gamma=2, beta=1, gate_layer='sigmoid'):
        super().__init__()
        k = eca_kernel_size(channels, gamma, beta) if kernel_size is None else int(kernel_size)
        if k < 1 or k % 2 == 0:
            raise ValueError(f'ECA kernel_size must be a positive odd integer, got {kernel_size}')
        self.conv = nn.Conv1d(1, 1, k, padding=(k - 1) // 2, bias=False)
        self.gate = get_act_layer(gate_layer)()

    def _attn(self, x):
        s = x.mean((2, 3)).unsqueeze(1)  # N×1×C: channels become the 1-D axis
        return self.gate(self.conv(s)).transpose(1, 2).unsqueeze(-1)

    def attention_maps(self, x, y=None):
        no_second_input(y)
        return {'channel': self._attn(x)}

    def forward(self, x):
        return x * self._attn(x)
