"""Global context: Non-local (embedded Gaussian) and A² / Double Attention.

Both relate every position to every other one. Non-local's cost grows as (H·W)²; A²'s grows as H·W but
its gather step still summarises the whole map. Place them at low resolution (P5 in YOLOv5).
"""
import torch
import torch.nn as nn

from ._base import AttentionModule, Placement, declare_layer
from ._common import PooledBatchNorm2d, make_rd_channels, no_second_input
from ._precision import float32_statistics


@declare_layer(name="NonLocal", paper="Wang et al., Non-local Neural Networks, CVPR 2018 (embedded Gaussian)",
               family="global", aliases=("NL", "NonLocalBlock", "NonLocal2d", "NLBlock"), starts_as_identity=True,
               placements=(Placement("end_of_backbone",
                                     "YOLOv5s + Non-local block (Wang et al., CVPR 2018), embedded Gaussian, C/2 inner\n"
                                     "channels, zero-initialised output BN (the block starts as the identity).\n"
                                     "Placement: one block after SPPF (row 9), at P5/32 (20×20 at 640 px). Its affinity\n"
                                     "grows as (H·W)², so it is used only at the lowest resolution; the paper also adds\n"
                                     "it to a late, low-resolution stage (res4)."),))
class NonLocal(AttentionModule):
    """Non-local block, embedded Gaussian: z = BN(W_z(y)) + x, y_i = Σ_j softmax_j(θ(x_i)ᵀ φ(x_j)) g(x_j).

    θ, φ, g are 1x1 convs C -> C/2; the softmax runs over the key positions j; W_z is a 1x1 conv
    C/2 -> C followed by BN whose scale is initialised to zero, so a fresh block is exactly the identity.

    Paper: Wang, Girshick, Gupta, He, "Non-local Neural Networks", CVPR 2018.
    Official code: github.com/facebookresearch/video-nonlocal-net (Caffe2): θ/φ/g convs with bias, output conv
    then BN with gamma initialised to 0.
    Defaults: rd_ratio=1/2 (C/2 inner channels), use_scale=True: the logits θᵀφ are scaled by 1/sqrt(d), d the
    inner width, as the official code (USE_SCALE) and mmcv's NonLocal2d do by default; the paper's formula has no
    scale (use_scale=False). Measured on yolov5s's P5 map (d=256, 20×20, fresh model, batch statistics): unscaled,
    a fresh block's softmax already concentrates on ~118 of 400 keys (largest weight 0.11), and the logits' spread
    grows as sqrt(d) with the model's width; scaled, it starts near-uniform at every width. zero_init=True.
    Choices / deviations:
      - only θ has a bias (the official code gives θ, φ, g and W_z one each): a bias on φ adds θ_iᵀb to every
        logit of query i, which the softmax over j cancels; a bias on g passes through the weighted mean (the
        weights sum to 1) as a constant, and a constant before the output BN, like a bias on W_z, is cancelled
        by it in training and absorbed by it otherwise. Such biases would be parameters that never learn;
      - no sub-sampling of φ and g by max-pooling (the paper's optional efficiency trick);
      - the output BN is a PooledBatchNorm2d, i.e. plain BatchNorm2d except that a batch-1, 1×1 map in
        training normalises with the running statistics instead of raising.
    Cost: (H·W)² · C per image for the affinity; use it at P5 (20×20 at 640 px), not at high resolution.
    attention_maps: {'affinity': N×(H·W)×H×W}, row i = the softmax weights of query position i over the map.
    """

    def __init__(self, channels, rd_ratio=1 / 2, rd_channels=None, use_scale=True, zero_init=True):
        super().__init__()
        inner = make_rd_channels(channels, rd_ratio, rd_channels)
        self.theta = nn.Conv2d(channels, inner, 1, bias=True)
        self.phi = nn.Conv2d(channels, inner, 1, bias=False)  # a bias here is cancelled by the softmax over j
        self.g = nn.Conv2d(channels, inner, 1, bias=False)  # a bias here ends as a constant before the BN
        self.w_z = nn.Conv2d(inner, channels, 1, bias=False)
        self.bn = PooledBatchNorm2d(channels)
        self.scale = inner ** -0.5 if use_scale else 1.0
        if zero_init:
            nn.init.zeros_(self.bn.weight)

    @float32_statistics  # logits (θ, φ and their products summed over C') in float32: float16 keeps ~3 digits
    def _affinity(self, x):
        q = self.theta(x).flatten(2).transpose(1, 2)  # N×HW×C'
        k = self.phi(x).flatten(2)  # N×C'×HW
        logits = torch.bmm(q, k)
        if self.scale != 1.0:
            logits = logits * self.scale
        return logits.softmax(-1)  # N×HW(query)×HW(key)

    def attention_maps(self, x, y=None):
        no_second_input(y)
        n, _, h, w = x.shape
        return {'affinity': self._affinity(x).reshape(n, h * w, h, w)}

    def forward(self, x):
        n, _, h, w = x.shape
        f = self._affinity(x)
        v = self.g(x).flatten(2)  # N×C'×HW
        y = torch.bmm(v, f.transpose(1, 2)).reshape(n, -1, h, w)  # y[:, :, i] = Σ_j f[i, j] v[:, j]
        return self.bn(self.w_z(y)) + x


@declare_layer(name="DoubleAttn", paper="Chen et al., A²-Nets: Double Attention Networks, NeurIPS 2018",
               family="global", changes_channels=True, yaml_args="[1024]", aliases=("A2", "DoubleAttention"),
               placements=(Placement("end_of_backbone",
                                     "YOLOv5s + A² double attention (Chen et al., NeurIPS 2018), c_m = c_n = C/4,\n"
                                     "residual. Placement: one block after SPPF (row 9), at P5/32, the lowest\n"
                                     "resolution, like the Non-local variant (A² summarises the whole map into\n"
                                     "global descriptors). Its arg is the output channel count (1024, scaled by\n"
                                     "width_multiple like a Conv), here equal to its input.", args=(1024,)),))
class DoubleAttn(AttentionModule):
    """A² / Double Attention: gather global descriptors, distribute them back to every position.

    A = conv_a(x) (c_m maps), B = conv_b(x), V = conv_v(x) (c_n maps each), 1x1 convs.
    Gather: G = A · softmax_positions(B)ᵀ, c_m × c_n global descriptors (descriptor j = A pooled with the
    attention map B_j). Distribute: Z = G · softmax_descriptors(V): at each position a distribution over
    the c_n descriptors. Output: conv_out(Z) (1x1 c_m -> out, with bias) + shortcut(x).

    Paper: Chen, Kalantidis, Li, Yan, Feng, "A²-Nets: Double Attention Networks", NeurIPS 2018.
    Defaults: rd_ratio=1/4 (c_m = c_n = C/4; override with c_m, c_n), residual=True.
    Choices / deviations:
      - conv_a, conv_v and conv_out have biases; conv_b has none: a per-map constant is cancelled by the softmax
        over positions (it would never learn);
      - the distribution softmax runs over the c_n descriptors at each position, as in the paper; widely
        copied code takes it over positions, which is not the paper's module;
      - the paper adds the reconstructed Z back to the input; when out_channels differs from the input the
        shortcut is a 1x1 conv + BN projection (ResNet's option B; a PooledBatchNorm2d, so a batch-1 1×1 map
        in training does not raise), otherwise the identity; residual=False drops it (the output is then
        conv_out(Z) alone);
      - registered as a channel-changing layer: its first YAML arg is the output channel count.
    Cost: linear in H·W (C·(c_m + 2c_n) per position plus 2·c_m·c_n); still placed at low resolution.
    attention_maps: {'gather': softmax over positions of B, 'distribute': softmax over descriptors of V},
    both N×c_n×H×W.
    """

    def __init__(self, in_channels, out_channels=None, rd_ratio=1 / 4, c_m=None, c_n=None, residual=True):
        super().__init__()
        out_channels = in_channels if out_channels is None else out_channels
        c_m = make_rd_channels(in_channels, rd_ratio, c_m)
        c_n = make_rd_channels(in_channels, rd_ratio, c_n)
        self.conv_a = nn.Conv2d(in_channels, c_m, 1, bias=True)
        self.conv_b = nn.Conv2d(in_channels, c_n, 1, bias=False)  # a bias is cancelled by the softmax
        self.conv_v = nn.Conv2d(in_channels, c_n, 1, bias=True)
        self.conv_out = nn.Conv2d(c_m, out_channels, 1, bias=True)
        if not residual:
            self.shortcut = None
        elif out_channels == in_channels:
            self.shortcut = nn.Identity()
        else:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False),
                                          PooledBatchNorm2d(out_channels))

    @float32_statistics  # softmax logits (1x1 convs of x) in float32: float16 keeps ~3 digits of them
    def _attn(self, x):
        gather = self.conv_b(x).flatten(2).softmax(-1)  # N×c_n×HW, over positions
        distribute = self.conv_v(x).flatten(2).softmax(1)  # N×c_n×HW, over descriptors
        return gather, distribute

    def attention_maps(self, x, y=None):
        no_second_input(y)
        gather, distribute = self._attn(x)
        return {'gather': gather.reshape(x.shape[0], -1, *x.shape[2:]),
                'distribute': distribute.reshape(x.shape[0], -1, *x.shape[2:])}

    def forward(self, x):
        n, _, h, w = x.shape
        gather, distribute = self._attn(x)
        descriptors = torch.bmm(self.conv_a(x).flatten(2), gather.transpose(1, 2))  # N×c_m×c_n
        z = torch.bmm(descriptors, distribute).reshape(n, -1, h, w)  # N×c_m×H×W
        out = self.conv_out(z)
        return out if self.shortcut is None else out + self.shortcut(x)
