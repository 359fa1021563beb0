"""Shared helpers for the attention modules: activation look-up, reduced width, pooled BN."""
import torch
import torch.nn as nn
import torch.nn.functional as F

from ._precision import float32, float32_statistics, full_precision

_ACT_LAYERS = {
    'relu': nn.ReLU,
    'relu6': nn.ReLU6,
    'silu': nn.SiLU,
    'swish': nn.SiLU,
    'hard_swish': nn.Hardswish,  # x * relu6(x + 3) / 6
    'hswish': nn.Hardswish,
    'sigmoid': nn.Sigmoid,
    'hard_sigmoid': nn.Hardsigmoid,  # relu6(x + 3) / 6
    'gelu': nn.GELU,
    'tanh': nn.Tanh,
    'identity': nn.Identity,
}


def get_act_layer(name_or_cls):
    """Return an activation class from a whitelisted name or pass an nn.Module subclass through.

    Strings are looked up case-insensitively in a fixed table (never evaluated); an unknown
    name raises ValueError listing the known ones.
    """
    if isinstance(name_or_cls, str):
        key = name_or_cls.lower()
        if key not in _ACT_LAYERS:
            raise ValueError(f"unknown activation {name_or_cls!r}; known: {', '.join(sorted(_ACT_LAYERS))}")
        return _ACT_LAYERS[key]
    if isinstance(name_or_cls, type) and issubclass(name_or_cls, nn.Module):
        return name_or_cls
    raise TypeError(f"activation must be a name or an nn.Module class, got {name_or_cls!r}")


def make_rd_channels(channels, rd_ratio, rd_channels=None, min_channels=1):
    """Reduced width: rd_channels if given, else max(min_channels, int(channels * rd_ratio)).

    Exactly C/r as in the papers (no rounding to a multiple of 8). A 1e-6 guard keeps float error
    from flooring an exact quotient down (98 * (1/49) is 1.999... in floating point).
    """
    if rd_channels is not None:
        return int(rd_channels)
    return max(min_channels, int(channels * rd_ratio + 1e-6))


def no_second_input(y):
    """attention_maps(x, y) has one signature for all modules; single-input ones reject y."""
    if y is not None:
        raise ValueError('this attention module takes a single input')


def two_inputs(x, y=None):
    """Unpack forward(x, y) or forward([x, y]) (YOLOv5 passes a list) and check equal shapes."""
    if y is None:
        if not isinstance(x, (list, tuple)) or len(x) != 2:
            raise ValueError('expected two inputs: call as forward(x, y) or forward([x, y])')
        x, y = x
    if x.shape != y.shape:
        raise ValueError(f'the two inputs must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}')
    return x, y


class PooledBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d for globally pooled inputs that tolerates one value per channel in training.

    Deviation from plain BN (used where pooling precedes BN): when training and the input holds a
    single value per channel (N=1 after global pooling, as in YOLOv5's batch-1 train-mode build
    forward), it normalises with the running statistics and leaves them untouched instead of
    raising. In every other case it is exactly nn.BatchNorm2d.
    """

    def forward(self, x):
        if self.training and self.running_mean is not None and x.numel() == x.shape[1]:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                                False, 0.0, self.eps)
        return super().forward(x)


class ConvBN(nn.Sequential):
    """EfficientViT's / SHViT's Conv2d_BN: a conv without bias, then BN (weight starting at bn_weight_init, bias at
    0); children ``c`` and ``bn`` as in their checkpoints."""

    def __init__(self, c_in: int, c_out: int, ks: int = 1, groups: int = 1, bn_weight_init: float = 1.0):
        super().__init__()
        self.c = nn.Conv2d(c_in, c_out, ks, 1, ks // 2, groups=groups, bias=False)
        self.bn = PooledBatchNorm2d(c_out)
        nn.init.constant_(self.bn.weight, bn_weight_init)
        nn.init.zeros_(self.bn.bias)


def two_maps(x, y=None):
    """Unpack forward(x, y) or forward([x, y]) for two inputs that may differ in channels and resolution."""
    if y is None:
        if not isinstance(x, (list, tuple)) or len(x) != 2:
            raise ValueError('expected two inputs: call as forward(x, y) or forward([x, y])')
        x, y = x
    if x.dim() != 4 or y.dim() != 4 or x.shape[0] != y.shape[0]:
        raise ValueError(f'expected two N×C×H×W maps with the same N, got {tuple(x.shape)} and {tuple(y.shape)}')
    return x, y


def check_divisible(name, channels, groups, what='groups'):
    """Raise a ValueError naming the module when ``channels`` cannot be split into ``groups``."""
    if groups < 1 or channels % groups:
        raise ValueError(f'{name}: {channels} channels cannot be split into {what}={groups}; '
                         f'choose {what} dividing the channel count')


class ChannelGroupNorm(nn.GroupNorm):
    """``nn.GroupNorm(c, c)`` (one group per channel: each channel normalised over its H×W positions, then scaled
    and shifted per channel), written out so that a single position in training gives the shift instead of raising
    (F.group_norm refuses one value per group in training, e.g. a 1×1 map at batch 1). Same parameters and
    state-dict names as nn.GroupNorm; identical output otherwise."""

    def __init__(self, channels, eps=1e-5):
        super().__init__(channels, channels, eps=eps)

    @float32_statistics  # the variance (and its gradient, a sum over the map) overflows float16
    def forward(self, x):
        mean = x.mean((2, 3), keepdim=True)
        var = (x - mean).square().mean((2, 3), keepdim=True)
        return (x - mean) * torch.rsqrt(var + self.eps) * self.weight.reshape(1, -1, 1, 1) + self.bias.reshape(1, -1, 1, 1)


def softmax_attention(q, k, scale, bias=None):
    """softmax(q·kᵀ·scale + bias) over the keys: q ...×N×d, k ...×M×d, bias broadcastable to ...×N×M.

    Under autocast or for float16/bfloat16 inputs the logits (a sum of d products) and the softmax are computed in
    float32 with autocast off, and the weights returned in q's dtype; in float32 the operations run as written."""
    with full_precision(q):
        logits = torch.matmul(float32(q), float32(k).transpose(-2, -1)) * scale
        if bias is not None:
            logits = logits + float32(bias)
        return logits.softmax(-1).to(q.dtype)
