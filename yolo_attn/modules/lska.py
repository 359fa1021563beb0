"""LSKA: large separable kernel attention (VAN's large-kernel attention with 1-D kernels)."""
import torch.nn as nn

from yolo_attn.errors import ModelConfigError

from ._base import AttentionModule, Placement, declare_layer
from ._common import no_second_input

# k_size -> (k0: the local 1-D kernels, k1: the dilated 1-D kernels, d: their dilation), the official table
LSKA_KERNELS = {7: (3, 3, 2), 11: (3, 5, 2), 23: (5, 7, 3), 35: (5, 11, 3), 41: (5, 13, 3), 53: (5, 17, 3)}


@declare_layer(name="LSKA", paper="Lau, Po & Rehman, Large Separable Kernel Attention: Rethinking the Large Kernel "
                                  "Attention Design in CNN, Expert Systems with Applications 2024", family="kernel",
               aliases=("LargeSeparableKernelAttention",), foreign_args=("k_size",),
               placements=(Placement("stage_outputs",
                                     "YOLOv5s + LSKA (Lau et al., ESWA 2024), k_size 23 (the released weights): "
                                     "depth-wise 1x5, 5x1,\nthen 1x7, 7x1 dilation 3, 1x1; an unbounded gate."),))
class LSKA(AttentionModule):
    """Large separable kernel attention: out = x · Conv1x1(DW_{k1×1,d}(DW_{1×k1,d}(DW_{k0×1}(DW_{1×k0}(x))))).

    A k×k depth-wise kernel is decomposed into a local (2d−1)×(2d−1) one and a dilated ⌈k/d⌉×⌈k/d⌉ one as in VAN's
    LKA, and each 2-D kernel into a horizontal and a vertical 1-D kernel. k_size -> (k0, k1, d): 7 -> (3, 3, 2),
    11 -> (3, 5, 2), 23 -> (5, 7, 3), 35 -> (5, 11, 3), 41 -> (5, 13, 3), 53 -> (5, 17, 3). All convs with bias,
    'same' padding; no norm, no activation and no sigmoid: the gate is unbounded, as in LKA.

    Paper: Kin Wai Lau, Lai-Man Po, Yasar Abbas Ur Rehman, "Large Separable Kernel Attention: Rethinking the Large
    Kernel Attention Design in CNN", Expert Systems with Applications 236 (2024) 121352, arXiv 2309.01439.
    Official code: github.com/StevenLauHKHK/Large-Separable-Kernel-Attention, models/van.py class LSKA @ bb2a8d2.
    Defaults: k_size = 23, the kernel of the released ImageNet weights (the official class has no default). The
    z1069614715 YOLO copy defaults to 7; a YAML row [-1, 1, LSKA, [256, 7]] builds that one. 23 was chosen because it
    is the paper's model and its extra cost is small (24·C + 5·C + C² parameters against 12·C + 5·C + C² for k 7;
    5,952 against 5,184 at C = 64), while YOLO's P5 map at 640 px (20×20) is exactly what a 23-wide field covers.
    This is the bare gate of the official LSKA class, as the detectors plug it in; VAN wraps it in
    Conv1x1 -> GELU -> LSKA -> Conv1x1 + residual (its Attention unit), which is not part of it.
    Choices: a k_size outside the official table raises a ModelConfigError listing the allowed values (the official
    class builds no convs and fails in forward with an AttributeError). No deviation in the computation: stride 1
    and 'same' padding, so any H×W (1×1 included) works as in the official code.
    attention_maps: {'attention': N×C×H×W}, the (unbounded) multiplier.
    """

    def __init__(self, channels: int, k_size: int = 23):
        super().__init__()
        if isinstance(k_size, bool) or not isinstance(k_size, int) or k_size not in LSKA_KERNELS:
            raise ModelConfigError(f"LSKA: k_size={k_size!r} is not one of the official kernel sizes; choose one of "
                                   f"{', '.join(map(str, LSKA_KERNELS))}")
        k0, k1, d = LSKA_KERNELS[k_size]
        c = channels
        self.k_size = k_size
        self.conv0h = nn.Conv2d(c, c, (1, k0), padding=(0, k0 // 2), groups=c)
        self.conv0v = nn.Conv2d(c, c, (k0, 1), padding=(k0 // 2, 0), groups=c)
        self.conv_spatial_h = nn.Conv2d(c, c, (1, k1), padding=(0, d * (k1 // 2)), groups=c, dilation=d)
        self.conv_spatial_v = nn.Conv2d(c, c, (k1, 1), padding=(d * (k1 // 2), 0), groups=c, dilation=d)
        self.conv1 = nn.Conv2d(c, c, 1)

    def _attn(self, x):
        return self.conv1(self.conv_spatial_v(self.conv_spatial_h(self.conv0v(self.conv0h(x)))))

    def attention_maps(self, x, y=None):
        no_second_input(y)
        return {'attention': self._attn(x)}

    def forward(self, x):
        return x * self._attn(x)
