"""Interleaved timing of several models in one process, and peak memory of one call.

Timing: after ``warmup`` calls of every function, ``rounds`` rounds each call every function once, the
order rotated by one place per round (round r starts with function r mod n), so that slow phases of a
shared machine, thermal or frequency drift and cache effects fall on all models alike. Per function:
the median time over the rounds; the ratio to the baseline is the median over the rounds of
(time of the function / time of the baseline in the same round), a paired figure that noise common to a
round cancels out of.

Peak memory (CPU): ``tracemalloc`` does not see torch's allocations and process RSS is blurred by the
allocator's caching, so ``peak_tensor_memory`` counts tensor storages instead: a ``TorchDispatchMode``
adds the bytes of every new storage an aten call returns (views and in-place results share an input's
storage and add nothing) and subtracts them when the storage is freed (a weakref finalizer). The peak is
the most bytes alive at once during the call beyond what existed before it: activations, tensors saved
for backward and gradients; not the weights, not allocator caches or library scratch buffers.
GPU: ``torch.cuda.max_memory_allocated`` during the call minus the memory allocated before it.
"""
import statistics
import time
import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


def interleaved_times(fns, rounds=10, warmup=2, sync=None):
    """{name: [seconds per round]} for the callables in ``fns`` (a dict), timed in rotating order."""
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    if sync:
        sync()
    times = {name: [] for name in names}
    for r in range(rounds):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            t0 = time.perf_counter()
            fns[name]()
            if sync:
                sync()
            times[name].append(time.perf_counter() - t0)
    return times


def summarize_times(times, baseline):
    """{name: (median ms, median paired ratio to ``baseline``)} from ``interleaved_times``."""
    base = times[baseline]
    out = {}
    for name, ts in times.items():
        ratios = [t / b for t, b in zip(ts, base) if b > 0]
        out[name] = (1000 * statistics.median(ts), statistics.median(ratios) if ratios else float("nan"))
    return out


class _LiveTensorBytes(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.live = {}
        self.current = 0
        self.peak = 0

    def _free(self, key):
        self.current -= self.live.pop(key, 0)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        inputs = {a.untyped_storage()._cdata for a in tree_flatten((args, kwargs))[0]
                  if isinstance(a, torch.Tensor) and a.device.type != "meta"}
        for t in tree_flatten(out)[0]:
            if not isinstance(t, torch.Tensor) or t.device.type == "meta":
                continue
            storage = t.untyped_storage()
            key = storage._cdata
            if key in inputs or key in self.live:
                continue
            self.live[key] = storage.nbytes()
            self.current += self.live[key]
            self.peak = max(self.peak, self.current)
            weakref.finalize(storage, self._free, key)
        return out


def peak_tensor_memory(fn):
    """Peak bytes of tensor storages created and alive at once while ``fn()`` runs (see module docstring)."""
    tracker = _LiveTensorBytes()
    with tracker:
        fn()
    return tracker.peak


def peak_cuda_memory(fn, device=None):
    """Peak bytes allocated on the GPU while ``fn()`` runs, beyond what was allocated before it."""
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - before


def inference_fn(model, x):
    """One batch forward of an eval-mode model under ``torch.inference_mode``."""

    def run():
        with torch.inference_mode():
            model(x)

    return run


def _tensors(out):
    """The tensors of a model's training output: a tensor, a list or tuple of them (yolov5), a dict of tensors or
    of lists of tensors (ultralytics); one level of nesting, in order."""
    outs = out.values() if isinstance(out, dict) else out if isinstance(out, (list, tuple)) else [out]
    return [t for o in outs for t in (o if isinstance(o, (list, tuple)) else [o]) if isinstance(t, torch.Tensor)]


def train_step_fn(model, x, autocast_device=None, dtype=torch.float16):
    """One training step without a loss: forward in train mode, backward of the sum of the outputs,
    gradients released (``set_to_none``). ``autocast_device`` ("cuda") runs the forward in mixed precision."""

    def run():
        if autocast_device:
            with torch.autocast(autocast_device, dtype=dtype):
                out = model(x)
        else:
            out = model(x)
        sum(o.float().sum() for o in _tensors(out)).backward()
        model.zero_grad(set_to_none=True)

    return run
