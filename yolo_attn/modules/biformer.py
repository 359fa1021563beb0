"""Bi-Level Routing Attention (BiFormer): region-to-region routing, then token attention inside the routed regions."""
import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from yolo_attn.errors import ModelConfigError

from ._base import AttentionModule, Placement, declare_layer
from ._common import no_second_input
from ._precision import float32 as f32, float32_statistics, full_precision

_MASKED = torch.finfo(torch.float32).min  # a finite "minus infinity": a row with every key masked stays finite


@declare_layer(name="BiLevelRoutingAttention", aliases=("BRA", "BiFormer"), family="global",
               paper="Zhu et al., BiFormer: Vision Transformer with Bi-Level Routing Attention, CVPR 2023",
               placements=(Placement("end_of_backbone",
                                     "YOLOv5s + Bi-Level Routing Attention (Zhu et al., BiFormer, CVPR 2023): 7x7\n"
                                     "regions, each query region attends to the tokens of its top-4 regions; 8 heads,\n"
                                     "LePE 3x3 (the YOLO copies' settings). Placement: one block after SPPF (row 9), at\n"
                                     "P5/32 (20x20 at 640 px, 3x3-token regions): its cost is quadratic in the region\n"
                                     "size, so it sits at the lowest resolution."),))
class BiLevelRoutingAttention(AttentionModule):
    """Bi-Level Routing Attention, channels-first: route whole regions first, attend to tokens second.

    x (N×C×H×W) is split into S×S regions (S = n_win) of T = (H/S)·(W/S) tokens. q, k, v = 1×1 conv of x
    (qk_dim, qk_dim, C channels, with bias). Region level: q_r, k_r = means of q, k over each region;
    A_r = (q_r·scale)·k_rᵀ (S²×S²); each query region keeps the indices of its top-k key regions (topk; no
    gradient through the choice, as in the official code with diff_routing=False). Token level, per head: the
    queries of region i attend, softmax(q·scale·Kᵀ)·V, to the k·T tokens of its routed regions. Then
    out = Wo(O + LePE(v)), LePE a depthwise side_dwconv×side_dwconv conv of the v map, Wo a 1×1 conv (bias).
    scale = qk_dim^-½ — the full qk width, not the head width, as the official code keeps it "to be consistent
    with old models".

    Paper: Lei Zhu, Xinjiang Wang, Zhanghan Ke, Wayne Zhang, Rynson Lau, "BiFormer: Vision Transformer with
    Bi-Level Routing Attention", CVPR 2023, arXiv 2303.08810. Official code: github.com/rayleizhu/BiFormer,
    ops/bra_legacy.py class BiLevelRoutingAttention @ 1697bbb (the class models/biformer.py and the released
    checkpoints use; kv_downsample_mode 'identity', param_attention 'qkvo', no soft/param routing).
    Defaults: num_heads 8, n_win 7, topk 4, qk_dim = channels, side_dwconv 3 — the official class defaults and
    the YOLO copies' BiLevelRoutingAttention(dim, n_win=7, num_heads=8, topk=4, side_dwconv=3, auto_pad=True).
    BiFormer-T/S/B instead use head_dim 32 (num_heads = C/32), topk 1/4/16 by stage and side_dwconv 5.
    Deviations from the official code:
      - channels-first (N×C×H×W in and out) instead of channels-last, so the qkv and output Linears are 1×1
        convs (same parameters; an official state dict loads after unsqueezing those weights to o×i×1×1);
        einops replaced by reshape/permute; the k/v gather uses torch.gather like the official code (k×
        memory for the gathered keys); only the 'identity' kv mode and 'qkvo' projections are built;
      - sizes that S does not divide: the official class asserts (auto_pad=False) or, with auto_pad=True (the
        YOLO copy), zero-pads x before the qkv linear, so the padded tokens carry the bias as keys and values,
        enter the region means and are attended to. Here the map is zero-padded bottom/right to multiples of S
        after the projections and the padding is masked: region means are over real tokens only, padded keys
        get no attention weight, regions made only of padding are never routed to, and LePE runs on the real
        v map (zero padding at every border, as the official conv does at divisible sizes). At sizes S divides
        the output equals the official one. auto_pad=False refuses such sizes with a ValueError instead;
      - maps smaller than the region grid: S = min(n_win, H) rows and min(n_win, W) columns of regions (a
        5×5 map gets 5×5 regions of one token; a 1×1 map one region), and topk is clamped to the number of
        regions, so any map ≥ 1×1 runs (the official code pads a 1×1 map to 7×7 and routes to padding);
      - softmax logits (routing and attention) and A·V are computed in float32, autocast off, and cast back
        (float16-safe);
      - topk > n_win² or heads that do not divide C or qk_dim raise ModelConfigError when built.
    Speed: same matmuls and gather as the official code; the mask costs one extra masked_fill, only at sizes S
    does not divide.
    Cost per image, at padded size Hp×Wp with S² regions (the matmuls a FLOP counter must count; 1 MAC = 2
    FLOPs): routing S²·S²·qk_dim MACs; token attention Hp·Wp·k·(Hp·Wp/S²)·(qk_dim + C) MACs (q·Kᵀ then A·V),
    plus the 1×1 convs H·W·C·(2·qk_dim + 2C) and LePE H·W·C·side_dwconv².
    attention_maps: {'routing': N×S²×S×S, row i = 1 at the key regions query region i attends to};
    applied_gates: {'attention': N×1×H×W, the attention weight each token receives, averaged over heads and
    queries}.
    """

    def __init__(self, channels: int, num_heads: int = 8, n_win: int = 7, topk: int = 4,
                 qk_dim: Optional[int] = None, side_dwconv: int = 3, auto_pad: bool = True):
        super().__init__()
        qk_dim = channels if qk_dim is None else qk_dim
        name = type(self).__name__
        if num_heads < 1 or channels % num_heads or qk_dim % num_heads:
            fits = [h for h in range(1, min(channels, qk_dim) + 1) if channels % h == 0 and qk_dim % h == 0]
            raise ModelConfigError(f"{name}: num_heads={num_heads} must divide the {channels} channels and "
                                   f"qk_dim={qk_dim}; choose one of {fits}")
        if n_win < 1:
            raise ModelConfigError(f"{name}: n_win={n_win} must be at least 1 (regions per side)")
        if not 1 <= topk <= n_win * n_win:
            raise ModelConfigError(f"{name}: topk={topk} must be from 1 to the number of regions n_win²="
                                   f"{n_win * n_win} (n_win={n_win})")
        if side_dwconv < 0 or (side_dwconv and side_dwconv % 2 == 0):
            raise ModelConfigError(f"{name}: side_dwconv={side_dwconv} must be 0 (no LePE) or an odd kernel size")
        self.num_heads, self.n_win, self.topk, self.qk_dim, self.auto_pad = num_heads, n_win, topk, qk_dim, auto_pad
        self.scale = qk_dim ** -0.5
        self.qkv = nn.Conv2d(channels, 2 * qk_dim + channels, 1)
        self.lepe = nn.Conv2d(channels, channels, side_dwconv, padding=side_dwconv // 2,
                              groups=channels) if side_dwconv else None
        self.wo = nn.Conv2d(channels, channels, 1)

    def _regions(self, t, s_h, s_w, r_h, r_w):
        """N×C×(s_h·r_h)×(s_w·r_w) -> N×(s_h·s_w)×(r_h·r_w)×C, region-major, tokens row-major inside."""
        n, c = t.shape[:2]
        return t.reshape(n, c, s_h, r_h, s_w, r_w).permute(0, 2, 4, 3, 5, 1).reshape(n, s_h * s_w, r_h * r_w, c)

    @float32_statistics  # the region choice (a top-k of logits) and the logits come from the q, k projections:
    def _attend(self, x):  # float16 keeps ~3 digits of them, enough to route a query region elsewhere
        n, c, h, w = x.shape
        q, k, v = self.qkv(x).split([self.qk_dim, self.qk_dim, c], 1)
        lepe = self.lepe(v) if self.lepe is not None else None
        s_h, s_w = min(self.n_win, h), min(self.n_win, w)
        r_h, r_w = (h + s_h - 1) // s_h, (w + s_w - 1) // s_w  # not -(-h // s): ONNX's integer Div truncates
        pad_b, pad_r = s_h * r_h - h, s_w * r_w - w
        if (pad_b or pad_r) and not self.auto_pad:
            raise ValueError(f"{type(self).__name__}: a {h}×{w} map does not split into n_win={self.n_win} "
                             f"regions per side; build it with auto_pad=True (pad and mask)")
        padded = bool(pad_b or pad_r)
        if padded:
            q, k, v = (F.pad(t, (0, pad_r, 0, pad_b)) for t in (q, k, v))
            valid = F.pad(x.new_ones(1, 1, h, w), (0, pad_r, 0, pad_b))
            valid = self._regions(valid, s_h, s_w, r_h, r_w)[0, :, :, 0] > 0  # S²×T
        regions, tokens = s_h * s_w, r_h * r_w
        q, k, v = (self._regions(t, s_h, s_w, r_h, r_w) for t in (q, k, v))  # N×S²×T×C'

        # region level: mean query / key of each region (over its real tokens), top-k key regions per query region
        with torch.no_grad(), full_precision(x):
            count = valid.sum(1).clamp(min=1).to(torch.float32)[:, None] if padded else float(tokens)
            q_r, k_r = f32(q).sum(2) / count, f32(k).sum(2) / count  # N×S²×qk
            logits_r = (q_r * self.scale) @ k_r.transpose(1, 2)  # N×S²×S²
            if padded:
                logits_r = logits_r.masked_fill(~valid.any(1)[None, None, :], _MASKED)
            idx = logits_r.topk(min(self.topk, regions), dim=-1).indices  # N×S²×k
        kk = idx.shape[-1]

        # token level: gather the routed regions' keys and values
        def gather(t):
            cc = t.shape[-1]
            sel = t.gather(1, idx.reshape(n, regions * kk, 1, 1).expand(-1, -1, tokens, cc))
            return sel.reshape(n, regions, kk * tokens, self.num_heads, cc // self.num_heads).transpose(2, 3)

        k_sel, v_sel = gather(k), gather(v)  # N×S²×heads×(k·T)×d
        q = q.reshape(n, regions, tokens, self.num_heads, -1).transpose(2, 3)  # N×S²×heads×T×d
        with full_precision(x):
            logits = (f32(q) * self.scale) @ f32(k_sel).transpose(-1, -2)  # N×S²×heads×T×(k·T)
            if padded:
                key_valid = valid[idx].reshape(n, regions, 1, 1, kk * tokens)
                logits = logits.masked_fill(~key_valid, _MASKED)
            attn = logits.softmax(-1)
            out = (attn @ f32(v_sel)).to(v.dtype)  # N×S²×heads×T×dv
        out = out.transpose(2, 3).reshape(n, s_h, s_w, r_h, r_w, c).permute(0, 5, 1, 3, 2, 4)
        out = out.reshape(n, c, s_h * r_h, s_w * r_w)[:, :, :h, :w]
        if lepe is not None:
            out = out + lepe
        return self.wo(out), (idx, attn, (s_h, s_w, r_h, r_w), valid if padded else None)

    def forward(self, x):
        return self._attend(x)[0]

    def attention_maps(self, x, y=None):
        no_second_input(y)
        idx, _, (s_h, s_w, _, _), _ = self._attend(x)[1]
        routing = torch.zeros(x.shape[0], s_h * s_w, s_h * s_w, dtype=x.dtype, device=x.device)
        routing = routing.scatter(2, idx, 1.0)
        return {'routing': routing.reshape(x.shape[0], s_h * s_w, s_h, s_w)}

    def applied_gates(self, x, y=None):
        no_second_input(y)
        n, _, h, w = x.shape
        idx, attn, (s_h, s_w, r_h, r_w), valid = self._attend(x)[1]
        if valid is not None:  # padded queries are cropped away: their attention is not drawn
            attn = attn * valid[None, :, None, :, None]
        regions, kk, tokens = s_h * s_w, idx.shape[-1], r_h * r_w
        received = attn.sum((2, 3)).reshape(n, regions * kk, tokens)  # per gathered key, summed over heads, queries
        total = received.new_zeros(n, regions, tokens).scatter_add(
            1, idx.reshape(n, regions * kk, 1).expand(-1, -1, tokens), received)
        total = total / (self.num_heads * h * w)
        total = total.reshape(n, s_h, s_w, r_h, r_w).permute(0, 1, 3, 2, 4).reshape(n, 1, s_h * r_h, s_w * r_w)
        return {'attention': total[:, :, :h, :w].to(x.dtype)}
