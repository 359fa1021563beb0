"""Deformable attention (DAT): every query attends to a small set of keys sampled at learned, shared offsets."""
import torch
import torch.nn as nn
import torch.nn.functional as F

from yolo_attn.errors import ModelConfigError

from ._base import AttentionModule, Placement, declare_layer
from ._common import no_second_input
from ._precision import float32 as f32, float32_statistics, full_precision
from ._sampling import bilinear_sample


def _grid(n, like):
    """Normalised centres of n equal cells along [-1, 1] (align_corners=False convention), in like's dtype."""
    return (torch.arange(n, device=like.device, dtype=like.dtype) + 0.5) * (2.0 / n) - 1.0


@declare_layer(name="DAttention", aliases=("DAT", "DeformableAttention"), family="global",
               paper="Xia et al., Vision Transformer with Deformable Attention, CVPR 2022",
               placements=(Placement("end_of_backbone",
                                     "YOLOv5s + deformable attention (Xia et al., DAT, CVPR 2022): 8 heads in 4 offset\n"
                                     "groups, a key grid as large as the map (stride 1) shifted by learned offsets of\n"
                                     "up to ±1 grid cell, the paper's relative-position bias table. Placement: one block\n"
                                     "after SPPF (row 9), at P5/32 (20x20 at 640 px): every query attends to every\n"
                                     "sampled key, so its cost is quadratic in H·W and it sits at the lowest\n"
                                     "resolution, like the paper's stage-4 blocks."),))
class DAttention(AttentionModule):
    """Deformable multi-head attention (DAttentionBaseline of DAT), channels-first, any H×W.

    q = 1×1(x). Per offset group g (G groups, each shared by n_heads/G heads): Δ = θ(q_g), θ = depthwise
    ksize×ksize conv (stride `stride`, pad ksize//2) → LayerNorm over the C/G channels → GELU → 1×1 (C/G → 2,
    no bias), on a Hk×Wk = ceil(H/stride)×ceil(W/stride) key grid. Sampling points p = ref + s·tanh(Δ)·(1/Hk,
    1/Wk) in normalised coordinates (s = offset_range_factor; an offset reaches s/2 key-grid cells), or
    p = clamp(ref + Δ, −1, 1) when s < 0 (DAT++'s unbounded offsets). x̃ = bilinear grid_sample of x_g at p
    (zeros outside the map); k = 1×1(x̃), v = 1×1(x̃); per head A = softmax(q·kᵀ·head_dim^-½ + B) over the
    Hk·Wk samples; out = 1×1(A·v [+ DW3×3(q) if dwc_pe]).
    B (use_pe, not dwc_pe) is the paper's relative-position bias: a learned n_heads×(2R−1)×(2R−1) table
    (R = rpe_size) read by bilinear grid_sample at half the query–sample displacement, (q − p)/2 ∈ (−1, 1) in
    normalised coordinates, so the same table serves any map size (one table step is one pixel when
    H = W = R).

    Paper: Zhuofan Xia, Xuran Pan, Shiji Song, Li Erran Li, Gao Huang, "Vision Transformer with Deformable
    Attention", CVPR 2022, arXiv 2201.00520 (extended as DAT++, arXiv 2309.01430). Official code:
    github.com/LeapLabTHU/DAT, models/dat_blocks.py class DAttentionBaseline, tag CVPR2022 (566a593) — the
    version followed here — and main (32173fc, the DAT++ rewrite).
    Defaults: n_heads 8, n_groups 4, stride 1, ksize 3 as the YOLO copies' DAttention(channel, q_size, n_heads=8,
    n_groups=4, stride=1, offset_range_factor=4, use_pe=True, dwc_pe=True, ksize=3) — head width C/8 whatever
    C is; offset_range_factor 2 and the table bias (dwc_pe False) as the paper's DAT-T (stage 4 there: 24 heads
    of 32 channels, 6 groups, ksize 3 at 7×7 maps); rpe_size 7, that stage's map side (a 13×13 table).
    Deviations from the official code:
      - no q_size/kv_size arguments and no fixed size: CVPR2022 builds the table for the q_size it is given and
        reshapes it to the run-time (2H−1)×(2W−1) (RuntimeError at any other size); here the table has its own
        size R and is interpolated (as main does implicitly); the fixed_pe, log_cpb and no_off options are not
        built;
      - coordinates: reference points are the key cells' centres (i + 0.5)/Hk·2 − 1 as in CVPR2022, query
        positions likewise (i + 0.5)/H·2 − 1, and x is sampled with align_corners=False, so at zero offset and
        stride 1 the keys are exactly the pixels (the official code samples with align_corners=True, a fraction
        of a pixel off the centres; main uses (i + 0.5)/(Hk − 1), which divides by zero on a 1-pixel grid and
        puts the last point beyond +1). Nothing here divides by Hk − 1: a 1×1 map or key grid is fine;
      - s < 0 clamps as main does (CVPR2022 applies tanh); s = 0 means no offsets (CVPR2022 adds the raw
        offsets unscaled when s = 0);
      - bilinear sampling is ``_sampling.bilinear_sample``: F.grid_sample when running, gathers equal to it when
        exporting, so the layer exports at ONNX opset 11+ (GridSample needs 16; yolov5's export.run default and
        TensorRT path use 12). The grid is computed in float32 (the official offset_range is float32, so a
        .half() model fails there); softmax logits, A·v and the LayerNorm run in float32 with autocast off
        (float16-safe);
      - returns the output only (the official forward also returns the sampling positions and references);
        einops replaced by reshape; no dropout; trunc_normal_ from torch.nn.init instead of timm.
    ONNX: any opset from 11 (see the sampling deviation).
    Cost per image (the matmuls a FLOP counter must count; 1 MAC = 2 FLOPs), Ns = Hk·Wk: attention
    H·W·Ns·C MACs for q·kᵀ plus H·W·Ns·C for A·v; grid_sample of x: Ns·C bilinear samples (4 MACs each,
    4·Ns·C); table bias: n_heads·H·W·Ns bilinear samples (4·n_heads·H·W·Ns MACs); 1×1 convs 4·H·W·C² (k, v on
    Ns positions: 2·Ns·C² of them); offset net Ns·(C·ksize² + 2C). Memory: (N·n_heads)×H·W×Ns logits — about
    1.3 GB in float32 per 80×80 image with stride 1, so use it at P5 or with stride ≥ 2.
    attention_maps: {'offsets': N×2G×Hk×Wk, the sampling points p (x, y per group, normalised)};
    applied_gates: {'attention': N×1×H×W, the attention weight each sampled key receives (averaged over heads
    and queries) splatted bilinearly back to the map}.
    """

    def __init__(self, channels: int, n_heads: int = 8, n_groups: int = 4, stride: int = 1,
                 offset_range_factor: float = 2.0, use_pe: bool = True, dwc_pe: bool = False, ksize: int = 3,
                 rpe_size: int = 7):
        super().__init__()
        name = type(self).__name__
        if n_heads < 1 or channels % n_heads:
            fits = [h for h in range(1, channels + 1) if channels % h == 0]
            raise ModelConfigError(f"{name}: n_heads={n_heads} must divide the {channels} channels; choose one of "
                                   f"{fits}")
        if n_groups < 1 or n_heads % n_groups:
            fits = [g for g in range(1, n_heads + 1) if n_heads % g == 0]
            raise ModelConfigError(f"{name}: n_groups={n_groups} must divide n_heads={n_heads}; choose one of "
                                   f"{fits}")
        if ksize < 1 or ksize % 2 == 0:
            raise ModelConfigError(f"{name}: ksize={ksize} must be an odd kernel size (the offset conv keeps the "
                                   f"grid centred)")
        if stride < 1:
            raise ModelConfigError(f"{name}: stride={stride} must be at least 1")
        if rpe_size < 1:
            raise ModelConfigError(f"{name}: rpe_size={rpe_size} must be at least 1")
        self.n_heads, self.n_groups, self.stride = n_heads, n_groups, stride
        self.offset_range_factor = float(offset_range_factor)
        self.head_channels = channels // n_heads
        self.scale = self.head_channels ** -0.5
        cg = channels // n_groups
        self.conv_offset = nn.Conv2d(cg, cg, ksize, stride, ksize // 2, groups=cg)
        self.offset_norm = nn.LayerNorm(cg)
        self.offset_proj = nn.Conv2d(cg, 2, 1, bias=False)
        self.proj_q = nn.Conv2d(channels, channels, 1)
        self.proj_k = nn.Conv2d(channels, channels, 1)
        self.proj_v = nn.Conv2d(channels, channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)
        self.rpe_table = self.dwc = None
        if use_pe and dwc_pe:
            self.dwc = nn.Conv2d(channels, channels, 3, padding=1, groups=channels)
        elif use_pe:
            self.rpe_table = nn.Parameter(torch.zeros(n_heads, 2 * rpe_size - 1, 2 * rpe_size - 1))
            nn.init.trunc_normal_(self.rpe_table, std=0.01)

    def _positions(self, q):
        """Sampling points of each group: (N·G)×Hk×Wk×2 as (x, y), at least float32, and the key-grid size."""
        n, c, h, w = q.shape
        g = self.n_groups
        t = self.conv_offset(q.reshape(n * g, c // g, h, w))
        with full_precision(q):
            norm = self.offset_norm  # its static normalized_shape, not t.shape (a dynamic ONNX export needs it fixed)
            t = F.layer_norm(f32(t.permute(0, 2, 3, 1)), norm.normalized_shape, f32(norm.weight), f32(norm.bias),
                             norm.eps).permute(0, 3, 1, 2)
        offset = f32(self.offset_proj(F.gelu(t).to(q.dtype)))  # (N·G)×2×Hk×Wk, (y, x)
        hk, wk = offset.shape[2:]
        ref_y, ref_x = _grid(hk, offset), _grid(wk, offset)
        ref = torch.stack(torch.meshgrid(ref_x, ref_y, indexing='xy'), -1)  # Hk×Wk×2 as (x, y)
        offset = offset.permute(0, 2, 3, 1).flip(-1)  # (x, y)
        s = self.offset_range_factor
        if s > 0:  # ±s/Hk, ±s/Wk in normalised coordinates: s/2 key-grid cells
            offset = offset.tanh()
            pos = ref + torch.stack([offset[..., 0] * (s / wk), offset[..., 1] * (s / hk)], -1)
        elif s == 0:
            pos = ref.expand(n * g, hk, wk, 2)
        else:
            pos = (ref + offset).clamp(-1.0, 1.0)
        return pos, (hk, wk)

    @float32_statistics  # the offsets (which pixels are keys) and the logits come from the q, k projections:
    def _attend(self, x):  # float16 keeps ~3 digits of them
        n, c, h, w = x.shape
        g, heads, d = self.n_groups, self.n_heads, self.head_channels
        q = self.proj_q(x)
        pos, (hk, wk) = self._positions(q)
        ns = hk * wk
        sampled = bilinear_sample(x.reshape(n * g, c // g, h, w), pos, align_corners=False).reshape(n, c, 1, ns)
        k = self.proj_k(sampled).reshape(n * heads, d, ns)
        v = self.proj_v(sampled).reshape(n * heads, d, ns)
        with full_precision(x):
            logits = (f32(q.reshape(n * heads, d, h * w)) * self.scale).transpose(1, 2) @ f32(k)  # (N·h)×HW×Ns
            attn = self._softmax(logits, pos, h, w)
            out = (f32(v) @ attn.transpose(1, 2)).to(x.dtype).reshape(n, c, h, w)  # out[:, :, m] = Σ_j A[m, j] v[:, j]
        if self.dwc is not None:
            out = out + self.dwc(q)
        return self.proj_out(out), (pos, attn, (hk, wk))

    def _softmax(self, logits, pos, h, w):
        """softmax(logits + B) over the samples, B the table bias (float32 or float64 throughout)."""
        n_g, hk, wk = pos.shape[:3]
        g, heads, ns = self.n_groups, self.n_heads, hk * wk
        n = n_g // g
        if self.rpe_table is not None:
            qy, qx = _grid(h, pos), _grid(w, pos)
            q_pos = torch.stack(torch.meshgrid(qx, qy, indexing='xy'), -1).reshape(1, h * w, 1, 2)
            disp = (q_pos - pos.reshape(n * g, 1, ns, 2)) * 0.5  # (N·G)×HW×Ns×2, (x, y) in (−1, 1)
            table = f32(self.rpe_table).reshape(1, heads, *self.rpe_table.shape[1:]).expand(n, -1, -1, -1)
            table = table.reshape(n * g, heads // g, *self.rpe_table.shape[1:])
            bias = bilinear_sample(table, disp, align_corners=True)
            logits = logits + bias.reshape(n * heads, h * w, ns)
        return logits.softmax(-1)

    def forward(self, x):
        return self._attend(x)[0]

    def attention_maps(self, x, y=None):
        no_second_input(y)
        pos, _, (hk, wk) = self._attend(x)[1]
        n = x.shape[0]
        return {'offsets': pos.reshape(n, self.n_groups, hk, wk, 2).permute(0, 1, 4, 2, 3)
                .reshape(n, 2 * self.n_groups, hk, wk).to(x.dtype)}

    def applied_gates(self, x, y=None):
        no_second_input(y)
        n, _, h, w = x.shape
        pos, attn, (hk, wk) = self._attend(x)[1]
        g = self.n_groups
        received = attn.reshape(n, g, -1, h * w, hk * wk).sum((2, 3)) / (self.n_heads * h * w)  # N×G×Ns
        # splat each sample's weight onto its four neighbouring pixels (the transpose of bilinear sampling)
        px = ((pos[..., 0] + 1) * w - 1) / 2  # pixel coordinates, align_corners=False
        py = ((pos[..., 1] + 1) * h - 1) / 2
        x0, y0 = px.floor(), py.floor()
        canvas = received.new_zeros(n * g, h * w)
        weight = received.reshape(n * g, -1)
        for dx in (0, 1):
            for dy in (0, 1):
                xi, yi = x0 + dx, y0 + dy
                wgt = (1 - (px - xi).abs()) * (1 - (py - yi).abs())
                ok = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
                index = (yi.clamp(0, h - 1) * w + xi.clamp(0, w - 1)).long().reshape(n * g, -1)
                canvas = canvas.scatter_add(1, index, (weight * (wgt * ok).reshape(n * g, -1)))
        return {'attention': canvas.reshape(n, g, h, w).sum(1, keepdim=True).to(x.dtype)}
