"""MLCA: mixed local channel attention, ECA-style 1-D convolutions over a local grid and over the global average."""
import contextlib
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from yolo_attn.errors import ModelConfigError

from ._base import AttentionModule, Placement, declare_layer
from ._common import no_second_input
from ._precision import accumulation_dtype


def mlca_kernel_size(channels, gamma=2, b=1):
    """MLCA's ECA kernel, as the official code computes it: t = int(|log2(C) + b| / γ), the odd k in {t, t + 1}."""
    t = int(abs(math.log(channels, 2) + b) / gamma)
    return t if t % 2 else t + 1


def adaptive_pool_matrix(n_in, n_out, device, dtype):
    """The n_out × n_in matrix of adaptive average pooling along one axis: row i averages the bin
    [floor(i·n_in/n_out), ceil((i+1)·n_in/n_out)), exactly as nn.AdaptiveAvgPool2d (bins overlap when n_out does not
    divide n_in, and repeat values when n_in < n_out). Built with tensor ops from the size, so that a traced or
    exported graph computes it for the size it is run at."""
    i = torch.arange(n_out, device=device).unsqueeze(1)
    j = torch.arange(n_in, device=device).unsqueeze(0)
    inside = ((i * n_in < (j + 1) * n_out) & (j * n_out < (i + 1) * n_in)).to(dtype)
    return inside / inside.sum(1, keepdim=True)


def _no_autocast(x):
    """Autocast off for x's device (float32 pooling stays float32); nothing to switch on devices without autocast
    (the meta device of shape checks)."""
    if x.device.type in ('cuda', 'cpu', 'xpu', 'mps'):
        return torch.autocast(x.device.type, enabled=False)
    return contextlib.nullcontext()


@declare_layer(name="MLCA", paper="Wan et al., Mixed local channel attention for object detection, Engineering "
                                  "Applications of Artificial Intelligence 2023", family="channel",
               aliases=("MixedLocalChannelAttention",),
               placements=(Placement("stage_outputs",
                                     "YOLOv5s + MLCA (Wan et al., EAAI 2023), 5x5 local grid, local weight 0.5, ECA "
                                     "kernel from the channel count."),))
class MLCA(AttentionModule):
    """Mixed local channel attention: out = x · unpool((1 − w)·σ(Conv1d_g(GAP(L))) + w·σ(Conv1d_l(L))).

    L = adaptive average pool of x to s×s (local_size s = 5): N×C×s×s. Local branch: L read cell by cell as one
    sequence of length s²·C (cell-major: the C channels of cell 1, then of cell 2, ...) -> Conv1d(1 -> 1, kernel k,
    no bias) -> back to N×C×s×s -> σ. Global branch: the mean of L's cells (N×C) -> another Conv1d(1 -> 1, k) -> σ,
    broadcast over the s×s cells. The two are mixed with local_weight w = 0.5, unpooled to H×W, and multiply x.
    k is ECA's: t = int(|log2(C) + b| / γ), k = t if odd else t + 1 (γ = 2, b = 1). Parameters: 2·k.

    Paper: Dahang Wan, Rongsheng Lu, Siyuan Shen, Ting Xu, Xianli Lang, Zhijie Ren, "Mixed local channel attention
    for object detection", Engineering Applications of Artificial Intelligence 123 (2023) 106442. Official code:
    github.com/wandahangFY/MLCA, MLCA.py class MLCA @ afbeb47 (a YOLOv5-6.1 fork; MLCA_changed.py holds variants).
    Defaults: local_size 5, gamma 2, b 1, local_weight 0.5, as the official class and the YOLO copies.
    Deviations from the official code:
      - k follows the actual channel count; the official class computes it from its in_size argument, which nothing
        ties to the input (its own demo passes 64 for a 55-channel input). Equal whenever in_size = C, as in YAMLs.
      - the unpool from s×s to H×W is F.interpolate(mode='nearest') (ONNX-exportable); the official code uses
        adaptive_avg_pool2d(M, (H, W)), which the ONNX exporter refuses unless the output size divides the input.
        Both replicate each cell over its block when H and W are multiples of s (80, 40, 20 at 640 px: identical
        there); otherwise adaptive pooling blends neighbouring cells in overlapping bins while nearest takes cell
        floor(i·s/H) (e.g. at 13×17, or at 1×1 where the official code averages the 25 cells and this takes the
        first).
      - the s×s pooling is the exact adaptive average (same bins, overlapping when s does not divide H or W,
        repeating cells when H or W < s) written as two small matrix products built from the size: the exporter
        refuses adaptive_avg_pool2d to 5 from 13. Computed in float32 for float16 input (autocast off for it).
      Measured (CPU, one thread, batch 1, eval): 4.6 ms against the official 9.9 ms at 128×80×80, 1.9 against 4.6
      at 256×40×40, 1.1 against 2.7 at 512×20×20 (the adaptive-pool unpooling is the slow part); not timed on a GPU.
    Kept from the official code: the local conv runs over the flattened s²·C sequence, so near a cell's first and
    last channels its kernel reads the neighbouring cell's channels; the global vector is the mean of the s×s cells,
    not of x (they differ when the bins are unequal). Any H×W works.
    attention_maps: {'local': N×C×s×s, the mixed gate before unpooling}; applied_gates: {'attention': N×C×H×W}.
    """

    def __init__(self, channels: int, local_size: int = 5, gamma: float = 2, b: float = 1, local_weight: float = 0.5):
        super().__init__()
        if isinstance(local_size, bool) or not isinstance(local_size, int) or local_size < 1:
            raise ModelConfigError(f"MLCA: local_size={local_size!r} must be a positive integer (the side of the "
                                   f"local grid; the paper's is 5)")
        if not 0 <= local_weight <= 1:
            raise ModelConfigError(f"MLCA: local_weight={local_weight!r} must be in [0, 1] (the paper's is 0.5)")
        if not gamma > 0:
            raise ModelConfigError(f"MLCA: gamma={gamma!r} must be positive (the paper's is 2)")
        self.local_size, self.gamma, self.b, self.local_weight = local_size, gamma, b, float(local_weight)
        k = mlca_kernel_size(channels, gamma, b)
        self.conv = nn.Conv1d(1, 1, k, padding=(k - 1) // 2, bias=False)
        self.conv_local = nn.Conv1d(1, 1, k, padding=(k - 1) // 2, bias=False)

    def _local_gate(self, x):
        n, c, h, w = x.shape
        s = self.local_size
        acc = accumulation_dtype(x)
        with _no_autocast(x):
            ph = adaptive_pool_matrix(h, s, x.device, acc)
            pw = adaptive_pool_matrix(w, s, x.device, acc)
            local = torch.matmul(torch.matmul(ph, x.to(acc)), pw.transpose(0, 1))  # N×C×s×s
            glob = local.mean((2, 3))  # N×C
        local, glob = local.to(x.dtype), glob.to(x.dtype)
        y_local = self.conv_local(local.flatten(2).transpose(1, 2).reshape(n, 1, -1))  # N×1×(s²·C), cell-major
        y_local = y_local.reshape(n, s * s, c).transpose(1, 2).reshape(n, c, s, s)
        y_global = self.conv(glob.unsqueeze(1)).reshape(n, c, 1, 1)
        return torch.sigmoid(y_global) * (1 - self.local_weight) + torch.sigmoid(y_local) * self.local_weight

    def _attn(self, x):
        return F.interpolate(self._local_gate(x), size=x.shape[2:], mode='nearest')

    def attention_maps(self, x, y=None):
        no_second_input(y)
        return {'local': self._local_gate(x)}

    def applied_gates(self, x, y=None):
        no_second_input(y)
        return {'attention': self._attn(x)}

    def forward(self, x):
        return x * self._attn(x)
