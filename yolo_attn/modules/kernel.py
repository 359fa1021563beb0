"""Convolutions with built-in attention: Selective Kernel, split attention (ResNeSt), self-calibrated conv.

All three stand in for a 3x3 convolution and may change the channel count: they take
(in_channels, out_channels, ...) and are registered as channel-changing layers (the first YAML arg is the
output channel count, scaled by width_multiple like yolov5's Conv).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from ._base import AttentionModule, Placement, declare_layer
from ._common import (PooledBatchNorm2d, check_divisible, get_act_layer, make_rd_channels,
                      no_second_input)


@declare_layer(name="SelectiveKernel", paper="Li et al., Selective Kernel Networks, CVPR 2019", family="kernel",
               changes_channels=True, yaml_args="[256, {stride: 2}]", aliases=("SK", "SKConv", "SKAttention"),
               placements=(Placement("stage_downsamples",
                                     "YOLOv5s + Selective Kernel convs (Li et al., CVPR 2019): M=2 branches (3x3 and\n"
                                     "3x3 dilated 2), G=32, r=16, L=32."),))
class SelectiveKernel(AttentionModule):
    """Selective Kernel convolution: branches of different receptive fields, mixed per channel by attention.

    Split: branch m = act(BN(grouped conv_m(x))), all with `out_channels`; U = Σ_m U_m.
    Fuse: s = GAP(U); z = act(BN(FC(s))), FC: C -> d with d = max(int(C / r), L).
    Select: a = softmax over the branches of FC_m(z) (one d -> C FC per branch); out = Σ_m a_m · U_m.

    Paper: Li, Wang, Hu, Yang, "Selective Kernel Networks", CVPR 2019 (SKNet-50: ResNeXt-50 32x4d with the
    bottleneck's 3x3 conv replaced by SK[M=2, G=32, r=16], L=32; 27.5M params).
    Defaults: two branches, 3x3 and 3x3 with dilation 2 (the paper's stand-in for 5x5: kernel_sizes=(3, 5),
    dilations=(1, 1) gives the literal 5x5), groups=32, r=16 (rd_ratio=1/16), L=32 (min_rd_channels), ReLU.
    Choices: the FCs are 1x1 convs without bias (the first is followed by BN; the paper gives no bias; same as
    timm); the per-branch FCs are one conv d -> M·C; the BN after the pooled FC is a PooledBatchNorm2d (a
    batch-1 train-mode forward, as YOLOv5 runs when it builds a model, uses the running statistics there).
    `groups` must divide both channel counts (a ValueError says so). No deviation from the paper.
    attention_maps: {'branch0': N×C×1×1, 'branch1': ...}, the softmax weights of each branch (summing to 1).
    """

    def __init__(self, in_channels, out_channels=None, stride=1, kernel_sizes=(3, 3), dilations=(1, 2), groups=32,
                 rd_ratio=1 / 16, rd_channels=None, min_rd_channels=32, act_layer='relu'):
        super().__init__()
        out_channels = in_channels if out_channels is None else out_channels
        kernel_sizes, dilations = list(kernel_sizes), list(dilations)
        if len(kernel_sizes) != len(dilations) or len(kernel_sizes) < 2:
            raise ValueError(f'SelectiveKernel: kernel_sizes {kernel_sizes} and dilations {dilations} must have the '
                             f'same length, at least 2 (one per branch)')
        check_divisible('SelectiveKernel', in_channels, groups)
        check_divisible('SelectiveKernel', out_channels, groups)
        act = get_act_layer(act_layer)
        self.branches = nn.ModuleList(
            nn.Sequential(nn.Conv2d(in_channels, out_channels, k, stride, d * (k - 1) // 2, d, groups, bias=False),
                          nn.BatchNorm2d(out_channels), act())
            for k, d in zip(kernel_sizes, dilations))
        rd = make_rd_channels(out_channels, rd_ratio, rd_channels, min_channels=min_rd_channels)
        self.fc_reduce = nn.Conv2d(out_channels, rd, 1, bias=False)
        self.bn = PooledBatchNorm2d(rd)
        self.act = act()
        self.fc_select = nn.Conv2d(rd, out_channels * len(self.branches), 1, bias=False)

    def _attn(self, u):
        """u: N×M×C×H×W branch outputs -> N×M×C×1×1 softmax weights over the branches."""
        s = u.sum(1).mean((2, 3), keepdim=True)
        z = self.act(self.bn(self.fc_reduce(s)))
        a = self.fc_select(z)
        return a.reshape(a.shape[0], u.shape[1], -1, 1, 1).softmax(1)

    def _branches(self, x):
        return torch.stack([b(x) for b in self.branches], 1)

    def attention_maps(self, x, y=None):
        no_second_input(y)
        a = self._attn(self._branches(x))
        return {f'branch{m}': a[:, m] for m in range(a.shape[1])}

    def forward(self, x):
        u = self._branches(x)
        return (u * self._attn(u)).sum(1)


@declare_layer(name="SplitAttn", paper="Zhang et al., ResNeSt: Split-Attention Networks, 2020", family="kernel",
               changes_channels=True, yaml_args="[256, {stride: 2}]", aliases=("SplAt", "ResNeSt"),
               placements=(Placement("stage_downsamples",
                                     "YOLOv5s + split-attention convs (ResNeSt, Zhang et al. 2020): radix 2,\n"
                                     "cardinality 1, reduction 4."),))
class SplitAttn(AttentionModule):
    """Split attention (ResNeSt): a grouped conv gives `radix` splits; attention over the splits mixes them.

    x -> conv (in -> radix·C, groups = groups·radix) -> BN -> act; the radix splits are summed -> GAP ->
    fc1 (1x1, C -> attn_chs, grouped) -> BN -> act -> fc2 (1x1, attn_chs -> radix·C, grouped) -> softmax
    across the radix splits within each cardinal group (sigmoid when radix=1) -> Σ_r a_r · split_r.

    Paper: Zhang, Wu, Zhang, Zhu, Lin, Zhang, Sun, He, Mueller, Manmatha, Li, Smola, "ResNeSt: Split-Attention
    Networks", CVPR Workshops 2022 (arXiv 2020). Official code: github.com/zhanghang1989/ResNeSt (SplAtConv2d).
    Defaults: radix=2, groups (cardinality)=1, 3x3 conv, reduction 4 (rd_ratio=1/4), min_rd_channels=32:
    attn_chs = max(int(in_channels · radix / 4), 32) as in the official code (timm also rounds it to a
    multiple of 8: the same for channel counts that are multiples of 16, all of YOLOv5's).
    Choices: conv without bias, fc1/fc2 with bias (official); the BN after the pooled fc1 is a
    PooledBatchNorm2d (see SelectiveKernel); no DropBlock and no avg-pool downsampling (avd), which belong to
    the ResNeSt network rather than the split-attention conv. The split/cardinal channel layout and the
    radix-softmax follow the official rSoftMax exactly, so official weights load unchanged.
    attention_maps: {'split0': N×C×1×1, ...}, the weight of each radix split.
    """

    def __init__(self, in_channels, out_channels=None, kernel_size=3, stride=1, groups=1, radix=2, rd_ratio=1 / 4,
                 rd_channels=None, min_rd_channels=32, act_layer='relu'):
        super().__init__()
        out_channels = in_channels if out_channels is None else out_channels
        if radix < 1:
            raise ValueError(f'SplitAttn: radix must be >= 1, got {radix}')
        check_divisible('SplitAttn', in_channels, groups * radix, 'groups*radix')
        check_divisible('SplitAttn', out_channels, groups)
        self.radix, self.groups = radix, groups
        mid = out_channels * radix
        act = get_act_layer(act_layer)
        self.conv = nn.Conv2d(in_channels, mid, kernel_size, stride, kernel_size // 2, groups=groups * radix,
                              bias=False)
        self.bn0 = nn.BatchNorm2d(mid)
        self.act0 = act()
        attn_chs = make_rd_channels(in_channels * radix, rd_ratio, rd_channels, min_channels=min_rd_channels)
        check_divisible('SplitAttn', attn_chs, groups)
        self.fc1 = nn.Conv2d(out_channels, attn_chs, 1, groups=groups, bias=True)
        self.bn1 = PooledBatchNorm2d(attn_chs)
        self.act1 = act()
        self.fc2 = nn.Conv2d(attn_chs, mid, 1, groups=groups, bias=True)

    def _splits(self, x):
        u = self.act0(self.bn0(self.conv(x)))
        return u.reshape(u.shape[0], self.radix, -1, *u.shape[2:])  # N×radix×C×H×W

    def _attn(self, u):
        """N×radix×C×H×W splits -> N×radix×C×1×1 weights."""
        s = u.sum(1).mean((2, 3), keepdim=True)
        a = self.fc2(self.act1(self.bn1(self.fc1(s))))  # N×(groups·radix·C/groups) laid out group-major
        n = a.shape[0]
        if self.radix == 1:
            return torch.sigmoid(a).reshape(n, 1, -1, 1, 1)
        a = a.reshape(n, self.groups, self.radix, -1).transpose(1, 2).softmax(1)  # N×radix×groups×(C/groups)
        return a.reshape(n, self.radix, -1, 1, 1)

    def attention_maps(self, x, y=None):
        no_second_input(y)
        a = self._attn(self._splits(x))
        return {f'split{r}': a[:, r] for r in range(self.radix)}

    def forward(self, x):
        u = self._splits(x)
        return (u * self._attn(u)).sum(1)


def _conv_bn(c1, c2, stride=1, norm_layer=nn.BatchNorm2d):
    return nn.Sequential(nn.Conv2d(c1, c2, 3, stride, 1, bias=False), norm_layer(c2))


@declare_layer(name="SelfCalibConv",
               paper="Liu et al., Improving Convolutional Networks with Self-Calibrated Convolutions, CVPR 2020",
               family="kernel", changes_channels=True, yaml_args="[256, {stride: 2}]", aliases=("SelfCalibratedConv",),
               placements=(Placement("stage_downsamples",
                                     "YOLOv5s + self-calibrated convs (Liu et al., CVPR 2020; not the 2023 SCConv),\n"
                                     "pooling r=4."),))
class SelfCalibConv(AttentionModule):
    """Self-calibrated convolution (Liu et al. 2020; not the 2023 "SCConv" spatial/channel reconstruction conv).

    The channels split into halves X1, X2. Y2 = K1(X2) (plain conv branch). Self-calibration of X1:
    T = AvgPool_r(X1), X1' = Up(K2(T)), Y1' = K3(X1) · σ(X1 + X1'), Y1 = K4(Y1'). out = act([Y1, Y2]).
    K1..K4 are 3x3 conv + BN; K1 and K4 carry the stride and map to out_channels / 2.

    Paper: Liu, Hou, Cheng, Wang, Feng, "Improving Convolutional Networks with Self-Calibrated Convolutions",
    CVPR 2020. Official code: github.com/MCG-NKU/SCNet (scnet.py: SCConv holds the self-calibration branch,
    SCBottleneck adds the K1 branch and the ReLUs). Widely copied code keeps only the self-calibration branch;
    this is the whole convolution.
    Defaults: pooling_r=4, ReLU on the output (the official SCBottleneck applies ReLU to both halves),
    bilinear Up as in the paper (the official code uses nearest: upsample_mode='nearest').
    Choices / deviations:
      - X1, X2 are the first and second half of the input channels (the paper's split); the official
        bottleneck makes them with two 1x1 convs instead, which belong to the bottleneck, not to this conv;
      - average pooling uses ceil_mode: when H or W is not a multiple of r the border window averages the
        rows/columns that exist (the official floor mode drops them, and fails on maps smaller than r);
      - K2's BN (after pooling) is a PooledBatchNorm2d, so a pooled 1×1 map at batch 1 in training does not
        raise (YOLOv5's build forward); all other BNs are plain.
    in_channels and out_channels must be even.
    attention_maps: {'calibration': σ(X1 + X1'), N×(in/2)×H×W}.
    """

    def __init__(self, in_channels, out_channels=None, stride=1, pooling_r=4, act_layer='relu',
                 upsample_mode='bilinear'):
        super().__init__()
        out_channels = in_channels if out_channels is None else out_channels
        check_divisible('SelfCalibConv', in_channels, 2, 'halves')
        check_divisible('SelfCalibConv', out_channels, 2, 'halves')
        if upsample_mode not in ('bilinear', 'nearest'):
            raise ValueError(f"SelfCalibConv: upsample_mode must be 'bilinear' or 'nearest', got {upsample_mode!r}")
        c1, c2 = in_channels // 2, out_channels // 2
        self.pool = nn.AvgPool2d(pooling_r, pooling_r, ceil_mode=True)
        self.k1 = _conv_bn(c1, c2, stride)
        self.k2 = _conv_bn(c1, c1, norm_layer=PooledBatchNorm2d)
        self.k3 = _conv_bn(c1, c1)
        self.k4 = _conv_bn(c1, c2, stride)
        self.act = get_act_layer(act_layer)()
        self.upsample_mode = upsample_mode

    def _calibration(self, x1):
        up = self.k2(self.pool(x1))
        align = False if self.upsample_mode == 'bilinear' else None
        up = F.interpolate(up, size=x1.shape[2:], mode=self.upsample_mode, align_corners=align)
        return torch.sigmoid(x1 + up)

    def attention_maps(self, x, y=None):
        no_second_input(y)
        return {'calibration': self._calibration(x[:, :x.shape[1] // 2])}

    def forward(self, x):
        x1, x2 = x.chunk(2, 1)
        y1 = self.k4(self.k3(x1) * self._calibration(x1))
        return self.act(torch.cat([y1, self.k1(x2)], 1))
