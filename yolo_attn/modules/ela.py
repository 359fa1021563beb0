"""ELA: efficient local attention, 1-D convolutions along H and along W (no channel reduction)."""
import torch
import torch.nn as nn

from yolo_attn.errors import ModelConfigError

from ._base import DirectionalAttention, Placement, declare_layer
from ._precision import accumulation_dtype

# phi -> (kernel size, conv groups as a function of C, GroupNorm groups), as in the four-version class
ELA_VERSIONS = {
    'T': (5, lambda c: c, 32),
    'B': (7, lambda c: c, 16),
    'S': (5, lambda c: c // 8, 16),
    'L': (7, lambda c: c // 8, 16),
}


class _GroupNorm1d(nn.GroupNorm):
    """nn.GroupNorm on N×C×L, with its statistics in float32 and written out, so that a single value per group in
    training (L = 1 and one channel per group, e.g. a 1×N map) gives the shift instead of F.group_norm's error.
    Same parameters and state-dict names as nn.GroupNorm; identical output otherwise."""

    def forward(self, x):
        n, c, length = x.shape
        acc = accumulation_dtype(x)
        t = x.to(acc).reshape(n, self.num_groups, -1)
        mean = t.mean(2, keepdim=True)
        var = (t - mean).square().mean(2, keepdim=True)
        t = ((t - mean) * torch.rsqrt(var + self.eps)).reshape(n, c, length)
        return (t * self.weight.to(acc).reshape(1, -1, 1) + self.bias.to(acc).reshape(1, -1, 1)).to(x.dtype)


@declare_layer(name="ELA", paper="Xu & Wan, ELA: Efficient Local Attention for Deep Convolutional Neural Networks, "
                                 "arXiv 2403.01123, 2024", family="hybrid",
               aliases=("EfficientLocalAttention", "EfficientLocalizationAttention"), foreign_args=("phi",),
               placements=(Placement("stage_outputs",
                                     "YOLOv5s + ELA (Xu & Wan, arXiv 2403.01123, 2024), ELA-B: depth-wise 1-D kernel "
                                     "7, GroupNorm 16."),))
class ELA(DirectionalAttention):
    """Efficient Local Attention: out = x · a_h · a_w, a_h depending on the row only, a_w on the column.

    z_h = mean of x over W (N×C×H), z_w = mean over H (N×C×W); a_h = σ(GN(Conv1d(z_h))) -> N×C×H×1,
    a_w = σ(GN(Conv1d(z_w))) -> N×C×1×W, with ONE Conv1d (C -> C, kernel k, padding k//2, no bias) and ONE
    GroupNorm shared by the two directions. Unlike Coordinate Attention: no channel reduction, GroupNorm instead
    of BN, the two directions are not concatenated.

    Paper: Wei Xu, Yi Wan, "ELA: Efficient Local Attention for Deep Convolutional Neural Networks", arXiv
    2403.01123 (2024). No official repository exists (the plug-in copies state "官方github：无"); this follows the
    four-version class the plug-in-module collections copy, ELA(in_channels, phi):
      phi 'T': k 5, depth-wise (groups C), GroupNorm 32 groups;   'B': k 7, depth-wise, GroupNorm 16;
      phi 'S': k 5, groups C/8, GroupNorm 16;                      'L': k 7, groups C/8, GroupNorm 16.
    T/B for light or shallow networks, S/L for deeper and larger ones (the paper's advice).
    Defaults: phi = 'B', which is also the one-argument copy ELA(channel, kernel_size=7) with GroupNorm(16).
    Parameters: k·C·(C/groups) + 2·C (ELA-B: 9·C; 576 at C = 64; T 448, S 2,688, L 3,712).
    Not ELA: the z1069614715 YOLO copy (cv-attention/ELA.py) uses a full kernel-1 Conv1d — another module.
    Choices: the 1-D means are tensor means in float32 (no AdaptiveAvgPool2d((None, 1)): ONNX-friendly); the
    GroupNorm's statistics are computed in float32 and cast back (float16-safe), and written out so that one value
    per group in training (a 1×1 map with 16 channels at batch 1) gives the shift instead of the error of
    nn.GroupNorm. Any H×W works (no windows). Otherwise the copied computation exactly.
    Constraints: C divisible by the GroupNorm groups (32 for T, 16 otherwise) — a ModelConfigError otherwise.
    attention_maps: {'h': N×C×H×1, 'w': N×C×1×W}; applied_gates: {'h⊗w': a_h·a_w, N×C×H×W}.
    """

    def __init__(self, channels: int, phi: str = 'B'):
        super().__init__()
        key = phi.upper() if isinstance(phi, str) else phi
        if key not in ELA_VERSIONS:
            raise ModelConfigError(f"ELA: phi={phi!r} is not an ELA version; choose one of 'T', 'B', 'S', 'L'")
        k, groups_of, gn_groups = ELA_VERSIONS[key]
        if channels < 1 or channels % gn_groups:
            fits = [p for p, (_, _, g) in ELA_VERSIONS.items() if channels >= 1 and channels % g == 0]
            raise ModelConfigError(
                f"ELA: ELA-{key} normalises {gn_groups} groups, so the channel count must be a multiple of "
                f"{gn_groups}; {channels} channels is not" + (f" (phi {', '.join(map(repr, fits))} would fit)"
                                                              if fits else ""))
        self.phi = key
        self.conv = nn.Conv1d(channels, channels, k, padding=k // 2, groups=groups_of(channels), bias=False)
        self.gn = _GroupNorm1d(gn_groups, channels)

    def _attn(self, x):
        acc = accumulation_dtype(x)
        z_h = x.mean(3, dtype=acc).to(x.dtype)  # N×C×H, summed in float32 for float16 input
        z_w = x.mean(2, dtype=acc).to(x.dtype)  # N×C×W
        a_h = torch.sigmoid(self.gn(self.conv(z_h)))
        a_w = torch.sigmoid(self.gn(self.conv(z_w)))
        return a_h.unsqueeze(3), a_w.unsqueeze(2)
