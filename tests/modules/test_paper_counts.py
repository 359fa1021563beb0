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
