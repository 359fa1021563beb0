"""Small, additive patches that let yolov5==7.0.14 run on today's numpy, Pillow and torch, offline."""
import functools
import os
import pickle
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

    Calls made from inside the yolov5 package that do not choose ``weights_only`` themselves (attempt_load in
    detect/val/export, train's --weights/--resume, strip_optimizer, hub) go through
    ``yolo_attn.checkpoints.load_checkpoint``: it logs the file, allows only yolov5/yolo-attn/torch.nn model classes
    in the pickle (``YOLO_ATTN_TRUST_CHECKPOINTS=1`` lifts that for trusted files) and refuses non-checkpoints with
    a clear message. Every other caller keeps torch's safe default. Checkpoints are pickles: see README.
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
            if not args and set(kwargs) <= {"map_location"}:
                from yolo_attn.checkpoints import load_for_yolov5

                return load_for_yolov5(f, **kwargs)
            kwargs["weights_only"] = False
        try:
            return original(f, *args, **kwargs)
        except pickle.UnpicklingError as e:  # torch's safe default met a yolov5 checkpoint: say how to read it
            if "yolov5.models." not in str(e) and "yolo_attn." not in str(e):
                raise
            raise pickle.UnpicklingError(
                f"{e}\n\nyolo-attn: this is a yolov5/yolo-attn checkpoint. Load it with "
                f"yolo_attn.checkpoints.load_checkpoint(path), which allows its model classes and nothing else "
                f"(see README, 'Checkpoints are pickles').") from None

    load._yolo_attn_patched = True
    load._original = original
    torch.load = load


def patch_onnx_export():
    """torch >= 2.9 exports ONNX with the dynamo exporter by default. yolov5's export asks for opset 12 (``run``) or
    17 (its CLI); the dynamo exporter only implements opset >= 18, so it exports 18 instead, after printing a failed
    down-conversion traceback, and handles ``dynamic_axes`` differently. Calls made from inside the yolov5 package
    that do not choose ``dynamo`` get ``dynamo=False``: the TorchScript-based exporter yolov5 was written for, which
    honours the requested opset and dynamic axes. Every other caller keeps torch's default."""
    import torch.onnx

    if getattr(torch.onnx.export, "_yolo_attn_patched", False):
        return
    original = torch.onnx.export

    @functools.wraps(original)
    def export(*args, **kwargs):
        if "dynamo" not in kwargs and _called_from_yolov5():
            kwargs["dynamo"] = False
        return original(*args, **kwargs)

    export._yolo_attn_patched = True
    export._original = original
    torch.onnx.export = export


def patch_local_weights_offline():
    """yolov5 asks the Hugging Face Hub about every weights path before using it, even a local file
    (``attempt_download_from_hub('best.pt')`` queries huggingface.co; offline it crashes with a ConnectionError),
    and ``attempt_download`` may ask GitHub. A path that exists on disk is used as it is, with no network call;
    other names keep yolov5's behaviour (yolo-attn's commands refuse missing weights before that, see paths.py)."""
    import yolov5.utils.downloads as downloads

    if getattr(downloads.attempt_download_from_hub, "_yolo_attn_patched", False):
        return
    from_hub, download = downloads.attempt_download_from_hub, downloads.attempt_download

    def _local(name):
        try:
            return Path(str(name).strip()).exists()
        except (OSError, ValueError):
            return False

    @functools.wraps(from_hub)
    def attempt_download_from_hub(repo_id, *args, **kwargs):
        return None if _local(repo_id) else from_hub(repo_id, *args, **kwargs)

    @functools.wraps(download)
    def attempt_download(file, *args, **kwargs):
        return str(Path(str(file).strip())) if _local(file) else download(file, *args, **kwargs)

    attempt_download_from_hub._yolo_attn_patched = attempt_download._yolo_attn_patched = True
    replacements = {from_hub: attempt_download_from_hub, download: attempt_download}
    downloads.attempt_download_from_hub, downloads.attempt_download = attempt_download_from_hub, attempt_download
    for name, module in list(sys.modules.items()):  # modules that already imported the names (by value)
        if module is None or not (name == "yolov5" or name.startswith(("yolov5.", "models.", "utils."))):
            continue
        for attr in ("attempt_download_from_hub", "attempt_download"):
            if vars(module).get(attr) in replacements:
                setattr(module, attr, replacements[vars(module)[attr]])


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
    patch_onnx_export()
    patch_local_weights_offline()
    patch_numpy_trapz()
    patch_fonts()
    patch_pil_open()
