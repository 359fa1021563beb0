"""Small, additive patches that let yolov5==7.0.14 run on today's numpy, Pillow and torch, offline."""
import functools
import os
import sys
import types
from pathlib import Path

import numpy as np
import torch
from PIL import ImageFont


class _NumpyWithTrapz(types.ModuleType):
    """numpy as yolov5's metrics module sees it: ``np.trapz`` (removed in numpy 2.4) is ``np.trapezoid``."""

    trapz = staticmethod(getattr(np, "trapz", None) or np.trapezoid)

    def __getattr__(self, name):
        return getattr(np, name)


def patch_numpy_trapz():
    import yolov5.utils.metrics as metrics

    if not hasattr(np, "trapz") and metrics.np is np:
        metrics.np = _NumpyWithTrapz("numpy")


def _getsize(self, text, *args, **kwargs):
    """Pillow < 10 ``getsize``: the text's width and height including its offset, from ``getbbox``."""
    _, _, right, bottom = self.getbbox(text, *args, **kwargs)
    return right, bottom


def patch_pillow_getsize():
    for cls in (ImageFont.FreeTypeFont, ImageFont.ImageFont):
        if not hasattr(cls, "getsize"):
            cls.getsize = _getsize


def fallback_font_path():
    """A TrueType font that is already on disk: matplotlib's DejaVuSans (matplotlib is a yolov5 dependency)."""
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"


def _local_font(font):
    """The font if it is on disk (as given or in yolov5's config dir), else the bundled fallback."""
    from yolov5.utils.general import CONFIG_DIR

    font = Path(font)
    for candidate in (font, CONFIG_DIR / font.name):
        if candidate.is_file():
            return candidate
    return fallback_font_path()


def check_font_offline(font="Arial.ttf", progress=False):
    """yolov5's ``check_font`` downloads Arial.ttf from the internet; use a local font instead."""
    return _local_font(font)


def check_pil_font_offline(font="Arial.ttf", size=10):
    try:
        return ImageFont.truetype(str(_local_font(font)), size)
    except OSError:
        return ImageFont.load_default()


def patch_fonts():
    import yolov5.utils.general as general
    import yolov5.utils.plots as plots

    general.check_font = check_font_offline
    plots.check_font = check_font_offline
    plots.check_pil_font = check_pil_font_offline


_YOLOV5_DIR = None


def _called_from_yolov5(depth=2):
    caller = sys._getframe(depth).f_globals.get("__file__") or ""
    return caller.startswith(_YOLOV5_DIR + os.sep)  # the package folder itself, not e.g. site-packages/yolov5_x


def patch_torch_load():
    """torch >= 2.6 loads with ``weights_only=True``, which cannot read yolov5 checkpoints (pickled modules).

    Only calls made from inside the yolov5 package that do not choose ``weights_only`` themselves get
    ``weights_only=False``; every other caller keeps torch's safe default. Checkpoints are pickles: load
    only files you trust (see README, "Checkpoints are pickles").
    """
    global _YOLOV5_DIR
    import yolov5

    if getattr(torch.load, "_yolo_attn_patched", False):
        return
    _YOLOV5_DIR = str(Path(yolov5.__file__).parent)
    original = torch.load

    @functools.wraps(original)
    def load(f, *args, **kwargs):
        if "weights_only" not in kwargs and len(args) < 3 and _called_from_yolov5():
            kwargs["weights_only"] = False
        return original(f, *args, **kwargs)

    load._yolo_attn_patched = True
    load._original = original
    torch.load = load


def silence_amp_deprecation():
    """yolov5 calls ``torch.cuda.amp.autocast(...)`` every batch; torch warns each time (the API still works)."""
    import warnings

    warnings.filterwarnings("ignore", message=r".*torch\.cuda\.amp\.(autocast|GradScaler).*deprecated")


def patch_pil_open():
    """yolov5 7.0.14 imports ultralytics (for ``check_requirements``), and recent ultralytics (8.4 here) replaces
    ``PIL.Image.open`` with a wrapper that, on the first file Pillow cannot identify, pip-installs pi-heif (offline it
    fails with "No module named 'pi_heif'" instead of Pillow's "cannot identify image file"). yolov5 reads no HEIF
    images: give ``Image.open`` back to Pillow, so a corrupt image is reported as such and nothing is installed."""
    from PIL import Image

    patches = sys.modules.get("ultralytics.utils.patches")
    if patches is not None and Image.open is getattr(patches, "image_open", None):
        Image.open = patches._image_open


def patch_yolov5():
    silence_amp_deprecation()
    patch_pillow_getsize()
    patch_torch_load()
    patch_numpy_trapz()
    patch_fonts()
    patch_pil_open()
