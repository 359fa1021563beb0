"""CAA: context anchor attention (PKINet), average pooling then horizontal and vertical strip convolutions."""
import torch
import torch.nn as nn

from yolo_attn.errors import ModelConfigError

from ._base import AttentionModule, Placement, declare_layer
from ._common import PooledBatchNorm2d, no_second_input


class _ConvBNAct(nn.Module):
    """1×1 conv without bias -> BN (eps 1e-3, momentum 0.03, as mmcv's in PKINet) -> SiLU: yolov5's Conv."""

    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 1, bias=False)
        self.bn = PooledBatchNorm2d(channels, eps=1e-3, momentum=0.03)
        self.act = nn.SiLU()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


@declare_layer(name="CAA", paper="Cai et al., Poly Kernel Inception Network for Remote Sensing Detection, CVPR 2024",
               family="kernel", aliases=("ContextAnchorAttention",),
               foreign_args=("h_kernel_size", "v_kernel_size"),
               placements=(Placement("stage_outputs",
                                     "YOLOv5s + CAA (Cai et al., PKINet, CVPR 2024), 1x11 and 11x1 strips, Conv+BN+SiLU "
                                     "1x1s,\napplied as x * A (the YOLO copy's drop-in form)."),))
class CAA(AttentionModule):
    """Context anchor attention: out = x · A, A = σ(Conv_b(DW_{k×1}(DW_{1×k}(Conv_a(AvgPool7×7(x)))))).

    AvgPool: 7×7, stride 1, padding 3, zero padding counted (count_include_pad, as nn.AvgPool2d), so border values
    are damped. Conv_a, Conv_b: 1×1 conv (no bias) -> BN -> SiLU. DW_{1×k}, DW_{k×1}: depth-wise strip convs with
    bias, padded k//2 along their axis, no norm or activation (k = h_kernel_size = v_kernel_size = 11).

    Paper: Xinhao Cai, Qiuxia Lai, Yuwei Wang, Wenguan Wang, Zeren Sun, Yazhou Yao, "Poly Kernel Inception Network
    for Remote Sensing Detection", CVPR 2024, pp. 27706–27716, arXiv 2403.06258. Official code:
    github.com/NUST-Machine-Intelligence-Laboratory/PKINet, mmrotate/models/backbones/pkinet.py class CAA (file last
    changed in c2ee525; repo HEAD c1e72da).
    This is the drop-in form of the z1069614715 YOLO copy (cv-attention/CAA.py): Conv_a/Conv_b with BN + SiLU and
    the output x · A. It differs from the official code in two documented ways:
      - the official class returns the attention factor A only, never x · A; in PKINet's InceptionBottleneck A gates
        the poly-kernel branch (x = x + x · CAA(y), y the block's input after its pre-conv), not CAA's own input;
      - inside PKINet CAA is built as CAA(c, k, k, None, None): Conv_a/Conv_b are plain 1×1 convs with bias, no BN,
        no SiLU (9,856 parameters at C = 64 against this class's 9,984); the official class's own defaults are
        these BN + SiLU ones (ConvModule, BN momentum 0.03, eps 0.001), as here.
    Defaults: h_kernel_size = v_kernel_size = 11 (the class default; PKINet grows k as 11 + 2i with the block index
    i of a stage). Parameters: 2·C² + (2k + 6)·C (BN affine counted): 9,984 at C = 64, 138,240 at C = 256.
    BN eps 1e-3, momentum 0.03: PKINet's values, and what yolov5's and ultralytics' initialize_weights set on every
    BN of a model (the YOLO copy builds nn.BatchNorm2d with the defaults 1e-5 / 0.1 and gets them reset there);
    with equal eps the output equals the YOLO copy's exactly (checked in float64 at 13×17, 7×7, 1×1, train and eval).
    Choices: the BNs are PooledBatchNorm2d — plain BatchNorm2d, except that a single value per channel in training
    (a 1×1 map at batch 1) is normalised with the running statistics instead of raising. Stride 1 and 'same'
    padding: any H×W, as the official code. Parameter names as the YOLO copy's (conv1.conv, conv1.bn, h_conv,
    v_conv, conv2.conv, conv2.bn).
    attention_maps: {'anchor': A, N×C×H×W, in (0, 1)}.
    """

    def __init__(self, channels: int, h_kernel_size: int = 11, v_kernel_size: int = 11):
        super().__init__()
        for name, k in (('h_kernel_size', h_kernel_size), ('v_kernel_size', v_kernel_size)):
            if isinstance(k, bool) or not isinstance(k, int) or k < 1 or k % 2 == 0:
                raise ModelConfigError(f"CAA: {name}={k!r} must be an odd positive integer (an even strip kernel "
                                       f"with padding k//2 would change the map size; PKINet uses 11, 13, 15, ...)")
        c = channels
        self.avg_pool = nn.AvgPool2d(7, 1, 3)
        self.conv1 = _ConvBNAct(c)
        self.h_conv = nn.Conv2d(c, c, (1, h_kernel_size), padding=(0, h_kernel_size // 2), groups=c)
        self.v_conv = nn.Conv2d(c, c, (v_kernel_size, 1), padding=(v_kernel_size // 2, 0), groups=c)
        self.conv2 = _ConvBNAct(c)

    def _attn(self, x):
        return torch.sigmoid(self.conv2(self.v_conv(self.h_conv(self.conv1(self.avg_pool(x))))))

    def attention_maps(self, x, y=None):
        no_second_input(y)
        return {'anchor': self._attn(x)}

    def forward(self, x):
        return x * self._attn(x)
