"""``pkg_resources`` was removed from setuptools 81; yolov5 imports it for ``parse_version`` only."""
import importlib.util
import sys
import types

from packaging.version import parse as parse_version


def install_pkg_resources_shim():
    """Register a minimal ``pkg_resources`` module when the real one is missing. Returns True if installed."""
    if "pkg_resources" in sys.modules or importlib.util.find_spec("pkg_resources") is not None:
        return False
    shim = types.ModuleType("pkg_resources")
    shim.__doc__ = "yolo-attn shim: setuptools >= 81 has no pkg_resources; yolov5 needs parse_version only."
    shim.parse_version = parse_version
    sys.modules["pkg_resources"] = shim
    return True
