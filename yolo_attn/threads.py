"""How many CPU threads a training or validation uses, and how the sweep hands each of its runs its share.

yolov5 sets ``OMP_NUM_THREADS = cpu_count - 1`` in ``os.environ`` when it is imported (ultralytics sets 1 when
unset, and its ``select_device`` calls ``torch.set_num_threads(cpu_count - 1)``): every subprocess started after
that, such as a sweep's runs, would get one thread on a 2-core machine. So a command decides its thread count
itself (``wanted``) and applies it around the command (``using``; yolov5's import changes only the environment of
later subprocesses, not torch's count in this process; the ultralytics runners also make its
``select_device`` apply the same count):

1. ``--threads N`` of train.sh;
2. ``YOLO_ATTN_THREADS`` in the environment (what the sweep sets for each run, with ``OMP_NUM_THREADS`` and
   ``MKL_NUM_THREADS``: ``child_env``);
3. ``OMP_NUM_THREADS`` as it was when yolo_attn was imported, i.e. as the user set it (before any engine changed it);
4. every core this process may run on.

The thread count changes only the speed and, through float reassociation in the reductions, the last bits of
results; nothing else.
"""
import contextlib
import os

from yolo_attn.errors import BadParameter

ENV = "YOLO_ATTN_THREADS"
USER_OMP = os.environ.get("OMP_NUM_THREADS")  # before yolov5/ultralytics change it (yolo_attn is imported first)


def cores() -> int:
    """The CPU cores this process may run on (its affinity mask, e.g. a container's or taskset's share)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _count(value, name):
    try:
        n = int(str(value).strip())
    except ValueError:
        n = 0
    if n < 1:
        raise BadParameter(name, "{name} " + f"{value!r}: give a number of CPU threads, at least 1 (this machine "
                                              f"has {cores()} cores)")
    return n


def wanted(option=None) -> int:
    """The thread count: ``option`` (--threads), else $YOLO_ATTN_THREADS, else the user's $OMP_NUM_THREADS, else
    every core."""
    if option is not None:
        return _count(option, "threads")
    for name, value in ((ENV, os.environ.get(ENV)), ("OMP_NUM_THREADS", USER_OMP)):
        if value not in (None, ""):
            return _count(value, name)
    return cores()


def child_env(n: int) -> dict:
    """The environment that gives a subprocess of ours ``n`` threads, whatever an engine sets at import."""
    return {ENV: str(n), "OMP_NUM_THREADS": str(n), "MKL_NUM_THREADS": str(n)}


@contextlib.contextmanager
def using(option=None):
    """torch's intra-op threads set to ``wanted(option)`` inside the block (the count), restored after it (a command
    run in-process, as the tests do, leaves the caller's setting as it was). Not exported to subprocesses: torchrun's
    ranks keep their own (1 each)."""
    import torch

    before, n = torch.get_num_threads(), wanted(option)
    torch.set_num_threads(n)
    try:
        yield n
    finally:
        torch.set_num_threads(before)
