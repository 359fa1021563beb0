"""Attention inside yolov5's C3 blocks: on each bottleneck's residual branch, before the addition (where the SE
paper puts SE in a ResNet block).

YAML: a C3 row as stock, plus a trailing mapping naming any registered one-input, channel-keeping layer:

    [-1, 3, C3, [256, {attn: cbam}]]
    [-1, 3, C3, [256, {attn: [cbam, {rd_ratio: 0.25}]}]]
    [-1, 3, C3, [512, False, {attn: se}]]          # a head C3 without shortcut: attention after cv2

Weight names: every stock C3 tensor keeps its name (``cv1``, ``cv2``, ``cv3``, ``m.<k>.cv1``, ``m.<k>.cv2``); the
attention of bottleneck k is ``m.<k>.attn.*`` (with ``identity_start:`` listing the row, ``m.<k>.attn.attn.*`` and
the blend ``m.<k>.attn.gamma``). Structural transfer sets tensors below a nested ``.attn.`` aside when it compares
layers, so a stock C3 of a checkpoint still finds this row (``yolo_attn.transfer.structural``).
"""
from torch import nn
from yolov5.models.common import C3, Bottleneck


class AttnBottleneck(Bottleneck):
    """yolov5's Bottleneck with ``attn`` on its residual branch: x + attn(cv2(cv1(x))) (no addition: attn(cv2(cv1(x))))."""

    def __init__(self, c1, c2, shortcut=True, g=1, e=0.5, attn=None):
        super().__init__(c1, c2, shortcut, g, e)
        self.attn = attn

    def forward(self, x):
        y = self.attn(self.cv2(self.cv1(x)))
        return x + y if self.add else y


class C3Attn(C3):
    """yolov5's C3 whose bottlenecks carry attention; ``attn(channels) -> nn.Module`` builds one per bottleneck."""

    def __init__(self, c1, c2, n=1, shortcut=True, g=1, e=0.5, attn=None):
        super().__init__(c1, c2, n, shortcut, g, e)
        if attn is None:
            raise ValueError("C3Attn needs attn: a function channels -> attention module")
        c_ = int(c2 * e)
        self.m = nn.Sequential(*(AttnBottleneck(c_, c_, shortcut, g, e=1.0, attn=attn(c_)) for _ in range(n)))
