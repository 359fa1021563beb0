"""Every change yolo-attn makes to yolov5 (7.0.14) and to what it imports, listed in ``PATCHES``.

Each entry says what it fixes, which versions need it and which test reproduces the original failure. All of them
are scoped to yolov5's own modules (a module's ``torch`` or ``np`` is replaced by a view for that module only) or
undone exactly by ``yolo_attn.engines.yolov5.uninstall()``; none reads stack frames or changes ``torch``, numpy or
Pillow for other code.
"""
import ast
import functools
import importlib.util
import os
import sys
import types
import warnings
from pathlib import Path

import numpy as np

from yolo_attn.engines._patch import Patch, replace, view_of
from yolo_attn.engines.common import fallback_font_path
from yolo_attn.paths import save_atomically

YOLOV5 = "yolov5"
# yolov5 puts its own folder on sys.path, so old checkpoints (models.yolo.DetectionModel) load a second copy of
# its model modules under these names: they are patched like the package's own.
_ALSO_TOP_LEVEL = {"yolov5.models.yolo": "models.yolo", "yolov5.models.experimental": "models.experimental",
                   "yolov5.models.common": "models.common", "yolov5.utils.general": "utils.general"}


def _both(*names):
    return tuple(n for name in names for n in (name, _ALSO_TOP_LEVEL.get(name)) if n)


# --------------------------------------------------------------------------------------------------- setuptools
def _pkg_resources_shim(_module):
    if "pkg_resources" in sys.modules or importlib.util.find_spec("pkg_resources") is not None:
        return []
    from packaging.version import parse as parse_version

    shim = types.ModuleType("pkg_resources")
    shim.__doc__ = "yolo-attn shim: setuptools >= 81 has no pkg_resources; yolov5 needs parse_version only."
    shim.parse_version = parse_version
    sys.modules["pkg_resources"] = shim
    return [lambda: sys.modules.get("pkg_resources") is shim and sys.modules.pop("pkg_resources")]


# --------------------------------------------------------------------------------------------------------- numpy
def _numpy_trapz(metrics):
    if hasattr(np, "trapz"):
        return []
    view = view_of(metrics, "np")
    return [replace(view, "trapz", np.trapezoid), replace(metrics, "np", view)]


# -------------------------------------------------------------------------------------------------------- Pillow
def _getsize(self, text, *args, **kwargs):
    """Pillow < 10 ``getsize``: the text's width and height including its offset, from ``getbbox``."""
    _, _, right, bottom = self.getbbox(text, *args, **kwargs)
    return right, bottom


@functools.lru_cache(maxsize=None)
def _with_getsize_class(cls):
    return type(cls.__name__, (cls,), {"getsize": _getsize, "__module__": __name__})


def _font_with_getsize(font):
    if not hasattr(font, "getsize"):
        font.__class__ = _with_getsize_class(type(font))
    return font


def _pillow_getsize(plots):
    check_pil_font = plots.check_pil_font

    @functools.wraps(check_pil_font)
    def with_getsize(*args, **kwargs):
        return _font_with_getsize(check_pil_font(*args, **kwargs))

    return [replace(plots, "check_pil_font", with_getsize)]


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
    from PIL import ImageFont

    try:
        return ImageFont.truetype(str(_local_font(font)), size)
    except OSError:
        return ImageFont.load_default()


def _offline_fonts(module):
    undo = [replace(module, "check_font", check_font_offline)]
    if hasattr(module, "check_pil_font"):
        undo.append(replace(module, "check_pil_font", check_pil_font_offline))
    return undo


# --------------------------------------------------------------------------------------------------------- torch
def _load_checkpoint(f, map_location=None, **kwargs):
    """``torch.load`` as yolov5 calls it (attempt_load, train's --weights/--resume, strip_optimizer, hub)."""
    from yolo_attn.checkpoints import load_checkpoint

    if kwargs:
        raise TypeError(f"yolo-attn: unexpected torch.load arguments from yolov5: {sorted(kwargs)}")
    return load_checkpoint(f, map_location=map_location)


def _restricted_load(module):
    view = view_of(module, "torch")
    return [replace(view, "load", _load_checkpoint), replace(module, "torch", view)]


def _atomic_save(module):
    view = view_of(module, "torch")
    return [replace(view, "save", save_atomically), replace(module, "torch", view)]


def _onnx_exporter(export_module):
    import torch.onnx

    original = torch.onnx.export

    @functools.wraps(original)
    def export(*args, **kwargs):
        kwargs.setdefault("dynamo", False)
        return original(*args, **kwargs)

    onnx = view_of(export_module.torch, "onnx")
    torch_view = view_of(export_module, "torch")
    return [replace(onnx, "export", export), replace(torch_view, "onnx", onnx),
            replace(export_module, "torch", torch_view)]


# ------------------------------------------------------------------------------------------------- yolov5 itself
def _is_local(name):
    try:
        return Path(str(name).strip()).exists()
    except (OSError, ValueError):
        return False


@functools.lru_cache(maxsize=None)
def _offline_downloads():
    """(original -> replacement) for yolov5's two download helpers: a path on disk is used as it is."""
    import yolov5.utils.downloads as downloads

    from_hub, download = downloads.attempt_download_from_hub, downloads.attempt_download

    def offline_refusal(name):
        from yolo_attn.errors import UsageError
        from yolo_attn.paths import online

        if not online():  # yolov5 would ask Hugging Face, then GitHub, and end in a ConnectionError traceback
            raise UsageError(f"weights {str(name)!r}: no such file, and this machine is offline, so yolov5 cannot "
                             f"download it. Give the path of a checkpoint (.pt) on disk.")

    @functools.wraps(from_hub)
    def attempt_download_from_hub(repo_id, *args, **kwargs):
        if _is_local(repo_id):
            return None
        offline_refusal(repo_id)
        return from_hub(repo_id, *args, **kwargs)

    @functools.wraps(download)
    def attempt_download(file, *args, **kwargs):
        if _is_local(file):
            return str(Path(str(file).strip()))
        offline_refusal(file)
        return download(file, *args, **kwargs)

    return {from_hub: attempt_download_from_hub, download: attempt_download}


def _local_weights_offline(module):
    replacements = _offline_downloads()
    return [replace(module, attr, replacements[value]) for attr, value in list(vars(module).items())
            if attr in ("attempt_download", "attempt_download_from_hub") and value in replacements]


def _cuda_amp(module):
    """``torch.cuda.amp.autocast(enabled)`` / ``GradScaler(...)`` (deprecated, a warning per training batch) as the
    ``torch.amp`` calls they stand for."""
    import torch

    def autocast(enabled=True, dtype=torch.float16, cache_enabled=True):
        return torch.amp.autocast("cuda", dtype=dtype, enabled=enabled, cache_enabled=cache_enabled)

    def grad_scaler(*args, **kwargs):
        return torch.amp.GradScaler("cuda", *args, **kwargs)

    torch_view = view_of(module, "torch")
    cuda = view_of(torch_view, "cuda")
    amp = view_of(cuda, "amp")
    return [replace(amp, "autocast", autocast), replace(amp, "GradScaler", grad_scaler),
            replace(cuda, "amp", amp), replace(torch_view, "cuda", cuda), replace(module, "torch", torch_view)]


def _pil_open(_yolov5):
    from PIL import Image

    patches = sys.modules.get("ultralytics.utils.patches")
    if patches is None or Image.open is not getattr(patches, "image_open", None):
        return []
    return [replace(Image, "open", patches._image_open)]


def _literal_eval(text, *args):
    """``eval`` for metadata strings (e.g. an ONNX model's ``names``): literals only, nothing runs."""
    if args:
        raise ValueError("yolo-attn: yolov5 metadata is read as a literal, without globals")
    try:
        return ast.literal_eval(str(text))
    except (ValueError, SyntaxError) as e:
        raise ValueError(f"yolo-attn: refusing to evaluate model metadata {str(text)[:80]!r}: it is not a plain "
                         f"literal (a dict or list of names)") from e


def _no_metadata_eval(yolo):
    # applied once a yolo.py has run: it star-imports yolov5.models.common and would copy an `eval` set there
    if vars(yolo).get("eval") is _literal_eval:
        del yolo.eval  # copied by the star import of a second copy (models.yolo); not yolov5's own name
    common = sys.modules["yolov5.models.common"]
    return [] if vars(common).get("eval") is _literal_eval else [replace(common, "eval", _literal_eval)]


def _safe_parse_model(yolo):
    from yolo_attn.engines.yolov5.parser import parse_model

    return [replace(yolo, "parse_model", parse_model)]


def _strict_dataset_checks(dataloaders):
    from yolo_attn.engines.yolov5.data import strict_verify

    return [replace(dataloaders, "verify_image_label", strict_verify(dataloaders.verify_image_label))]


def _structural_transfer(train):
    from yolo_attn.engines.yolov5.transfer import intersect_dicts_by_structure

    return [replace(train, "intersect_dicts", intersect_dicts_by_structure)]


def _noval(train):
    from yolo_attn.engines.yolov5.noval import final_epoch_only

    return [replace(train, "train", final_epoch_only(train, train.train))]


# ---------------------------------------------------------------------------------------------- DDP (torchrun)
def _ddp_on_cpu(train):
    from yolo_attn.engines.yolov5 import ddp

    try:
        main, train_fn = ddp.recompiled(train.main, ddp.MAIN_EDITS), ddp.recompiled(train.train, ddp.TRAIN_EDITS)
    except (OSError, RuntimeError) as e:  # no source, or another yolov5: DDP stays CUDA-only, as yolov5 has it
        warnings.warn(f"yolo-attn: DDP training on CPU is unavailable: {e}")
        return []
    return [replace(train, "yolo_attn_ddp_device", ddp.ddp_device),
            replace(train, "smart_DDP", ddp.smart_ddp(train.smart_DDP)),
            replace(train, "main", main), replace(train, "train", train_fn)]


def _sync_pooled_bn(train):
    from yolo_attn.engines.yolov5 import ddp

    try:
        train_fn = ddp.recompiled(train.train, ddp.SYNC_BN_EDITS)
    except (OSError, RuntimeError) as e:
        warnings.warn(f"yolo-attn: --sync-bn keeps yolov5's own conversion: {e}")
        return []
    return [replace(train, "yolo_attn_convert_sync_batchnorm", ddp.convert_sync_batchnorm),
            replace(train, "train", train_fn)]


def _rank0_run_files(train):
    from yolo_attn.engines.yolov5.ddp import on_rank0

    return [replace(train, "yaml_save", on_rank0(train.yaml_save))]


def _atomic_disk_cache(dataloaders):
    from yolo_attn.engines.yolov5.ddp import cache_image_to_disk

    return [replace(dataloaders.LoadImagesAndLabels, "cache_images_to_disk", cache_image_to_disk)]


def _disk_full_message(module):
    from yolo_attn.engines.yolov5.disk_full import explain_disk_full

    view = view_of(module, "torch")
    return [replace(view, "save", explain_disk_full(view.save)), replace(module, "torch", view)]


def _safe_label_cache(dataloaders):
    from yolo_attn.engines.yolov5.label_cache import cache_labels, no_pickle_load

    view = view_of(dataloaders, "np")
    return [replace(view, "load", no_pickle_load(np.load)), replace(dataloaders, "np", view),
            replace(dataloaders.LoadImagesAndLabels, "cache_labels", cache_labels)]


def _no_symlink_loops(dataloaders):
    from yolo_attn.paths import walk_files

    view = view_of(dataloaders, "glob")
    real_glob = view.glob

    @functools.wraps(real_glob)
    def glob(pathname, *, recursive=False, **kwargs):
        root = str(pathname).split("**", 1)[0] or "."
        if recursive and "**" in str(pathname) and os.path.isdir(root):
            for _ in walk_files(root):  # refuses a link back into a folder that contains it
                pass
        return real_glob(pathname, recursive=recursive, **kwargs)

    return [replace(view, "glob", glob), replace(dataloaders, "glob", view)]


# ------------------------------------------------------------------------------------------------- data YAMLs
def _yolov5_data_yaml(data):
    """What check_dataset reads: a mapping, or a YAML path (a zip or anything else: unknown)."""
    if isinstance(data, dict):
        return data
    if isinstance(data, (str, Path)) and Path(data).suffix in (".yaml", ".yml") and Path(data).is_file():
        return Path(data)
    return None


def _yolov5_not_found(e):
    return "" if type(e) is Exception and "Dataset not found" in str(e) else None


def _no_download_code(module):
    from yolo_attn.datasets.checks import guarded_check
    from yolo_attn.paths import yolov5_root

    guarded = guarded_check(module.check_dataset, _yolov5_data_yaml, _yolov5_not_found, (yolov5_root() / "data",))
    return [replace(module, "check_dataset", guarded)]


PATCHES = (
    Patch("pkg_resources_shim", "`import pkg_resources` fails (setuptools >= 81), so yolov5 does not import",
          "setuptools >= 81", "tests/engines/yolov5/test_patches.py::test_pkg_resources", ("yolov5",),
          _pkg_resources_shim, before=True),
    Patch("numpy_trapz", "validation crashes: np.trapz is gone", "numpy >= 2.4",
          "tests/engines/yolov5/test_patches.py::test_numpy_trapz", ("yolov5.utils.metrics",), _numpy_trapz),
    Patch("no_download_code", "check_dataset runs a data YAML's download: (Python exec, a shell line) when its val "
          "split is missing, whichever route gave the YAML (--data, --resume's data.yaml, the API); it may now fetch "
          "a plain URL (or yolov5's own coco.yaml) on a networked machine only, else a DatasetError says why",
          "every version", "tests/datasets/test_download_guard.py",
          _both("yolov5.utils.general") + ("yolov5.train", "yolov5.val", "yolov5.segment.train", "yolov5.segment.val",
                                           "yolov5.export", "yolov5.utils.dataloaders",
                                           "yolov5.utils.loggers.comet"), _no_download_code),
    Patch("offline_fonts", "plots and check_dataset download Arial.ttf (offline: a crash)", "every version",
          "tests/engines/yolov5/test_patches.py::test_fonts_offline", ("yolov5.utils.general", "yolov5.utils.plots"),
          _offline_fonts),
    Patch("pillow_getsize", "plots crash: FreeTypeFont.getsize is gone (fonts from yolov5's check_pil_font get it "
          "back; Pillow's classes are untouched)", "Pillow >= 10",
          "tests/engines/yolov5/test_patches.py::test_pillow_getsize", ("yolov5.utils.plots",), _pillow_getsize),
    Patch("restricted_checkpoint_load", "checkpoints fail to load (weights_only=True); yolov5's loads go through "
          "yolo_attn.checkpoints (restricted to model classes, logged)", "torch >= 2.6",
          "tests/engines/yolov5/test_patches.py::test_restricted_checkpoint_load",
          _both("yolov5.models.experimental", "yolov5.utils.general") + ("yolov5.train", "yolov5.segment.train",
                                                                         "yolov5.hubconf"), _restricted_load),
    Patch("atomic_checkpoint_save", "a full disk or a kill truncates last.pt/best.pt in place", "every version",
          "tests/engines/yolov5/test_patches.py::test_atomic_checkpoint_save",
          _both("yolov5.utils.general") + ("yolov5.train", "yolov5.segment.train"), _atomic_save),
    Patch("onnx_exporter", "ONNX export: yolov5's opset 12/17 comes out as 18 after a traceback (dynamo exporter)",
          "torch >= 2.9", "tests/export/test_export.py", ("yolov5.export",), _onnx_exporter),
    Patch("local_weights_offline", "every weights path is first looked up on the Hugging Face Hub (offline: "
          "ConnectionError for a local best.pt)", "yolov5 7.0.x (pip)",
          "tests/engines/yolov5/test_patches.py::test_local_weights_offline",
          _both("yolov5.models.common", "yolov5.models.experimental") + (
              "yolov5.utils.downloads", "yolov5.train", "yolov5.segment.train", "yolov5.classify.train",
              "yolov5.hubconf"), _local_weights_offline),
    Patch("cuda_amp", "a torch.cuda.amp deprecation warning on every training batch", "torch >= 2.4",
          "tests/engines/yolov5/test_patches.py::test_cuda_amp",
          ("yolov5.train", "yolov5.segment.train", "yolov5.utils.autobatch"), _cuda_amp),
    Patch("pil_open", "ultralytics (imported by yolov5) replaces PIL.Image.open with a wrapper that pip-installs "
          "pi-heif on the first unreadable image", "ultralytics >= 8.3",
          "tests/engines/yolov5/test_patches.py::test_pil_open", ("yolov5",), _pil_open),
    Patch("no_metadata_eval", "an ONNX model's metadata 'names' is eval'd by DetectMultiBackend (code execution "
          "from a downloaded model)", "yolov5 7.0.x", "tests/engines/yolov5/test_patches.py::test_no_metadata_eval",
          _both("yolov5.models.yolo"), _no_metadata_eval),
    Patch("safe_parse_model", "model YAMLs are eval'd; registered attention layers are unknown to yolov5",
          "every version", "tests/engines/yolov5/test_parser.py", _both("yolov5.models.yolo"), _safe_parse_model),
    Patch("strict_dataset_checks", "a truncated JPEG is re-saved over the user's file; unreadable images and labels "
          "are skipped with a warning", "every version", "tests/engines/yolov5/test_data.py",
          ("yolov5.utils.dataloaders",), _strict_dataset_checks),
    Patch("structural_transfer", "--weights into a model with inserted rows: every later layer starts from "
          "scratch (matched by name)", "every version", "tests/transfer/test_structural.py",
          ("yolov5.train",), _structural_transfer),
    # DDP patches come before noval, which wraps the train() they recompile
    Patch("ddp_on_cpu", "DDP under torchrun needs CUDA: main asserts CUDA devices and picks NCCL whenever torch has "
          "it, and train wraps the model in DDP (and converts BNs for --sync-bn) only on CUDA, so CPU ranks trained "
          "unsynchronised copies. main and train are recompiled from yolov5's source with those lines opened to CPU "
          "(gloo, DDP without device ids); on CUDA they do what yolov5's do (engines/yolov5/ddp.py)", "yolov5 7.0.x",
          "tests/engines/yolov5/test_ddp_patches.py", ("yolov5.train",), _ddp_on_cpu),
    Patch("sync_pooled_bn", "--sync-bn turns the BN after global pooling (PooledBatchNorm2d) into a plain "
          "SyncBatchNorm: one image per process raises 'Expected more than 1 value per channel'; it becomes a "
          "SyncPooledBatchNorm2d (the others torch's SyncBatchNorm on GPU, modules.sync_bn's on CPU)", "every version",
          "tests/modules/test_sync_bn.py", ("yolov5.train",), _sync_pooled_bn),
    Patch("rank0_run_files", "every DDP rank writes the run's opt.yaml and hyp.yaml (on several nodes, each its own "
          "paths), concurrently", "yolov5 7.0.x", "tests/engines/yolov5/test_ddp_patches.py::test_rank0_run_files",
          ("yolov5.train",), _rank0_run_files),
    Patch("atomic_disk_cache", "--cache disk writes each image's .npy in place: a killed run, or a rank on another "
          "node reading it meanwhile, leaves or reads a truncated file (np.load fails in every later run)",
          "every version", "tests/engines/yolov5/test_ddp_patches.py::test_atomic_disk_cache",
          ("yolov5.utils.dataloaders",), _atomic_disk_cache),
    Patch("noval", "--noval crashes after the first epoch (map50s unbound), also through yolov5.train.run",
          "yolov5 7.0.x", "tests/engines/yolov5/test_patches.py::test_noval", ("yolov5.train",), _noval),
    Patch("disk_full_message", "a full disk stops training with a torch traceback (inline_container.cc: unexpected "
          "pos) instead of saying which file and how much space", "every version",
          "tests/engines/yolov5/test_disk_full.py",
          _both("yolov5.utils.general") + ("yolov5.train", "yolov5.segment.train"), _disk_full_message),
    Patch("safe_label_cache", "labels/*.cache is unpickled from the dataset folder (a downloaded dataset runs code) and "
          "written there on every run", "every version", "tests/engines/yolov5/test_label_cache.py",
          ("yolov5.utils.dataloaders",), _safe_label_cache),
    Patch("no_symlink_loops", "a symbolic link to a parent folder among the images: the recursive glob runs for hours "
          "(2^40 paths with two such links)", "every version", "tests/engines/yolov5/test_symlink_loops.py",
          ("yolov5.utils.dataloaders",), _no_symlink_loops),
)
