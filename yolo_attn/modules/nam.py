"""NAM: normalization-based channel attention from BatchNorm's own scale factors."""
import torch

from ._base import AttentionModule, Placement, declare_layer
from ._common import PooledBatchNorm2d, no_second_input


@declare_layer(name="NAM", paper="Liu et al., NAM: Normalization-based Attention Module, arXiv 2021",
               family="channel", aliases=("NAMAttention",),
               placements=(Placement("stage_outputs",
                                     "YOLOv5s + NAM channel attention (Liu et al., 2021), BN scale factors as "
                                     "weights."),))
class NAM(AttentionModule):
    """NAM channel attention: out = x · σ(w ⊙ BN(x)), w_i = |γ_i| / Σ_j |γ_j| from the BN's own scales γ.

    The BN's scale factors measure how much each channel varies; normalised, they weight the normalised map
    before the sigmoid, so channels the BN keeps small are suppressed.

    Paper: Liu, Shao, Teng, Hoffmann, "NAM: Normalization-based Attention Module", NeurIPS 2021 workshop,
    arXiv 2111.12419. Official code: github.com/Christian-lyc/NAM (Channel_Att: BatchNorm2d(affine) and
    weight_bn = |γ| / Σ|γ|; only the channel module is used by its Att block, the spatial one is not in it).
    Defaults: eps = 1e-5 (BN), detach_weights = False.
    Choices / deviations:
      - w keeps its gradient, as the paper's formula reads; the official code computes it from `weight.data`
        (no gradient through w; γ then learns through the BN output only): detach_weights=True reproduces that;
      - the absolute value |γ| of the official code (the paper writes γ_i / Σ γ_j);
      - the BN is a PooledBatchNorm2d (a batch-1, 1×1 map in training uses the running statistics);
      - channel attention only: the paper's pixel-normalisation spatial variant has no official code.
    2·C parameters (the BN's γ, β). attention_maps: {'channel': σ(w ⊙ BN(x)), N×C×H×W}.
    """

    def __init__(self, channels: int, eps: float = 1e-5, detach_weights: bool = False):
        super().__init__()
        self.bn = PooledBatchNorm2d(channels, eps=eps)
        self.detach_weights = bool(detach_weights)

    def _attn(self, x):
        gamma = self.bn.weight.detach() if self.detach_weights else self.bn.weight
        w = gamma.abs() / gamma.abs().sum()
        return torch.sigmoid(self.bn(x) * w.reshape(1, -1, 1, 1))

    def attention_maps(self, x, y=None):
        no_second_input(y)
        return {'channel': self._attn(x)}

    def forward(self, x):
        return x * self._attn(x)
