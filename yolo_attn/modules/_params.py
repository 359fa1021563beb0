"""The valid range of each hyper-parameter, declared once per name: every layer with a parameter of that name shares
it. A value outside it is a configuration mistake (``rd_ratio: 1024`` would build a billion-parameter layer), refused
by ``check_hyper_parameters`` before anything is built (the registry calls it for every layer it builds)."""
import math

from ..errors import ModelConfigError

MAX_CHANNELS = 16384  # no YOLO layer comes near (yolov5x: 1280)


def _int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _between(lo, hi, integer=True, what=None):
    def check(v, channels):
        ok = (_int(v) if integer else _number(v)) and lo <= v <= hi
        return None if ok else what or f"{'an integer' if integer else 'a number'} from {lo} to {hi}"
    return check


def _fraction(v, channels):
    return None if _number(v) and 0 < v < 1 else (
        "a fraction of the channels in (0, 1), as in timm: a reduction r is rd_ratio 1/r (r = 16: 0.0625)")


def _odd_kernel(v, channels):
    return None if _int(v) and 1 <= v <= 31 and v % 2 else "an odd integer from 1 to 31 (a kernel size)"


def _groups(v, channels):
    if not (_int(v) and 1 <= v <= max(channels, 1)):
        return f"an integer from 1 to the channel count ({channels})"
    return None if channels % v == 0 else f"a divisor of the channel count {channels}"


def _flag(v, channels):
    return None if isinstance(v, bool) else "true or false"


def _optional(check):
    return lambda v, channels: None if v is None else check(v, channels)


def _each(check):
    def check_all(v, channels):
        if not (isinstance(v, (list, tuple)) and 1 <= len(v) <= 8):
            return "a list of 1 to 8 values"
        bad = [check(x, channels) for x in v]
        return next((f"a list, each {b}" for b in bad if b), None)
    return check_all


_COUNT = _between(1, MAX_CHANNELS, what=f"a channel count from 1 to {MAX_CHANNELS}")

RULES = {
    "rd_ratio": _fraction,
    "rd_channels": _optional(_COUNT), "c_m": _optional(_COUNT), "c_n": _optional(_COUNT),
    "gate_channels": _optional(_COUNT), "min_rd_channels": _COUNT,
    "kernel_size": _optional(_odd_kernel), "spatial_kernel_size": _odd_kernel,
    "kernel_sizes": _each(_odd_kernel), "dilations": _each(_between(1, 8)),
    "groups": _groups, "stride": _between(1, 8), "radix": _between(1, 8), "pooling_r": _between(1, 64),
    "eps": _between(1e-12, 1.0, integer=False), "e_lambda": _between(1e-12, 1.0, integer=False),
    "gamma": _between(1e-3, 100.0, integer=False), "beta": _between(-100.0, 100.0, integer=False),
    "use_scale": _flag, "zero_init": _flag, "residual": _flag, "no_spatial": _flag, "detach_weights": _flag,
}

# iRMB (EMO), SHSA (SHViT), CGA (EfficientViT): structural fits (dim_head dividing the channels, one kernel per head)
# are checked by the classes themselves; these are the ranges.


def _same_channels(v, channels):
    return None if v is None or v == channels else (
        f"the input channel count {channels} (a YOLO row keeps its channels) or left out")


def _partial_ratio(v, channels):
    return None if _number(v) and 0 < v <= 1 else "a fraction of the channels in (0, 1] (SHViT: 1/4.67)"


def _kernels(v, channels):
    if _int(v):
        return _odd_kernel(v, channels)
    if not (isinstance(v, (list, tuple)) and 1 <= len(v) <= 64):
        return "an odd kernel size, or a list of one odd kernel size per head"
    bad = [_odd_kernel(k, channels) for k in v]
    return next((f"a list, each {b}" for b in bad if b), None)


def _pdim(v, channels):
    return None if v is None or (_int(v) and 1 <= v <= max(channels, 1)) else (
        f"an integer from 1 to the channel count ({channels}), or left out")


RULES.update({
    "dim_out": _same_channels, "exp_ratio": _between(0.0625, 16.0, integer=False), "dw_ks": _odd_kernel,
    "dilation": _between(1, 8), "se_ratio": _between(0.0, 1.0, integer=False),
    "dim_head": _groups, "num_heads": _groups, "key_dim": _between(1, 1024), "qk_dim": _between(1, 1024),
    "window_size": _between(0, 256, what="0 (one window over the whole map) or a window side from 1 to 256"),
    "window_resolution": _between(1, 256), "kernels": _kernels, "pdim": _pdim, "partial_ratio": _partial_ratio,
    "attn_drop": _between(0.0, 0.99, integer=False), "drop": _between(0.0, 0.99, integer=False),
    "drop_path": _between(0.0, 0.99, integer=False),
    "norm_layer": lambda v, c: None if v in ("bn_2d", "ln_2d", "none") else "one of 'bn_2d', 'ln_2d', 'none'",
    **{flag: _flag for flag in ("norm_in", "has_skip", "v_proj", "attn_s", "qkv_bias", "v_group", "attn_pre",
                                "contiguous_windows")},
})


def _one_of(*values, what=None):
    def check(v, channels):
        ok = any(v == x and type(v) is type(x) for x in values) or (
            isinstance(v, str) and v.upper() in [x for x in values if isinstance(x, str)])
        return None if ok else what or f"one of {', '.join(map(repr, values))}"
    return check


def _strip_kernel(v):
    return None if _int(v) and 1 <= v <= 63 and v % 2 else "an odd integer from 1 to 63 (a strip kernel size)"


# ELA, LSKA, MLCA, CPCA, CAA (issue #23)
RULES.update({
    "phi": _one_of("T", "B", "S", "L", what="one of 'T', 'B', 'S', 'L' (the ELA versions)"),
    "k_size": _one_of(7, 11, 23, 35, 41, 53, what="one of the official LSKA kernel sizes 7, 11, 23, 35, 41, 53"),
    "local_size": _between(1, 32), "local_weight": _between(0.0, 1.0, integer=False),
    "b": _between(-100.0, 100.0, integer=False),
    "h_kernel_size": lambda v, c: _strip_kernel(v), "v_kernel_size": lambda v, c: _strip_kernel(v),
})


def invalid(name, value, channels):
    """Why ``value`` is not a valid ``name`` for a layer of ``channels`` channels ("must be ..."), or None."""
    check = RULES.get(name)
    return None if check is None else check(value, channels)


def check_hyper_parameters(layer, channels, values):
    """Raise a ValueError naming the layer, the parameter, its value and the valid range for the first bad one."""
    for name, value in values.items():
        why = invalid(name, value, channels)
        if why:
            raise ModelConfigError(f"{layer}: {name}={value!r} is out of range; {name} must be {why}")

# BiLevelRoutingAttention (BiFormer) and DAttention (DAT); the module itself checks what depends on two values
# (num_heads dividing qk_dim, topk ≤ n_win², n_groups dividing n_heads).
RULES.update({
    "num_heads": _groups, "n_heads": _groups, "n_win": _between(1, 32), "topk": _between(1, 1024),
    "qk_dim": _optional(_COUNT), "auto_pad": _flag,
    "side_dwconv": lambda v, c: None if v == 0 and _int(v) else _odd_kernel(v, c),
    "n_groups": _between(1, 64), "offset_range_factor": _between(-1.0, 16.0, integer=False),
    "use_pe": _flag, "dwc_pe": _flag, "ksize": _odd_kernel, "rpe_size": _between(1, 64),
})
