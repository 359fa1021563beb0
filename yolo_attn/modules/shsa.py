"""SHSA (SHViT, CVPR 2024): single-head self-attention on a fraction of the channels."""
from typing import Optional

import torch
import torch.nn as nn

from ..errors import ModelConfigError
from ._base import AttentionModule, Placement, declare_layer
from ._common import ConvBN, no_second_input, softmax_attention


class _OneGroupNorm(nn.GroupNorm):
    """SHViT's GroupNorm(1, C): each sample normalised over all its C×H×W values, then scaled and shifted per
    channel. Written out with float32 statistics (also for float16 input), so that a single value in training gives
    the shift instead of raising; same parameters and state-dict names as nn.GroupNorm(1, C)."""

    def __init__(self, channels, eps=1e-5):
        super().__init__(1, channels, eps=eps)

    def forward(self, x):
        t = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
        mean = t.mean((1, 2, 3), keepdim=True)
        var = (t - mean).square().mean((1, 2, 3), keepdim=True)
        y = (t - mean) * torch.rsqrt(var + self.eps)
        return (y * self.weight.reshape(1, -1, 1, 1).to(y.dtype) + self.bias.reshape(1, -1, 1, 1).to(y.dtype)).to(x.dtype)


@declare_layer(name="SHSA", paper="Yun & Ro, SHViT: Single-Head Vision Transformer with Memory Efficient Macro "
                                  "Design, CVPR 2024", family="global",
               aliases=("SingleHeadSelfAttention", "SHSABlock"), starts_as_identity=True,
               placements=(Placement("end_of_backbone",
                                     "YOLOv5s + SHSA (Yun & Ro, SHViT, CVPR 2024): single-head global attention on\n"
                                     "C/4.67 channels, qk_dim 16, with SHViT's residual around it (zero-initialised\n"
                                     "output BN: the block starts as the identity). Placement: one block after SPPF\n"
                                     "(row 9), at P5/32 (20×20 at 640 px); its attention grows as (H·W)², and SHViT\n"
                                     "itself uses it only in its low-resolution stages."),))
class SHSA(AttentionModule):
    """Single-head self-attention on the first pdim channels: out = x + BN(Conv1x1(ReLU([Attn(x₁), x₂]))).

    Forward: x₁, x₂ = x[:, :pdim], x[:, pdim:]; t = GroupNorm(1 group)(x₁); q, k, v = BN(Conv1x1(t)) split
    qk_dim, qk_dim, pdim; A = softmax(qᵀk·qk_dim^-½) over all H·W key positions (one head); x₁' = v·Aᵀ;
    y = BN(Conv1x1_{C -> C}(ReLU(concat[x₁', x₂]))) with that BN's weight initialised to 0; out = x + y.

    Paper: Seokju Yun, Youngmin Ro, "SHViT: Single-Head Vision Transformer with Memory Efficient Macro Design",
    CVPR 2024, arXiv 2401.16456. Official code: github.com/ysj9909/SHViT, model/shvit.py class SHSA @ b029f18.
    Defaults: qk_dim 16 (all SHViT models); pdim = round(C · partial_ratio) with partial_ratio 1/4.67, the paper's
    partial ratio (SHViT-S1 stage 2: 224 / 48; ``pdim`` sets it directly, as SHViT's configs do: 32/48/68 for
    128/224/320 channels). 4,988 parameters at C = 64 (pdim 14).
    Residual (the one deviation in the math): the official SHSA returns only y, which is exactly 0 at
    initialisation (zero-initialised output BN); SHViT wraps it as Residual(SHSA) inside every block. A YOLO row
    computing 0 would cut the network's signal at that row, so by default this layer includes that residual,
    out = x + y, and a fresh layer is exactly the identity (declared starts_as_identity: no identity-start wrapper;
    the zero BN weight gets its gradient at the first step). ``residual=False`` gives the bare official mixer
    (output 0 at init) for building SHViT itself, not for a YOLO row. Inside a C3 bottleneck (``attn: shsa``) the
    layer sits on the bottleneck's branch, where with the residual it also starts as the identity.
    Other deviations (same parameters, state-dict names ``pre_norm``, ``qkv.c``/``qkv.bn``, ``proj.1.c``/``proj.1.bn``
    as the official ones):
      - the BNs are PooledBatchNorm2d (plain BN except that a batch-1 1×1 map in training uses the running
        statistics instead of raising); the GroupNorm is written out with float32 statistics;
      - softmax logits in float32 for float16/bfloat16 input or under autocast.
    Odd sizes: no windows; any H×W (also 1×1), like the official code. pdim must lie in 1..C (ModelConfigError).
    Cost: (H·W)² · (qk_dim + pdim) per image: use it at P5.
    attention_maps: {'attention': N×(H·W)×H×W}, row i = query i's softmax weights over the map (as NonLocal).
    """

    def __init__(self, dim: int, qk_dim: int = 16, pdim: Optional[int] = None, partial_ratio: float = 1 / 4.67,
                 residual: bool = True):
        super().__init__()
        if pdim is None:
            pdim = max(1, round(dim * partial_ratio))
        if not 1 <= pdim <= dim:
            raise ModelConfigError(f"SHSA: pdim={pdim} attended channels do not fit in {dim}; choose pdim from 1 to "
                                   f"{dim} (the paper: about {max(1, round(dim / 4.67))})")
        if qk_dim < 1:
            raise ModelConfigError(f"SHSA: qk_dim={qk_dim} must be a positive width (SHViT: 16)")
        self.dim, self.qk_dim, self.pdim, self.residual = dim, qk_dim, pdim, residual
        self.scale = qk_dim ** -0.5
        self.pre_norm = _OneGroupNorm(pdim)
        self.qkv = ConvBN(pdim, 2 * qk_dim + pdim)
        self.proj = nn.Sequential(nn.ReLU(), ConvBN(dim, dim, bn_weight_init=0.0))

    def _qkv(self, x):
        x1 = x[:, :self.pdim]
        q, k, v = self.qkv(self.pre_norm(x1)).flatten(2).split([self.qk_dim, self.qk_dim, self.pdim], 1)
        return q, k, v

    def _attention(self, q, k):
        return softmax_attention(q.transpose(1, 2), k.transpose(1, 2), self.scale)  # N×HW(query)×HW(key)

    def forward(self, x):
        n, _, h, w = x.shape
        q, k, v = self._qkv(x)
        x1 = torch.matmul(v, self._attention(q, k).transpose(1, 2)).reshape(n, self.pdim, h, w)
        y = self.proj(torch.cat([x1, x[:, self.pdim:]], 1))
        return x + y if self.residual else y

    def attention_maps(self, x, y=None):
        no_second_input(y)
        n, _, h, w = x.shape
        q, k, _ = self._qkv(x)
        return {'attention': self._attention(q, k).reshape(n, h * w, h, w)}
