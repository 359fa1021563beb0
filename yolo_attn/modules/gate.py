"""Attention gate (Attention U-Net): a skip feature gated by a coarser signal."""
import torch.nn as nn
import torch.nn.functional as F

from ._base import AttentionModule, Placement, declare_layer
from ._common import get_act_layer, make_rd_channels, two_maps


@declare_layer(name="AttnGate", paper="Oktay et al., Attention U-Net, MIDL 2018", family="gate", inputs=2,
               out_from_first=True, aliases=("AttentionGate", "AG"),
               placements=(Placement("top_down_skips",
                                     "YOLOv5s + attention gates (Oktay et al., Attention U-Net, 2018) on the neck's\n"
                                     "top-down skips, as in the U-Net decoder: before each top-down Concat the backbone\n"
                                     "skip (P4 row 6, P3 row 4) is gated by the coarser map that is being upsampled into\n"
                                     "that Concat (the 1x1 Conv rows 10 and 14), i.e. from: [skip, gate] = [6, 10] and\n"
                                     "[4, 14] in the stock numbering. The gated skip keeps its channels, so the Concat\n"
                                     "and everything after it are unchanged; rows are re-numbered."),))
class AttnGate(AttentionModule):
    """Additive attention gate: α = σ(ψ(act(W_x x + W_g g + b_g)) + b_ψ), out = x · α.

    x is the skip feature (C_x channels, higher resolution), g the gating signal from a coarser level (C_g
    channels, lower or equal resolution); W_x: 1x1 C_x -> F_int (no bias), W_g: 1x1 C_g -> F_int (bias b_g),
    ψ: 1x1 F_int -> 1 (bias b_ψ). The output has x's shape. Two inputs: forward(x, g) or forward([x, g]); in a
    YAML, `from: [skip, gate]`, output channels = the skip's.

    Paper: Oktay, Schlemper, Le Folgoc, Lee, Heinrich, Misawa, Mori, McDonagh, Hammerla, Kainz, Glocker,
    Rueckert, "Attention U-Net: Learning Where to Look for the Pancreas", MIDL 2018 (arXiv 1804.03999).
    Official code: github.com/ozan-oktay/Attention-Gated-Networks (GridAttentionBlock).
    Defaults: F_int = C_x / 2 (rd_ratio=1/2, as the official inter_channels), ReLU, sigmoid; gate_channels=None
    means C_g = C_x.
    Choices / deviations:
      - the sum W_x x + W_g g is formed on x's grid: W_g g is resampled bilinearly (align_corners=False) to x's
        size. The paper forms it on g's grid (W_x strided) and resamples α instead; forming it on x's grid
        needs no integer resolution ratio (odd sizes work) at the cost of evaluating it at x's resolution;
      - no output transform (the official code's extra 1x1 conv + BN after the gating, not in the paper's
        formula);
      - g must not be finer than x (a swapped [gate, skip] order is refused with a message); a widely copied
        tutorial gates x with itself, which loses the idea: in a YAML, the parser refuses from: [a, a].
    attention_maps(x, g): {'gate': α, N×1×H_x×W_x}.
    """

    def __init__(self, channels, gate_channels=None, rd_ratio=1 / 2, rd_channels=None, act_layer='relu',
                 gate_layer='sigmoid'):
        super().__init__()
        gate_channels = channels if gate_channels is None else gate_channels
        inter = make_rd_channels(channels, rd_ratio, rd_channels)
        self.w_x = nn.Conv2d(channels, inter, 1, bias=False)
        self.w_g = nn.Conv2d(gate_channels, inter, 1, bias=True)
        self.act = get_act_layer(act_layer)()
        self.psi = nn.Conv2d(inter, 1, 1, bias=True)
        self.gate = get_act_layer(gate_layer)()

    def _inputs(self, x, g):
        x, g = two_maps(x, g)
        if x.shape[1] != self.w_x.in_channels or g.shape[1] != self.w_g.in_channels:
            raise ValueError(f'AttnGate: expected a skip map with {self.w_x.in_channels} channels and a gating map '
                             f'with {self.w_g.in_channels}, got {x.shape[1]} and {g.shape[1]}')
        if g.shape[2] > x.shape[2] or g.shape[3] > x.shape[3]:
            raise ValueError(f'AttnGate: the gating signal ({g.shape[2]}×{g.shape[3]}) is finer than the skip '
                             f'feature ({x.shape[2]}×{x.shape[3]}); the inputs are [skip, gate]: the gate comes from '
                             f'a coarser (deeper) level. Swap the two entries of from.')
        return x, g

    def _attn(self, x, g):
        gg = self.w_g(g)
        if gg.shape[2:] != x.shape[2:]:
            gg = F.interpolate(gg, size=x.shape[2:], mode='bilinear', align_corners=False)
        return self.gate(self.psi(self.act(self.w_x(x) + gg)))

    def attention_maps(self, x, y=None):
        return {'gate': self._attn(*self._inputs(x, y))}

    def forward(self, x, y=None):
        x, g = self._inputs(x, y)
        return x * self._attn(x, g)
