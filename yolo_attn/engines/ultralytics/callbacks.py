"""Callbacks yolo-attn adds to ultralytics' trainers (module-level functions: pickled by reference for DDP).

A DDP worker that unpickles ``ensure_installed`` imports this module, and Python imports its parent packages first:
``yolo_attn`` (whose import installs the adapters) and ``yolo_attn.engines.ultralytics``. So the adapter is in place
before the worker builds its model.
"""
import sys


def ensure_installed(trainer=None):
    """Re-install the ultralytics adapter if it was uninstalled in this process (idempotent)."""
    sys.modules["yolo_attn.engines.ultralytics"].install()  # a parent package of this module: always imported
