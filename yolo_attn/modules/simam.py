"""SimAM: a parameter-free attention from an energy function of each neuron."""
import torch

from ._base import AttentionModule, Placement, declare_layer
from ._common import no_second_input
from ._precision import float32_statistics


@declare_layer(name="SimAM", paper="Yang et al., SimAM: A Simple, Parameter-Free Attention Module, ICML 2021",
               family="hybrid", aliases=("simam_module", "SimAMAttention"), foreign_args=("e_lambda",),
               placements=(Placement("stage_outputs", "YOLOv5s + SimAM (Yang et al., ICML 2021), lambda = 1e-4, "
                                                      "no parameters."),))
class SimAM(AttentionModule):
    """SimAM: out = x · σ(1/e*), 1/e* = (x − μ)² / (4(σ² + λ)) + 1/2, per channel over the H×W positions.

    μ is the channel's mean over its positions and σ² = Σ(x − μ)² / (H·W − 1), the variance of the other neurons
    as the paper's closed-form minimal energy uses it. A full 3-D (C×H×W) gate without any parameter.

    Paper: Yang, Zhang, Li, Xie, "SimAM: A Simple, Parameter-Free Attention Module for Convolutional Neural
    Networks", ICML 2021. Official code: github.com/ZjjConan/SimAM (simam_module, e_lambda=1e-4).
    Defaults: e_lambda = 1e-4 (the paper's λ). `channels` is accepted for the uniform signature and unused.
    Deviation: on a 1×1 map H·W − 1 = 0 and the official code divides 0 by 0 (NaN); here the divisor is
    max(H·W − 1, 1), so the gate is σ(1/2) there. Otherwise the official computation exactly.
    attention_maps: {'energy': σ(1/e*), N×C×H×W}.
    """

    def __init__(self, channels: int = 0, e_lambda: float = 1e-4):
        super().__init__()
        self.e_lambda = float(e_lambda)

    @float32_statistics  # Σ(x − μ)² over the map passes float16's 65,504 at activations of ~10
    def _attn(self, x):
        n = max(x.shape[2] * x.shape[3] - 1, 1)
        d = (x - x.mean((2, 3), keepdim=True)).square()
        return torch.sigmoid(d / (4 * (d.sum((2, 3), keepdim=True) / n + self.e_lambda)) + 0.5)

    def attention_maps(self, x, y=None):
        no_second_input(y)
        return {'energy': self._attn(x)}

    def forward(self, x):
        return x * self._attn(x)
