"""CGA (EfficientViT, MSRA, CVPR 2023): cascaded group attention in local windows."""
from typing import Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ModelConfigError
from ._base import AttentionModule, Placement, declare_layer
from ._common import ConvBN, no_second_input, softmax_attention
from ._precision import float32_statistics


def _kernel_list(kernels, num_heads):
    ks = [kernels] * num_heads if isinstance(kernels, int) else list(kernels)
    if len(ks) != num_heads:
        raise ModelConfigError(f"CGA: kernels={list(kernels)!r} gives {len(ks)} query kernels for num_heads={num_heads}"
                               f"; give one odd kernel per head (e.g. {[5] * num_heads}) or a single integer")
    bad = [k for k in ks if not (isinstance(k, int) and not isinstance(k, bool) and k >= 1 and k % 2)]
    if bad:
        raise ModelConfigError(f"CGA: kernels={ks!r}: each query kernel must be an odd positive integer, got {bad}")
    return ks


@declare_layer(name="CGA", paper="Liu et al., EfficientViT: Memory Efficient Vision Transformer with Cascaded "
                                 "Group Attention, CVPR 2023", family="global",
               aliases=("CascadedGroupAttention", "LocalWindowAttention"), starts_as_identity=True,
               placements=(Placement("stage_outputs",
                                     "YOLOv5s + CGA (Liu et al., EfficientViT (MSRA), CVPR 2023): cascaded group\n"
                                     "attention, 4 heads of key_dim 16, 7x7 local windows, 5x5 query convs, with\n"
                                     "EfficientViT's residual around it (zero-initialised output BN: the block starts\n"
                                     "as the identity). In 7x7 windows its cost is linear in H·W."),))
class CGA(AttentionModule):
    """Cascaded group attention in r×r windows: out = x + BN(Conv1x1(ReLU(concat(out_1..out_h)))) per window.

    Forward (one window of N tokens): split the C channels into h chunks X_1..X_h. Head i: f_i = X_1 (i = 1) or
    out_{i−1} + X_i (the cascade); [q, k, v] = BN(Conv1x1(f_i)) with key_dim, key_dim, C/h channels;
    q = BN(DWConv_{k_i×k_i}(q)); A_i = softmax(qᵀk·key_dim^-½ + b_i) (N×N); out_i = v·A_iᵀ.
    y = BN(Conv1x1_{C -> C}(ReLU(concat(out_1..out_h)))), that BN's weight initialised to 0. b_i: a learned bias
    per head indexed by the offset (|Δy|, |Δx|) of query and key inside the window (r² entries per head, zeros
    at init, table index |Δy|·r + |Δx| as in the official enumeration).
    Windows (the official LocalWindowAttention, downstream version): if H ≤ r and W ≤ r, attention runs on the
    whole map (N = H·W); else the map is zero-padded bottom/right to multiples of r, split into contiguous r×r
    windows, attended (padded tokens are not masked, as in the official code) and cropped back.

    Paper: Xinyu Liu, Houwen Peng, Ningxin Zheng, Yuqing Yang, Han Hu, Yixuan Yuan, "EfficientViT: Memory Efficient
    Vision Transformer with Cascaded Group Attention", CVPR 2023, arXiv 2305.07027. Official code:
    github.com/microsoft/Cream, EfficientViT/classification/model/efficientvit.py (CascadedGroupAttention,
    LocalWindowAttention) @ 4a13c40; the detection copy EfficientViT/downstream/efficientvit.py.
    Defaults: EfficientViT-M0's (key_dim 16, 4 heads, kernels 5 per head, window_resolution 7). The value width per
    head is C/num_heads, as every EfficientViT model sets it (attn_ratio = C/(key_dim·heads)); the cascade needs it,
    so it is not a separate argument. The official class defaults (8 heads with 4 kernels) raise IndexError; here a
    kernel count other than the head count is a ModelConfigError (an integer gives every head that kernel).
    9,604 parameters at C = 64 (EfficientViT-M0 stage 1).
    Residual (deviation): the official module returns only y, exactly 0 at initialisation; EfficientViT wraps every
    mixer as Residual(LocalWindowAttention). As a YOLO row 0 would cut the signal, so by default the layer
    includes that residual, out = x + y, and a fresh layer is exactly the identity (declared starts_as_identity).
    ``residual=False`` gives the bare official mixer, for building EfficientViT itself.
    Other deviations: no resolution argument and no resolution assert (the classification version asserts
    H = W = img_size/16); the attention bias is indexed in forward for the actual window (the official code keeps a
    fixed r²×r² index, so a map smaller than the window other than r×r fails there, e.g. 5×5, and its eval-mode cache
    ``self.ab`` goes stale after a weight load or ``.half()``): nothing is cached; the query index table is computed
    from the window's size. BNs are PooledBatchNorm2d (plain BN except that a batch-1 1×1 map in training uses the
    running statistics instead of raising). Softmax logits (plus bias) in float32 for float16 input or autocast.
    Checks (ModelConfigError): num_heads must divide C; one odd kernel per head.
    attention_maps: {'attention': N×windows×heads×n×n} (n = tokens per window, query rows);
    applied_gates: {'attended': N×heads×H×W, the mean weight each position receives in its window}.
    """

    def __init__(self, dim: int, key_dim: int = 16, num_heads: int = 4, window_resolution: int = 7,
                 kernels: Union[int, Sequence[int]] = (5, 5, 5, 5), residual: bool = True):
        super().__init__()
        if num_heads < 1 or dim % num_heads:
            fits = [h for h in range(1, min(dim, 16) + 1) if dim % h == 0]
            raise ModelConfigError(f"CGA: {dim} channels cannot be split into num_heads={num_heads} equal chunks; "
                                   f"choose a divisor of {dim}, e.g. {', '.join(map(str, fits))}")
        if key_dim < 1 or window_resolution < 1:
            raise ModelConfigError(f"CGA: key_dim={key_dim} and window_resolution={window_resolution} must be positive")
        ks = _kernel_list(kernels, num_heads)
        self.num_heads, self.key_dim, self.window_resolution, self.residual = num_heads, key_dim, window_resolution, residual
        self.d = dim // num_heads
        self.scale = key_dim ** -0.5
        self.qkvs = nn.ModuleList(ConvBN(self.d, 2 * key_dim + self.d) for _ in range(num_heads))
        self.dws = nn.ModuleList(ConvBN(key_dim, key_dim, k, groups=key_dim) for k in ks)
        self.proj = nn.Sequential(nn.ReLU(), ConvBN(dim, dim, bn_weight_init=0.0))
        self.attention_biases = nn.Parameter(torch.zeros(num_heads, window_resolution * window_resolution))

    def _bias_index(self, h, w, device):
        """(h·w)×(h·w) index into the r² bias table for a window of h×w tokens: |Δy|·r + |Δx|."""
        ys = torch.arange(h, device=device)[:, None].expand(h, w).reshape(-1)  # not repeat_interleave: ONNX
        xs = torch.arange(w, device=device)[None, :].expand(h, w).reshape(-1)  # opset < 13 lacks it
        return (ys[:, None] - ys[None, :]).abs() * self.window_resolution + (xs[:, None] - xs[None, :]).abs()

    @float32_statistics  # each head's logits come from the previous head's output (the cascade): float16 keeps ~3
    def _heads(self, x):  # digits of them, and a peaked softmax amplifies the difference head after head
        """Per head (attention N'×n×n, value N'×d×n) on windows x (N'×C×h×w), the cascade included."""
        b, _, h, w = x.shape
        bias = self.attention_biases[:, self._bias_index(h, w, x.device)]  # heads×n×n
        chunks = x.chunk(self.num_heads, 1)
        feat, out = chunks[0], []
        for i in range(self.num_heads):
            if i > 0:
                feat = feat + chunks[i]
            q, k, v = self.qkvs[i](feat).split([self.key_dim, self.key_dim, self.d], 1)
            q = self.dws[i](q)
            attn = softmax_attention(q.flatten(2).transpose(1, 2), k.flatten(2).transpose(1, 2), self.scale, bias[i])
            feat = torch.matmul(v.flatten(2), attn.transpose(1, 2)).reshape(b, self.d, h, w)
            out.append((attn, feat))
        return tuple(out)

    def _windows(self, x):
        """(windows N'×C×h×w, layout) as the official LocalWindowAttention splits the map."""
        b, c, h, w = x.shape
        r = self.window_resolution
        if h <= r and w <= r:
            return x, None
        pad_b, pad_r = (r - h % r) % r, (r - w % r) % r
        if pad_b or pad_r:
            x = F.pad(x, (0, pad_r, 0, pad_b))
        nh, nw = (h + pad_b) // r, (w + pad_r) // r
        x = x.reshape(b, c, nh, r, nw, r).permute(0, 2, 4, 1, 3, 5).reshape(b * nh * nw, c, r, r)
        return x, (b, nh, nw, h, w)

    def _merge(self, y, layout):
        if layout is None:
            return y
        b, nh, nw, h, w = layout
        c, r = y.shape[1], self.window_resolution
        return y.reshape(b, nh, nw, c, r, r).permute(0, 3, 1, 4, 2, 5).reshape(b, c, nh * r, nw * r)[:, :, :h, :w]

    def forward(self, x):
        xw, layout = self._windows(x)
        y = self.proj(torch.cat([feat for _, feat in self._heads(xw)], 1))
        y = self._merge(y, layout)
        return x + y if self.residual else y

    def attention_maps(self, x, y=None):
        no_second_input(y)
        xw, _ = self._windows(x)
        attn = torch.stack([a for a, _ in self._heads(xw)], 1)  # N'×heads×n×n
        return {'attention': attn.reshape(x.shape[0], -1, *attn.shape[1:])}

    def applied_gates(self, x, y=None):
        no_second_input(y)
        xw, layout = self._windows(x)
        attn = torch.stack([a for a, _ in self._heads(xw)], 1)
        received = attn.mean(-2).reshape(xw.shape[0], self.num_heads, *xw.shape[2:])
        return {'attended': self._merge(received, layout)}
