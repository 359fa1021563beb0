"""FLOPs at the real input size, with the work of attention modules included.

yolov5's own "GFLOPs" come from thop on a 1×3×32×32 input scaled by (640/32)²: thop counts only
convolution/linear MACs (×2), so sigmoid, SiLU, hard-swish, matmul, mean/max pooling and element-wise
products count as nothing, and costs that do not grow with H·W (an SE block's FCs on the pooled vector)
are multiplied by 400. Here every aten operator the model runs at the real input size is counted, once,
by a ``TorchDispatchMode``:

==========================  ===========================================================================
operator                    FLOPs
==========================  ===========================================================================
convolution, mm, bmm,       2 · MACs (torch.utils.flop_counter's formulas, the convention of yolov5's
addmm, baddbmm, sdpa        "GFLOPs" = thop MACs × 2), plus 1 per output element for a bias
element-wise arithmetic     1 per output element: add, sub, mul, div, pow, ... and every activation
and activations             (sigmoid, relu, SiLU, hard-swish, ...), each counted as one
reductions                  1 per *input* element: mean, sum, amax, max, min, var, std, topk, ...
batch norm (inference)      2 per element (scale and shift)
softmax / log-softmax       3 per element (exp, sum, divide)
max / avg pooling           k_h · k_w per output element; adaptive pooling 1 per input element
interpolation               2 per tap per output element: (bi/tri)linear 4/8/16, bicubic 32
data movement               0: views, cat, stack, copies, upsampling by nearest neighbour, arange, ...
==========================  ===========================================================================

Operators outside these groups count 0 and are listed in ``FlopReport.uncounted`` (empty for every
shipped model). With this rule the baseline yolov5s (nc=80, fused) reads 16.50 GFLOPs at 640
(convolutions 16.43 + biases 0.03 + everything else 0.04), within yolov5's own 16.4-16.6.

By default a copy of the model runs on the ``meta`` device: shapes propagate, no arithmetic is done, so a
count costs the same at 640 px as at 64 px (about 0.3 s; it falls back to a real forward if a module
cannot run on meta tensors, e.g. one that reads a tensor's value).
"""
import copy
from collections import Counter
from dataclasses import dataclass, field

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import flop_registry

aten = torch.ops.aten

_MATMUL_WITH_BIAS = {aten.addmm: 0, aten.baddbmm: 0}  # input 0 is the bias / accumulator
_ACTIVATIONS = {  # activations not carrying aten's 'pointwise' tag
    "hardswish", "hardswish_", "hardsigmoid", "hardsigmoid_", "gelu", "gelu_", "silu", "silu_", "mish", "mish_",
    "elu", "elu_", "leaky_relu", "leaky_relu_", "hardtanh", "hardtanh_", "relu6", "relu6_", "softplus",
    "log_sigmoid_forward", "prelu", "_prelu_kernel", "glu", "threshold", "threshold_", "celu", "selu", "rrelu",
}
_REDUCTIONS = {"mean", "sum", "amax", "amin", "max", "min", "var", "std", "var_mean", "std_mean", "prod", "norm",
               "linalg_vector_norm", "logsumexp", "aminmax", "cumsum", "argmax", "argmin",
               "topk"}  # topk: one comparison per input element, as argmax (BiFormer's region routing)
_BATCH_NORMS = {"native_batch_norm", "_native_batch_norm_legit", "_native_batch_norm_legit_no_training",
                "_native_batch_norm_legit_functional", "batch_norm", "instance_norm", "native_layer_norm",
                "native_group_norm"}
_SOFTMAX = {"_softmax", "_log_softmax", "softmax", "log_softmax"}
_WINDOW_POOLS = {"max_pool2d_with_indices", "max_pool2d", "avg_pool2d", "max_pool1d", "avg_pool1d",
                 "max_pool3d_with_indices", "avg_pool3d", "mkldnn_max_pool2d"}
_ADAPTIVE_POOLS = {"_adaptive_avg_pool2d", "adaptive_max_pool2d", "_adaptive_avg_pool3d", "adaptive_max_pool3d",
                   "adaptive_avg_pool1d", "adaptive_max_pool1d"}
_INTERPOLATION = {"upsample_linear1d": 4, "upsample_bilinear2d": 8, "_upsample_bilinear2d_aa": 8,
                  "upsample_trilinear3d": 16, "upsample_bicubic2d": 32, "_upsample_bicubic2d_aa": 32,
                  "grid_sampler_2d": 8, "grid_sampler_3d": 16}
_ZERO = {  # data movement and tensor creation: no arithmetic
    "cat", "stack", "clone", "copy_", "_to_copy", "to", "contiguous", "detach", "lift_fresh", "lift_fresh_copy",
    "empty", "empty_like", "empty_strided", "zeros", "zeros_like", "ones", "ones_like", "full", "full_like",
    "new_empty", "new_zeros", "new_ones", "new_full", "new_empty_strided", "fill_", "zero_", "arange", "linspace",
    "upsample_nearest1d", "upsample_nearest2d", "upsample_nearest3d", "_upsample_nearest_exact2d", "split",
    "split_with_sizes", "unbind", "chunk", "index", "index_select", "gather", "constant_pad_nd", "flip", "roll",
    "repeat", "_unsafe_view", "device", "scalar_tensor", "_local_scalar_dense", "item", "set_", "resize_",
    "meshgrid", "tensor_split", "masked_fill", "masked_fill_", "embedding", "select_scatter", "slice_scatter",
    "_foreach_copy_", "alias", "rand", "randn", "rand_like", "randn_like", "bernoulli_", "uniform_", "normal_",
}
_ZERO_POINTWISE = {"clone", "copy_", "_to_copy", "fill_", "zero_", "masked_fill", "masked_fill_"}


def _numel(t):
    return t.numel() if isinstance(t, torch.Tensor) else 0


def _first_tensor(args):
    for a in tree_flatten(args)[0]:
        if isinstance(a, torch.Tensor):
            return a
    return None


def op_flops(func, args, kwargs, out):
    """(kind, FLOPs) of one aten call by the rule in the module docstring; kind None means 'not counted'."""
    packet = func._overloadpacket
    name = packet.__name__
    if packet in flop_registry:
        flops = flop_registry[packet](*args, **kwargs, out_val=out)
        if packet in (aten.convolution, aten._convolution) and len(args) > 2 and args[2] is not None:
            flops += _numel(out)
        elif packet in _MATMUL_WITH_BIAS:
            flops += _numel(out)
        return "conv", int(flops)
    if name in _ZERO or name in _ZERO_POINTWISE or func.is_view:
        return "zero", 0
    outs = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
    first_out = outs[0] if outs else None
    if name in _BATCH_NORMS:
        return "norm", 2 * _numel(_first_tensor(args))
    if name in _SOFTMAX:
        return "elementwise", 3 * _numel(first_out)
    if name in _WINDOW_POOLS:
        k = args[1] if len(args) > 1 else kwargs.get("kernel_size")
        k = [k] if isinstance(k, int) else list(k)
        window = k[0] * (k[-1] if len(k) > 1 else k[0])
        return "pool", window * _numel(first_out)
    if name in _INTERPOLATION:
        return "pool", _INTERPOLATION[name] * _numel(first_out)
    if name in _ADAPTIVE_POOLS:
        return "pool", _numel(_first_tensor(args))
    if name in _REDUCTIONS or torch.Tag.reduction in func.tags:
        return "reduction", _numel(_first_tensor(args))
    if torch.Tag.pointwise in func.tags or name in _ACTIVATIONS:
        return "elementwise", _numel(first_out)
    return None, 0


@dataclass
class FlopReport:
    """FLOPs of one forward pass, by kind and for the attention modules (their convs included)."""

    total: int = 0
    by_kind: Counter = field(default_factory=Counter)
    attention: int = 0
    uncounted: Counter = field(default_factory=Counter)
    meta: bool = False

    @property
    def gflops(self):
        return self.total / 1e9


class FlopCounter(TorchDispatchMode):
    """Counts FLOPs of every aten call made while active (see the module docstring for the rule).

    ``attention_types``: module classes whose calls (with everything inside them) are also summed into
    ``report.attention``; pass the model to ``track(model)`` to install the hooks that do that.
    """

    def __init__(self, attention_types=()):
        super().__init__()
        self.report = FlopReport()
        self.attention_types = tuple(attention_types)
        self._depth = 0
        self._hooks = []

    def track(self, model):
        for m in model.modules():
            if self.attention_types and isinstance(m, self.attention_types):
                self._hooks.append(m.register_forward_pre_hook(self._enter))
                self._hooks.append(m.register_forward_hook(self._leave))
        return self

    def _enter(self, *_):
        self._depth += 1

    def _leave(self, *_):
        self._depth -= 1

    def remove_hooks(self):
        for h in self._hooks:
            h.remove()
        self._hooks.clear()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        kind, flops = op_flops(func, args, kwargs, out)
        if kind is None:
            self.report.uncounted[str(func)] += 1
        elif flops:
            self.report.by_kind[kind] += flops
            self.report.total += flops
            if self._depth > 0:
                self.report.attention += flops
        return out


def _attention_types():
    from yolo_attn.registry import registered_layers

    return tuple(spec.cls for spec in registered_layers())


def count_flops(model, imgsz=640, batch=1, channels=3, attention_types=None, meta=True):
    """FLOPs of ``model`` on one ``batch×channels×imgsz×imgsz`` input, counted by the rule above.

    The model is deep-copied (yolov5's Detect caches its grids at the input size) and run in its current
    train/eval mode under ``torch.no_grad``. ``meta=True`` runs the copy on the meta device (no arithmetic),
    falling back to a real forward if that fails. ``attention_types`` defaults to every registered attention
    layer.
    """
    hw = (imgsz, imgsz) if isinstance(imgsz, int) else tuple(imgsz)
    types = _attention_types() if attention_types is None else tuple(attention_types)
    if meta:
        try:
            m = copy.deepcopy(model).to("meta")
            report = _count(m, torch.zeros(batch, channels, *hw, device="meta", dtype=_dtype_of(model)), types)
            report.meta = True
            return report
        except Exception:  # noqa: BLE001  (a module that needs real values: count on real tensors instead)
            pass
    m = copy.deepcopy(model)
    x = torch.zeros(batch, channels, *hw, device=_device_of(model), dtype=_dtype_of(model))
    return _count(m, x, types)


def _count(model, x, types):
    counter = FlopCounter(types).track(model)
    try:
        with torch.no_grad(), counter:
            model(x)
    finally:
        counter.remove_hooks()
    return counter.report


def _device_of(model):
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _dtype_of(model):
    p = next(model.parameters(), None)
    return p.dtype if p is not None and p.is_floating_point() else torch.float32


def yolov5_gflops(model, imgsz=640):
    """yolov5's own figure (``model_info``): thop MACs × 2 on a stride-sized input, scaled to ``imgsz``."""
    import thop

    p = next(model.parameters())
    stride = max(int(model.stride.max()), 32) if hasattr(model, "stride") else 32
    im = torch.empty((1, p.shape[1], stride, stride), device=p.device, dtype=p.dtype)
    macs = thop.profile(copy.deepcopy(model), inputs=(im,), verbose=False)[0]
    return macs / 1e9 * 2 * (imgsz / stride) ** 2
