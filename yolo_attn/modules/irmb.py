"""iRMB (EMO, ICCV 2023): the Inverted Residual Mobile Block — window self-attention and a depth-wise conv in one
inverted residual."""
import math
from typing import Optional, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ModelConfigError
from ._base import AttentionModule, Placement, declare_layer
from ._common import PooledBatchNorm2d, get_act_layer, no_second_input, softmax_attention

_EPS = 1e-6  # EMO's get_norm: every norm (BN and LN) with eps 1e-6


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an N×C×H×W map (EMO's 'ln_2d'), statistics in float32 for float16 input."""

    def forward(self, x):
        y = x.permute(0, 2, 3, 1)
        if y.dtype in (torch.float16, torch.bfloat16):
            y = F.layer_norm(y.float(), self.normalized_shape, self.weight.float(), self.bias.float(), self.eps)
            return y.to(x.dtype).permute(0, 3, 1, 2)
        return F.layer_norm(y, self.normalized_shape, self.weight, self.bias, self.eps).permute(0, 3, 1, 2)


def _norm(name, channels):
    if name == 'bn_2d':
        return PooledBatchNorm2d(channels, eps=_EPS)
    if name == 'ln_2d':
        return LayerNorm2d(channels, eps=_EPS)
    if name == 'none':
        return nn.Identity()
    raise ModelConfigError(f"iRMB: norm_layer={name!r} is not one of 'bn_2d', 'ln_2d', 'none'")


def _act(name):
    return nn.Identity if name == 'none' else get_act_layer(name)


class _SqueezeExcite(nn.Module):
    """timm's efficientnet SqueezeExcite: x · σ(conv_expand(act(conv_reduce(mean_HW(x))))), round(C·rd_ratio) inner."""

    def __init__(self, channels, rd_ratio, act_layer):
        super().__init__()
        rd = max(1, round(channels * rd_ratio))
        self.conv_reduce = nn.Conv2d(channels, rd, 1)
        self.act1 = act_layer()
        self.conv_expand = nn.Conv2d(rd, channels, 1)

    def gate(self, x):
        return torch.sigmoid(self.conv_expand(self.act1(self.conv_reduce(x.mean((2, 3), keepdim=True)))))

    def forward(self, x):
        return x * self.gate(x)


def _drop_path(x, p, training):
    if p == 0.0 or not training:
        return x
    keep = torch.rand(x.shape[0], 1, 1, 1, dtype=x.dtype, device=x.device).ge_(p)
    return x * keep / (1 - p)


@declare_layer(name="iRMB", paper="Zhang et al., Rethinking Mobile Block for Efficient Attention-based Models "
                                  "(EMO), ICCV 2023", family="hybrid",
               aliases=("InvertedResidualMobileBlock", "iRMB_Block"),
               placements=(Placement("stage_outputs",
                                     "YOLOv5s + iRMB (Zhang et al., EMO, ICCV 2023), the class defaults: BN, ReLU,\n"
                                     "7x7 windows (EMO's strided-grid layout), 64-channel heads, 3x3 depth-wise conv,\n"
                                     "its own residual. The windowed attention costs 49 keys per query, linear in H·W."),))
class iRMB(AttentionModule):  # noqa: N801 (the paper's and the official code's name)
    """Inverted Residual Mobile Block: out = x + proj(y + SE(DW(y))), y = windowed self-attention of Norm(x).

    Forward (official order): s = x; x = Norm(x). If attn_s: zero-pad bottom/right to multiples of w
    (window_size; w ≤ 0: one window, the whole map), split into windows; q, k = 1x1 conv C -> 2C (bias =
    qkv_bias), heads = C / dim_head; A = softmax(q·kᵀ·dim_head^-½) per window and head;
    attn_pre=False: y = A·act(1x1 C -> C·exp_ratio (x)); attn_pre=True: y = act(1x1(A·x)); merge windows, crop.
    If not attn_s: y = act(1x1(x)) (v_proj) or x. Then y = y + SE(DW(y)) (has_skip) or SE(DW(y)); DW = k×k
    depth-wise conv (no bias) + BN + SiLU whatever norm_layer / act_layer say; SE only if se_ratio > 0.
    out = 1x1 conv C·exp_ratio -> dim_out (no bias); out = s + DropPath(out) when has_skip, dim_in == dim_out and
    stride == 1, else out.

    Paper: Jiangning Zhang, Xiangtai Li, Jian Li, Liang Liu, Zhucun Xue, Boshen Zhang, Zhengkai Jiang, Tianxin Huang,
    Yabiao Wang, Chengjie Wang, "Rethinking Mobile Block for Efficient Attention-based Models", ICCV 2023,
    arXiv 2301.01146. Official code: github.com/zhangzjn/EMO, model/emo.py class iRMB (helpers in
    model/basic_modules.py) @ 27d9b40.
    Defaults: the official class defaults (exp_ratio 1, norm 'bn_2d', act 'relu', dw_ks 3, dim_head 64, window 7,
    qkv_bias False, attn_pre False, v_proj True), which is what YOLO projects insert as ``iRMB(c, c)``. The EMO
    networks instead use qkv_bias=True, attn_pre=True, 'ln_2d' + 'gelu', dw_ks 5, dim_head 16–32, exp_ratio 2–5 in
    their attention stages (tests/modules/test_paper_counts.py builds them). ``dim_out`` defaults to ``dim_in``; as a
    YOLO row the block keeps its channels (dim_out other than the input channels and stride 2 are for building EMO).
    Windows: ``contiguous_windows=False`` (default) keeps the official layout, where the rearrange
    'b c (h1 n1) (w1 n2) -> (b n1 n2) c h1 w1' makes each "window" a strided grid: window (a, b) holds rows
    a, a + n1, a + 2·n1, … and columns b, b + n2, … (n1, n2 the number of windows), a dilated w×w sample of the
    whole map, not a Swin-like block (zhangzjn/EMO issue #3); this matches the released checkpoints.
    ``contiguous_windows=True`` attends within contiguous w×w blocks instead.
    Odd sizes, as the official code: the normalised map is zero-padded bottom/right to multiples of w (13×17 with
    w = 7: 14×21, 2×3 windows) and cropped back; padded tokens are not masked (their keys are the qk bias, 0 without
    it), so results near the padding depend on it. A map smaller than a window is one zero-padded window.
    Deviations from the official code (same parameters, state-dict names differ):
      - plain torch: einops rearranges are reshapes/permutes, timm's SqueezeExcite / DropPath / activations are
        written out (same math);
      - the BatchNorms are PooledBatchNorm2d: exactly BatchNorm2d (eps 1e-6) except that a batch-1 1×1 map in
        training uses the running statistics instead of raising;
      - the depth-wise conv pads ceil(((k − 1)·dilation + 1 − stride) / 2); the official ConvNormAct pads
        ceil((k − stride) / 2), ignoring dilation (equal for dilation 1, the only value EMO uses);
      - softmax logits and LayerNorm statistics in float32 for float16/bfloat16 input or under autocast.
    Checks (ModelConfigError at construction): dim_head must divide dim_in when attn_s; with attn_pre=False the
    expanded width C·exp_ratio must divide into the heads; without attn_s and v_proj, exp_ratio must keep C.
    Cost: 4C² + 9C weights at the defaults (17,216 at C = 64); attention (B·windows)×heads×49×49.
    attention_maps: {'attention': N×windows×heads×w²×w² softmax weights per window (query rows)};
    applied_gates: {'attended': N×heads×H×W, the mean weight each position receives from the queries of its window}.
    """

    def __init__(self, dim_in: int, dim_out: Optional[int] = None, norm_in: bool = True, has_skip: bool = True,
                 exp_ratio: float = 1.0, norm_layer: str = 'bn_2d', act_layer: Union[str, type] = 'relu',
                 v_proj: bool = True, dw_ks: int = 3, stride: int = 1, dilation: int = 1, se_ratio: float = 0.0,
                 dim_head: int = 64, window_size: int = 7, attn_s: bool = True, qkv_bias: bool = False,
                 attn_drop: float = 0.0, drop: float = 0.0, drop_path: float = 0.0, v_group: bool = False,
                 attn_pre: bool = False, contiguous_windows: bool = False):
        super().__init__()
        dim_out = dim_in if dim_out is None else dim_out
        dim_mid = int(dim_in * exp_ratio)
        if dim_mid < 1:
            raise ModelConfigError(f"iRMB: exp_ratio={exp_ratio} leaves no channel of {dim_in}")
        self.norm = _norm(norm_layer, dim_in) if norm_in else nn.Identity()
        self.has_skip = has_skip and dim_in == dim_out and stride == 1
        self.attn_s, self.attn_pre, self.contiguous_windows = attn_s, attn_pre, contiguous_windows
        act = _act(act_layer) if isinstance(act_layer, str) else get_act_layer(act_layer)
        if attn_s:
            if dim_head < 1 or dim_in % dim_head:
                fits = [d for d in range(1, dim_in + 1) if dim_in % d == 0 and d >= 8] or [dim_in]
                raise ModelConfigError(f"iRMB: dim_head={dim_head} does not divide the {dim_in} input channels into "
                                       f"heads; choose a divisor of {dim_in}, e.g. {', '.join(map(str, fits[:6]))}")
            self.num_head, self.dim_head, self.window_size = dim_in // dim_head, dim_head, window_size
            if not attn_pre and dim_mid % self.num_head:
                raise ModelConfigError(f"iRMB: with attn_pre=False the expanded width {dim_mid} (= {dim_in} × "
                                       f"exp_ratio {exp_ratio}) must divide into the {self.num_head} heads")
            if v_group and dim_mid % self.num_head:
                raise ModelConfigError(f"iRMB: v_group needs the expanded width {dim_mid} divisible by the "
                                       f"{self.num_head} heads")
            self.scale = dim_head ** -0.5
            self.qk = nn.Conv2d(dim_in, 2 * dim_in, 1, bias=qkv_bias)
            self.v = nn.Sequential(nn.Conv2d(dim_in, dim_mid, 1, groups=self.num_head if v_group else 1,
                                             bias=qkv_bias), act())
            self.attn_drop = nn.Dropout(attn_drop)
        elif v_proj:
            self.v = nn.Sequential(nn.Conv2d(dim_in, dim_mid, 1, bias=qkv_bias), act())
        else:
            if dim_mid != dim_in:
                raise ModelConfigError(f"iRMB: without attn_s and v_proj the block cannot expand {dim_in} channels to "
                                       f"{dim_mid}; use exp_ratio=1 or v_proj=True")
            self.v = nn.Identity()
        pad = math.ceil(((dw_ks - 1) * dilation + 1 - stride) / 2)
        self.conv_local = nn.Sequential(
            nn.Conv2d(dim_mid, dim_mid, dw_ks, stride, pad, dilation, groups=dim_mid, bias=False),
            PooledBatchNorm2d(dim_mid, eps=_EPS), nn.SiLU())
        self.se = _SqueezeExcite(dim_mid, se_ratio, act) if se_ratio > 0.0 else nn.Identity()
        self.proj_drop = nn.Dropout(drop)
        self.proj = nn.Conv2d(dim_mid, dim_out, 1, bias=False)
        self.drop_path = drop_path

    # --- windows -----------------------------------------------------------------------------------------------
    def _window_sides(self, h, w):
        return (h, w) if self.window_size <= 0 else (self.window_size, self.window_size)

    def _partition(self, x, wh, ww):
        """Padded B×C×H'×W' -> (B·n1·n2)×C×wh×ww, in the official strided-grid layout or in contiguous blocks."""
        b, c, hp, wp = x.shape
        n1, n2 = hp // wh, wp // ww
        if self.contiguous_windows:
            x = x.reshape(b, c, n1, wh, n2, ww).permute(0, 2, 4, 1, 3, 5)
        else:  # row = i·n1 + a: window a, row i inside it
            x = x.reshape(b, c, wh, n1, ww, n2).permute(0, 3, 5, 1, 2, 4)
        return x.reshape(b * n1 * n2, c, wh, ww), n1, n2

    def _merge(self, x, b, n1, n2):
        _, c, wh, ww = x.shape
        x = x.reshape(b, n1, n2, c, wh, ww)
        if self.contiguous_windows:
            return x.permute(0, 3, 1, 4, 2, 5).reshape(b, c, n1 * wh, n2 * ww)
        return x.permute(0, 3, 4, 1, 5, 2).reshape(b, c, wh * n1, ww * n2)

    def _windows(self, x):
        """Zero-pad the normalised map bottom/right to whole windows and split it."""
        h, w = x.shape[2:]
        wh, ww = self._window_sides(h, w)
        pad_b, pad_r = (wh - h % wh) % wh, (ww - w % ww) % ww
        if pad_b or pad_r:
            x = F.pad(x, (0, pad_r, 0, pad_b))
        return self._partition(x, wh, ww)

    def _attention(self, xw):
        """Softmax weights per window and head: (B·windows)×heads×N×N."""
        bw, c, wh, ww = xw.shape
        qk = self.qk(xw).reshape(bw, 2, self.num_head, self.dim_head, wh * ww).transpose(-2, -1)
        return softmax_attention(qk[:, 0], qk[:, 1], self.scale)

    def _mix(self, x):
        """The attention (or v projection) branch on the normalised map: N×C·exp_ratio×H×W."""
        if not self.attn_s:
            return self.v(x)
        b, _, h, w = x.shape
        xw, n1, n2 = self._windows(x)
        bw, c, wh, ww = xw.shape
        attn = self.attn_drop(self._attention(xw))
        if self.attn_pre:
            t = xw.reshape(bw, self.num_head, self.dim_head, wh * ww).transpose(-2, -1)
            y = self.v(torch.matmul(attn, t).transpose(-2, -1).reshape(bw, c, wh, ww))
        else:
            v = self.v(xw)
            t = v.reshape(bw, self.num_head, v.shape[1] // self.num_head, wh * ww).transpose(-2, -1)
            y = torch.matmul(attn, t).transpose(-2, -1).reshape(bw, v.shape[1], wh, ww)
        return self._merge(y, b, n1, n2)[:, :, :h, :w]

    def forward(self, x):
        shortcut = x
        y = self._mix(self.norm(x))
        local = self.se(self.conv_local(y))
        y = y + local if self.has_skip else local
        y = self.proj(self.proj_drop(y))
        return shortcut + _drop_path(y, self.drop_path, self.training) if self.has_skip else y

    # --- gates -------------------------------------------------------------------------------------------------
    def attention_maps(self, x, y=None):
        no_second_input(y)
        if not self.attn_s:
            return {}
        xw, n1, n2 = self._windows(self.norm(x))
        attn = self._attention(xw)
        return {'attention': attn.reshape(x.shape[0], n1 * n2, *attn.shape[1:])}

    def applied_gates(self, x, y=None):
        no_second_input(y)
        if not self.attn_s:
            return {}
        b, _, h, w = x.shape
        xw, n1, n2 = self._windows(self.norm(x))
        attn = self._attention(xw)  # (B·n)×heads×N(query)×N(key)
        received = attn.mean(-2).reshape(attn.shape[0], self.num_head, *xw.shape[2:])
        return {'attended': self._merge(received, b, n1, n2)[:, :, :h, :w]}
