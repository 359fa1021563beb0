"""Compatibility of the yolov5==7.0.14 engine with today's Python stack.

yolov5 7.0.14 (the last release on PyPI) predates setuptools 81, numpy 2.4, Pillow 10 and torch 2.6.
Each fix below is a small, additive patch applied once, before yolov5 is imported; every one has a
test in tests/compat that reproduces the original failure. Pins were rejected for these items
because they would hold users on unmaintained releases (setuptools < 81, numpy < 2.4, Pillow < 10,
torch < 2.6); the one pin we do keep is ``torch>=2.14`` (see pyproject.toml), because the registry's
torchvision only works with the registry's own torch build.

Also here (tests in tests/export and tests/checkpoints): yolov5's checkpoint loads go through
``yolo_attn.checkpoints`` (logged, restricted to model classes), its ONNX export uses the TorchScript-based
exporter it was written for (torch >= 2.9 defaults to the dynamo exporter, which cannot write the opsets yolov5
asks for), and local weights files never trigger a Hugging Face Hub or GitHub lookup.
"""
from yolo_attn.compat.pkg_resources_shim import install_pkg_resources_shim
from yolo_attn.compat.yolov5_patches import patch_yolov5

_applied = False


def apply():
    """Apply every compatibility patch (idempotent). Called by ``import yolo_attn``."""
    global _applied
    if _applied:
        return
    install_pkg_resources_shim()
    patch_yolov5()
    _applied = True
