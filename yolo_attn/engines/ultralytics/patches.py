"""Every change yolo-attn makes to ultralytics (8.4.190), listed in ``PATCHES``.

Each entry says what it fixes, which versions need it and which test reproduces the original behaviour. Every one
replaces a name in an ultralytics module (or adds one callback to its default list) and is undone exactly by
``yolo_attn.engines.ultralytics.uninstall()``. None touches torch, numpy or anything yolov5 uses: yolov5 imports
``ultralytics.utils.checks`` (for check_requirements), which is left as it is.
"""
import functools
from pathlib import Path

from yolo_attn.engines._patch import Patch, replace
from yolo_attn.engines.common import fallback_font_path
from yolo_attn.engines.ultralytics.stock import _STOCK, original  # noqa: F401  (original: API)

TASKS = "ultralytics.nn.tasks"


# ------------------------------------------------------------------------------------------------- model building
def _safe_parse_model(module):
    from yolo_attn.engines.ultralytics.parser import parse_model

    return [replace(module, "parse_model", parse_model)]


def _yaml_scale(module):
    from yolo_attn.engines.ultralytics.yamls import yaml_model_load

    return [replace(module, "yaml_model_load", yaml_model_load)]


def _structural_transfer(tasks):
    from yolo_attn.engines.ultralytics.transfer import intersect_dicts_by_structure

    return [replace(tasks, "intersect_dicts", intersect_dicts_by_structure)]


# ---------------------------------------------------------------------------------------------------- checkpoints
def _restricted_load(module):
    from yolo_attn.engines.ultralytics.checkpoint import torch_load

    return [replace(module, "torch_load", torch_load)]


def _restricted_label_cache(module):
    from yolo_attn.engines.ultralytics.checkpoint import load_dataset_cache_file

    return [replace(module, "load_dataset_cache_file", load_dataset_cache_file)]


# ------------------------------------------------------------------------------------------------- data YAMLs
def _ultralytics_data_yaml(dataset):
    """The YAML check_det_dataset will read (a path, a bare name such as coco8, a dataset folder); None if unknown
    (a URL: its download is then refused)."""
    from ultralytics.data.utils import find_dataset_yaml
    from ultralytics.utils.checks import check_file

    s = str(dataset)
    if "://" in s:
        return None
    try:
        if Path(s).is_dir():
            return Path(find_dataset_yaml(Path(s)))
        for name in (s,) if Path(s).suffix in (".yaml", ".yml") else (s, f"{s}.yaml", f"{s}.yml"):
            found = check_file(name, hard=False)
            if found and Path(found).is_file():
                return Path(found)
    except Exception:  # noqa: BLE001  (whatever ultralytics raises for a bad name: unknown, so refused)
        return None
    return None


def _ultralytics_not_found(e):
    return str(e).split("\n")[0] if isinstance(e, FileNotFoundError) and "missing path" in str(e) else None


def _cls_offline(check):
    """check_cls_dataset fetches ultralytics' archive of a dataset named but not on disk (or a URL): offline, say so
    instead of a network traceback."""
    from yolo_attn.errors import DatasetError
    from yolo_attn.paths import online

    if getattr(check, "__yolo_attn_guarded__", False):
        return check

    @functools.wraps(check)
    def guarded(dataset, *args, **kwargs):
        from ultralytics.utils import DATASETS_DIR

        s = str(dataset)
        local = Path(s).is_dir() or (DATASETS_DIR / s).is_dir() or (Path(s).is_file() and "://" not in s)
        if not local and not online():
            raise DatasetError(f"{s}: this classification dataset is not on disk and this machine is offline, so "
                               f"ultralytics cannot download it: copy it to a folder and give that folder.")
        return check(dataset, *args, **kwargs)

    guarded.__yolo_attn_guarded__ = True
    return guarded


def _no_download_code(module):
    from ultralytics.utils import ROOT

    from yolo_attn.datasets.checks import guarded_check

    undo = []
    if hasattr(module, "check_det_dataset"):
        undo.append(replace(module, "check_det_dataset", guarded_check(
            module.check_det_dataset, _ultralytics_data_yaml, _ultralytics_not_found, (ROOT / "cfg" / "datasets",))))
    if hasattr(module, "check_cls_dataset"):
        undo.append(replace(module, "check_cls_dataset", _cls_offline(module.check_cls_dataset)))
    return undo


# --------------------------------------------------------------------------------------------------------- offline
@functools.lru_cache(maxsize=None)
def check_font_offline(font="Arial.ttf"):
    """ultralytics' ``check_font`` downloads Arial.ttf into its config folder; use a local font instead: the one
    asked for if it is in that folder, else matplotlib's DejaVuSans."""
    from ultralytics.utils import USER_CONFIG_DIR

    for candidate in (Path(font), USER_CONFIG_DIR / Path(font).name):
        if candidate.is_file():
            return candidate
    return fallback_font_path()


def _offline_fonts(module):
    return [replace(module, "check_font", check_font_offline)]


def check_amp_offline(model):
    """ultralytics' AMP check on a CUDA device loads (and first downloads) yolo26n.pt. Without that file on disk the
    check is skipped and AMP stays on, as ultralytics itself does offline, with no download attempt."""
    from ultralytics.utils import LOGGER, WEIGHTS_DIR

    stock = _STOCK[check_amp_offline]
    device = next(model.parameters()).device
    if device.type != "cuda" or (WEIGHTS_DIR / "yolo26n.pt").is_file():
        return stock(model)
    LOGGER.warning(f"AMP: checks skipped: {WEIGHTS_DIR / 'yolo26n.pt'} is not on disk and yolo-attn does not download "
                   f"it. AMP stays on; if you see NaN losses or zero mAP, train with amp=False.")
    return True


def _offline_amp_check(trainer):
    return [replace(trainer, "check_amp", check_amp_offline)]


# ------------------------------------------------------------------------------------------------------------- DDP
def _ddp_callback(base):
    """ultralytics' DDP workers re-import only ultralytics and rebuild the model from the YAML; a yolo-attn callback
    in every trainer's callbacks is pickled by reference, so each worker imports (and installs) yolo-attn first."""
    from yolo_attn.engines.ultralytics.callbacks import ensure_installed

    hooks = base.default_callbacks["on_pretrain_routine_start"]
    if ensure_installed not in hooks:
        hooks.append(ensure_installed)

    def undo():
        if ensure_installed in hooks:
            hooks.remove(ensure_installed)

    return [undo]


PATCHES = (
    Patch("safe_parse_model", "model YAMLs' activation: is eval'd; registered attention layers are unknown names "
          "(bare KeyError); a failed build leaves Conv.default_act changed", "ultralytics 8.x",
          "tests/engines/ultralytics/test_ul_parser.py", (TASKS, "ultralytics.nn"), _safe_parse_model),
    Patch("yaml_scale", "a custom YAML's scale comes from its file name only; without a letter it is silently 'n' "
          "(a 'scale:' key is overwritten); a yolov5 YAML fails deep inside the build", "ultralytics 8.x",
          "tests/engines/ultralytics/test_ul_yamls.py", (TASKS, "ultralytics.engine.model"), _yaml_scale),
    Patch("structural_transfer", "pretrained weights into a model with inserted rows: every later layer, Detect "
          "included, starts from scratch (matched by name)", "every version",
          "tests/engines/ultralytics/test_ul_transfer.py", (TASKS,), _structural_transfer),
    Patch("restricted_checkpoint_load", "checkpoints are loaded as full pickles (code execution from a .pt file); "
          "loads go through yolo_attn.checkpoints (restricted to model classes, logged)", "ultralytics 8.x",
          "tests/engines/ultralytics/test_ul_checkpoints.py", (TASKS, "ultralytics.utils.torch_utils"),
          _restricted_load),
    Patch("restricted_label_cache", "a dataset's labels/*.cache file is unpickled with np.load(allow_pickle=True)",
          "ultralytics 8.x", "tests/engines/ultralytics/test_ul_checkpoints.py::test_label_cache",
          ("ultralytics.data.dataset",), _restricted_label_cache),
    Patch("no_download_code", "check_det_dataset runs a data YAML's download: (Python exec, a shell line) when its "
          "val split is missing, whichever route gave the YAML (data= settings, --resume's train_args.data, the API); "
          "it may now fetch a plain URL (or ultralytics' own dataset YAMLs) on a networked machine only, else a "
          "DatasetError says why; check_cls_dataset says when it would download offline", "ultralytics 8.x",
          "tests/datasets/test_download_guard.py",
          ("ultralytics.data.utils", "ultralytics.engine.trainer", "ultralytics.engine.validator",
           "ultralytics.engine.exporter", "ultralytics.utils.benchmarks", "ultralytics.models.yolo.world.train_world",
           "ultralytics.models.yolo.world.val", "ultralytics.models.yolo.yoloe.val"), _no_download_code),
    Patch("offline_fonts", "every dataset check and plot looks up (and downloads) Arial.ttf; not covered by "
          "YOLO_OFFLINE", "ultralytics 8.x", "tests/engines/ultralytics/test_ul_patches.py::test_fonts_offline",
          ("ultralytics.utils.checks", "ultralytics.data.utils", "ultralytics.utils.plotting"), _offline_fonts),
    Patch("offline_amp_check", "training on a GPU downloads and unpickles yolo26n.pt for the AMP check",
          "ultralytics 8.4", "tests/engines/ultralytics/test_ul_patches.py::test_amp_check_offline",
          ("ultralytics.engine.trainer",), _offline_amp_check),
    Patch("ddp_callback", "multi-GPU (DDP) workers import only ultralytics: attention YAMLs fail there",
          "ultralytics 8.x", "tests/engines/ultralytics/test_ul_patches.py::test_ddp_state_names_yolo_attn",
          ("ultralytics.utils.callbacks.base",), _ddp_callback),
)
