"""Parameter counts of ResNet-50 with each new module in every bottleneck (after bn3, the residual branch before the
addition, where SE, CBAM, triplet and shuffle attention sit), counted on the meta device, against the papers' tables."""
import pytest
import torch
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
