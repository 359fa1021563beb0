"""yolov5's own DDP training (``torch.distributed.run``) on CPUs as on GPUs, and ``--sync-bn`` that keeps the
batch-1-safe BN after global pooling.

yolov5 7.0.14 trains with DDP only on CUDA: ``main`` asserts CUDA devices and picks NCCL whenever torch has it
(CUDA builds do, with or without a GPU), and ``train`` wraps the model in DDP and converts BNs only ``if cuda``. So
on CPU every rank trained its own model, unsynchronised. ``ddp_on_cpu`` (patches.py) recompiles those two functions
with the CUDA-only conditions opened to CPU: the same DDP, over gloo. On CUDA runs they do exactly what yolov5 does.
Rank helpers (``rank``, ``world_size``) read torchrun's environment, as yolov5 does.
"""
import ast
import functools
import inspect
import os
import textwrap
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist

from yolo_attn.modules.sync_bn import convert_sync_batchnorm as _convert
from yolo_attn.paths import atomic_file


def rank():
    """This process's global rank under torchrun; -1 when not launched by it."""
    return int(os.environ.get("RANK", -1))


def local_rank():
    return int(os.environ.get("LOCAL_RANK", -1))


def world_size():
    return int(os.environ.get("WORLD_SIZE", 1))


def distributed():
    """Whether this process is one rank of a torchrun launch (yolov5's test: LOCAL_RANK is set)."""
    return local_rank() != -1


def cpu_run(device_arg):
    """Whether a run with ``--device device_arg`` trains on the CPU (yolov5's select_device rule)."""
    device_arg = str(device_arg).strip().lower().replace("cuda:", "")
    return device_arg == "cpu" or not torch.cuda.is_available()


def _cuda_device():
    """yolov5's DDP device for this rank: cuda:LOCAL_RANK of the visible devices."""
    assert torch.cuda.device_count() > local_rank(), 'insufficient CUDA devices for DDP command'
    torch.cuda.set_device(local_rank())
    return torch.device("cuda", local_rank())


def init_distributed(device_arg="", timeout_s=None):
    """Join torchrun's process group (gloo on CPU, NCCL on CUDA) unless already joined; returns this rank's device.
    ``timeout_s``: how long a collective waits for the other ranks (torch's default: 30 min)."""
    device_arg = str(device_arg).strip().lower().replace("cuda:", "")
    if device_arg and device_arg != "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = device_arg  # before CUDA is first asked, as yolov5's select_device does
    device = torch.device("cpu") if cpu_run(device_arg) else _cuda_device()
    if not dist.is_initialized():
        backend = "gloo" if device.type == "cpu" else ("nccl" if dist.is_nccl_available() else "gloo")
        kwargs = {"timeout": timedelta(seconds=timeout_s)} if timeout_s else {}
        dist.init_process_group(backend=backend, **kwargs)
    return device


def ddp_device(device):
    """Stands for yolov5 ``main``'s four CUDA-only DDP lines: ``device`` from ``select_device``; CPU stays CPU."""
    return init_distributed("cpu" if device.type == "cpu" else "")


def smart_ddp(original):
    """yolov5's ``smart_DDP`` for CUDA models; a CPU model is wrapped without device ids (DDP's rule for CPU)."""

    def smart_DDP(model):
        if next(model.parameters()).device.type != "cpu":
            return original(model)
        return torch.nn.parallel.DistributedDataParallel(model, static_graph=True)

    return smart_DDP


def convert_sync_batchnorm(model, process_group=None):
    """``--sync-bn``: BNs after global pooling synchronised and batch-1 safe (``SyncPooledBatchNorm2d``), the
    others torch's ``nn.SyncBatchNorm`` on GPU; on CPU, where that one cannot run, ``modules.sync_bn``'s."""
    on_gpu = any(p.device.type != "cpu" for p in model.parameters())
    plain = (lambda bn: torch.nn.SyncBatchNorm.convert_sync_batchnorm(bn, process_group)) if on_gpu else None
    return _convert(model, plain, process_group)


def on_rank0(fn):
    """``fn`` run by rank 0 (or outside torchrun) only; on other ranks a no-op."""

    @functools.wraps(fn)
    def rank0_only(*args, **kwargs):
        return fn(*args, **kwargs) if rank() in (-1, 0) else None

    return rank0_only


def cache_image_to_disk(self, i):
    """yolov5's ``LoadImagesAndLabels.cache_images_to_disk`` with the .npy written through a temporary file in the
    same folder and renamed when complete: readers (other ranks, later runs) see the whole array or no file."""
    import cv2
    import numpy as np

    f = Path(self.npy_files[i])
    if f.exists():
        return
    with atomic_file(f, "wb", prefix=f".{f.stem}.", suffix=".npy.partial") as out:
        np.save(out, cv2.imread(self.im_files[i]))


def edited_source(fn, edits):
    """(``fn``'s source with each ``(old, new)`` text edit made once, its first line number); the source of a function
    ``recompiled`` made is its edited one. An ``old`` found other than exactly once raises: the edit was written for
    another version of the source."""
    if hasattr(fn, "__yolo_attn_source__"):
        source, first = fn.__yolo_attn_source__
    else:
        lines, first = inspect.getsourcelines(fn)
        source = textwrap.dedent("".join(lines))
    for old, new in edits:
        count = source.count(old)
        if count != 1:
            raise RuntimeError(f"yolo-attn: expected {old.strip()!r} once in {fn.__module__}.{fn.__qualname__}, "
                               f"found it {count} times; this yolov5 version is not supported")
        source = source.replace(old, new)
    return source, first


def recompiled(fn, edits):
    """``fn`` compiled again from its edited source (``edited_source``), in its module's globals and at its own
    file and line numbers (tracebacks show yolov5's lines); ``__wrapped__`` is the original."""
    source, first = edited_source(fn, edits)
    tree = ast.parse(source)
    ast.increment_lineno(tree, first - 1)
    namespace = {}
    exec(compile(tree, inspect.getsourcefile(fn), "exec"), fn.__globals__, namespace)
    new_fn = namespace[fn.__name__]
    new_fn.__wrapped__, new_fn.__yolo_attn_source__ = fn, (source, first)
    return new_fn


# yolov5 7.0.14, train.py. Each edit keeps the line count, so tracebacks point at yolov5's own lines.
MAIN_EDITS = ((
    "        assert torch.cuda.device_count() > LOCAL_RANK, 'insufficient CUDA devices for DDP command'\n"
    "        torch.cuda.set_device(LOCAL_RANK)\n"
    "        device = torch.device('cuda', LOCAL_RANK)\n"
    "        dist.init_process_group(backend='nccl' if dist.is_nccl_available() else 'gloo')\n",
    "        device = yolo_attn_ddp_device(device)  # yolo-attn ddp_on_cpu: gloo on CPU, as before on CUDA\n\n\n\n"),)
TRAIN_EDITS = (
    ("    if opt.sync_bn and cuda and RANK != -1:\n", "    if opt.sync_bn and RANK != -1:  # yolo-attn ddp_on_cpu\n"),
    ("    if cuda and RANK != -1:\n        model = smart_DDP(model)\n",
     "    if RANK != -1:  # yolo-attn ddp_on_cpu\n        model = smart_DDP(model)\n"),
)
SYNC_BN_EDITS = ((
    "model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model).to(device)",
    "model = yolo_attn_convert_sync_batchnorm(model).to(device)  # yolo-attn sync_pooled_bn"),)
