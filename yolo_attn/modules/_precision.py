"""Statistics in float32 under mixed precision (float16 / bfloat16 activations, autocast).

float16 holds at most 65,504 and about three significant digits. Activations of a few tens are ordinary in a
detector; their squares summed over a map (a variance), a similarity summed over channels and then squared, or an
attention logit summed over 128 channels overflow float16 or lose the digits a softmax needs. The layers therefore
compute such statistics with ``float32_statistics``: float16/bfloat16 tensors enter as float32, autocast is off
inside (it would cast a bmm or conv back to float16), and the result leaves in the caller's dtype (a gate in [0, 1]
or a normalised map is well held by float16). A float32 (or float64) call without autocast runs the method itself,
unchanged: the same operations, bit for bit, and the same traced / ONNX graph.
"""
import contextlib
import functools

import torch

REDUCED_FLOATS = (torch.float16, torch.bfloat16)


def float32(x):
    """``x`` as float32 when it is float16 or bfloat16, else ``x`` itself (float32 / float64 stay as they are)."""
    return x.float() if x.dtype in REDUCED_FLOATS else x


def accumulation_dtype(x):
    """The dtype to reduce or normalise ``x`` in: float32 for float16/bfloat16 tensors (float16-safe sums, variances
    and softmax logits), the tensor's own dtype otherwise (float64 stays float64)."""
    return torch.float32 if x.dtype in REDUCED_FLOATS else x.dtype


def full_precision(x):
    """Autocast off on ``x``'s device: matmuls inside keep their inputs' dtype, so logits made from ``float32``
    tensors stay float32 under autocast (which would compute them in float16/bfloat16). A no-op where autocast is off
    or unknown (the meta device)."""
    return torch.autocast(x.device.type, enabled=False) if _autocast_on(x.device.type) else contextlib.nullcontext()


def _cast(out, dtype):
    if isinstance(out, torch.Tensor):
        return out if out.dtype == dtype or not out.is_floating_point() else out.to(dtype)
    if isinstance(out, tuple):
        return tuple(_cast(t, dtype) for t in out)
    return out


def _autocast_on(device):
    try:
        return torch.is_autocast_enabled(device)
    except RuntimeError:  # a device type without autocast (the meta device of yolov5's shape dry run)
        return False


def _has_reduced_weights(module):
    """A module cast with ``.half()`` (yolov5's and ultralytics' validation on a GPU, a float16 export): its convs
    need float16 inputs, so its statistics stay in float16 as before."""
    weight = next(module.parameters(), None)
    return weight is not None and weight.dtype in REDUCED_FLOATS


def float32_statistics(method):
    """Decorate ``method(self, *tensors)``: computed in float32 with autocast off when a tensor argument is
    float16/bfloat16 or autocast is on for its device; the tensor result(s) cast back to the first argument's dtype.
    Otherwise (float32, or a module whose weights are float16/bfloat16 itself) the method runs as written."""

    @functools.wraps(method)
    def wrapper(self, *args):
        first = args[0]
        device = first.device.type
        reduced = any(isinstance(a, torch.Tensor) and a.dtype in REDUCED_FLOATS for a in args)
        autocast = _autocast_on(device)
        if not reduced and not autocast or _has_reduced_weights(self):
            return method(self, *args)  # float32, or a model cast with .half(): its weights take no float32 input
        with torch.autocast(device, enabled=False) if autocast else contextlib.nullcontext():
            out = method(self, *(float32(a) if isinstance(a, torch.Tensor) else a for a in args))
        return _cast(out, first.dtype)

    return wrapper


__all__ = ["REDUCED_FLOATS", "accumulation_dtype", "float32", "float32_statistics", "full_precision"]
