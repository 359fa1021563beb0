"""Parameter counts of ResNet-50 with each new module in every bottleneck (after bn3, the residual branch before the
addition, where SE, CBAM, triplet and shuffle attention sit), counted on the meta device, against the papers' tables."""
import pytest
import torch
import torch.nn as nn
import torchvision

from yolo_attn.inject import add_attention, count_parameters

RESNET50 = 25_557_032
BOTTLENECKS = [(3, 256), (4, 512), (6, 1024), (3, 2048)]  # (blocks, output channels) per stage


def resnet50_with(layer, **kwargs):
    with torch.device("meta"):
        m = torchvision.models.resnet50(weights=None)
    assert len(add_attention(m, layer, after="layer*.*.bn3", **kwargs)) == 16
    return count_parameters(m)


def test_triplet_resnet50_matches_the_published_25_56m():
    """Misra et al., WACV 2021, Table 1: ResNet-50 + triplet attention, 25.56M (300 parameters per block)."""
    n = resnet50_with("tripletattention")
    assert n == RESNET50 + 16 * 300 and round(n / 1e6, 2) == 25.56


def test_sa_resnet50_matches_the_published_25_56m():
    """Zhang & Yang, ICASSP 2021, Table 1: SA-Net-50, 25.56M params (3·C/G per block, G = 64)."""
    n = resnet50_with("shuffleattn")
    assert n - RESNET50 == sum(k * 3 * c // 64 for k, c in BOTTLENECKS) == 708
    assert round(n / 1e6, 2) == 25.56


def test_simam_adds_no_parameter():
    """Yang et al., ICML 2021: parameter-free; SimAM-ResNet-50 has ResNet-50's 25.56M."""
    assert resnet50_with("simam") == RESNET50


@pytest.mark.parametrize("layer, per_block", [
    ("gcblock", lambda c: c + (c * (c // 16) + c // 16) + 2 * (c // 16) + (c // 16 * c + c)),  # r = 16, no mask bias
    ("ema", lambda c: 10 * (c // 32) ** 2 + 4 * (c // 32)),
    ("nam", lambda c: 2 * c),
])
def test_counts_follow_the_per_block_formula(layer, per_block):
    """Figures the papers do not state for this placement (see the report): the count is the formula's, exactly."""
    assert resnet50_with(layer) - RESNET50 == sum(k * per_block(c) for k, c in BOTTLENECKS)


def _biformer(depth, dims, topks, num_classes=1000):
    """BiFormer (Zhu et al., CVPR 2023; rayleizhu/BiFormer models/biformer.py) built around our
    BiLevelRoutingAttention: conv stem and stride-2 conv+BN downsamples, blocks of DW3×3 positional conv, LN,
    attention, LN, MLP ×3; BN and a linear head. head_dim 32, n_win 7, side_dwconv (LePE) 5, qk_dim = dim."""
    from torch import nn

    from yolo_attn.modules import BiLevelRoutingAttention

    def block(c, topk):
        # topk −2 (stage 4): plain global attention + LePE, which is BRA with one region (n_win 1, topk 1)
        attn = BiLevelRoutingAttention(c, num_heads=c // 32, n_win=7 if topk > 0 else 1, topk=max(topk, 1),
                                       side_dwconv=5)
        return nn.ModuleList([nn.Conv2d(c, c, 3, padding=1, groups=c), nn.LayerNorm(c), attn, nn.LayerNorm(c),
                              nn.Linear(c, 3 * c), nn.Linear(3 * c, c)])

    with torch.device("meta"):
        parts = [nn.Conv2d(3, dims[0] // 2, 3, 2, 1), nn.BatchNorm2d(dims[0] // 2),
                 nn.Conv2d(dims[0] // 2, dims[0], 3, 2, 1), nn.BatchNorm2d(dims[0])]
        for i in range(3):
            parts += [nn.Conv2d(dims[i], dims[i + 1], 3, 2, 1), nn.BatchNorm2d(dims[i + 1])]
        for n, c, k in zip(depth, dims, topks):
            parts += [block(c, k) for _ in range(n)]
        parts += [nn.BatchNorm2d(dims[-1]), nn.Linear(dims[-1], num_classes)]
        return nn.ModuleList(parts)


def test_biformer_t_matches_the_published_13_1m():
    """BiFormer-T (ImageNet-1k, README/paper: 13.1M params): depths 2-2-8-2, dims 64-128-256-512, topk 1-4-16-(−2).
    Stage 4's official AttentionLePE has a qkv Linear without bias (our one-region BRA has one: 3·512 per block),
    subtracted here; everything else is the same parameter for parameter."""
    model = _biformer([2, 2, 8, 2], [64, 128, 256, 512], [1, 4, 16, -2])
    n = count_parameters(model) - 2 * 3 * 512
    # blocks 10c² + 48c each, stem 19,584, downsamples 1,550,976, final BN + head 514,024
    assert n == 13_142_760 and round(n / 1e6, 1) == 13.1


# --- whole networks rebuilt from our blocks (issue #23) ---------------------------------------------------------------

def _count(layers):
    return sum(p.numel() for p in nn.ModuleList(layers).parameters())


def emo(depths, dims, exp_ratios, dim_heads):
    """EMO (zhangzjn/EMO model/emo.py): MSPatchEmb stem (3x3 stride-2 conv with bias + BN), a stride-1 iRMB with SE
    (ratio 1) and no attention, four stages of iRMBs (the first of each: stride 2, no skip, no attention, exp_ratio
    doubled; BN + SiLU + 3x3 in stages 1-2, LN + GELU + 5x5 with attention in stages 3-4, qkv_bias, attn_pre), the
    final LayerNorm and the 1000-class Linear. iRMB itself is ours, the glue is written here."""
    from yolo_attn.modules import iRMB

    with torch.device("meta"):
        layers = [nn.Conv2d(3, 24, 3, 2, 1), nn.BatchNorm2d(24),
                  iRMB(24, 24, norm_in=False, has_skip=False, v_proj=False, se_ratio=1.0, attn_s=False,
                       act_layer="silu")]
        prev = 24
        for i, (depth, dim, e, head) in enumerate(zip(depths, dims, exp_ratios, dim_heads)):
            norm, act, ks = ("bn_2d", "silu", 3) if i < 2 else ("ln_2d", "gelu", 5)
            for j in range(depth):
                layers.append(iRMB(prev, dim, has_skip=j > 0, exp_ratio=e * 2 if j == 0 else e, norm_layer=norm,
                                   act_layer=act, dw_ks=ks, stride=1 if j else 2, dim_head=head,
                                   attn_s=i >= 2 and j > 0, qkv_bias=True, attn_pre=True))
                prev = dim
        layers += [nn.LayerNorm(prev), nn.Linear(prev, 1000)]
    return _count(layers)


@pytest.mark.parametrize("name, config, count, published", [
    ("EMO-1M", ([2, 2, 8, 3], [32, 48, 80, 168], [2, 2.5, 3, 3.5], [16, 16, 20, 21]), 1_361_168, 1.3),
    ("EMO-2M", ([3, 3, 9, 3], [32, 48, 120, 200], [2, 2.5, 3, 3.5], [16, 16, 20, 20]), 2_377_472, 2.3),
    ("EMO-5M", ([3, 3, 9, 3], [48, 72, 160, 288], [2, 3, 4, 4], [24, 24, 32, 32]), 5_108_848, 5.1),
    ("EMO-6M", ([3, 3, 9, 3], [48, 72, 160, 320], [2, 3, 4, 5], [16, 24, 20, 32]), 6_168_496, 6.1),
])
def test_emo_from_our_irmb_matches_the_published_counts(name, config, count, published):
    """Zhang et al., ICCV 2023 (README / Table): EMO-1M/2M/5M/6M 1.3M/2.3M/5.1M/6.1M. The published figures are these
    counts truncated to one decimal (1.36M is printed 1.3M, 2.38M 2.3M, 6.17M 6.1M), not rounded."""
    n = emo(*config)
    assert n == count and int(n / 1e5) / 10 == published


def test_efficientvit_m0_from_our_cga_matches_the_published_2_3m():
    """Liu et al., CVPR 2023: EfficientViT-M0, 2.3M params (timm's efficientvit_m0: 2.35M). Patch embedding (four
    3x3 stride-2 Conv+BN), stages 64/128/192 with 1/2/3 blocks (DW3x3 -> FFN(2x) -> CGA -> DW3x3 -> FFN), the two
    subsample blocks (DW + FFN, PatchMerging with SE(0.25), DW + FFN) and the BN+Linear head; CGA is ours
    (4 heads, key_dim 16, kernels 5; window min(7, resolution): 7, 7, 4 at 224 px, as the official code builds)."""
    from yolo_attn.modules import CGA

    def conv_bn(a, b, k=1, groups=1):
        return [nn.Conv2d(a, b, k, padding=k // 2, groups=groups, bias=False), nn.BatchNorm2d(b)]

    def block_glue(c):  # DW 3x3 + FFN(2x), each Conv2d_BN
        return conv_bn(c, c, 3, c) + conv_bn(c, 2 * c) + conv_bn(2 * c, c)

    dims, depths, resolutions = (64, 128, 192), (1, 2, 3), (14, 7, 4)
    with torch.device("meta"):
        layers = conv_bn(3, 8, 3) + conv_bn(8, 16, 3) + conv_bn(16, 32, 3) + conv_bn(32, 64, 3)
        for i, c in enumerate(dims):
            if i:
                p, h = dims[i - 1], 4 * dims[i - 1]
                layers += block_glue(p) + conv_bn(p, h) + conv_bn(h, h, 3, h) + [nn.Conv2d(h, h // 4, 1),
                                                                              nn.Conv2d(h // 4, h, 1)]
                layers += conv_bn(h, c) + block_glue(c)
            for _ in range(depths[i]):
                layers += block_glue(c) + [CGA(c, 16, 4, min(7, resolutions[i]), 5, residual=False)] + block_glue(c)
        layers += [nn.BatchNorm1d(dims[-1]), nn.Linear(dims[-1], 1000)]
    n = _count(layers)
    assert n == 2_349_436 and round(n / 1e6, 1) == 2.3
