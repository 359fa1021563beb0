"""The yolov5 engine as an ``Engine``: what the applications ask of yolov5 7.0.14, answered here and in the
modules beside this one (imported when a method needs them, so that ``import yolo_attn`` imports no yolov5)."""
from __future__ import annotations

import argparse
import contextlib
from pathlib import Path
from typing import Any, Iterator, Optional

import torch
from torch import nn

from yolo_attn.engines.base import Engine
from yolo_attn.engines.heatmap_head import HeatmapHead
from yolo_attn.errors import UsageError

# where yolov5's classes live in a checkpoint's pickle (its pip package, or a clone's top-level copies)
_MODULE_PREFIXES = ("yolov5.", "models.")


def _is_yolov5_class(module: str) -> bool:
    return module.startswith(_MODULE_PREFIXES)


SUPPORTED = "7.0.14"  # the yolov5 release every fix in this folder is written against (pyproject.toml pins it)


def require_supported_version():
    """Refuse (UsageError, exit 2) an installed yolov5 other than SUPPORTED, before a command runs on it."""
    from importlib import metadata

    try:
        installed = metadata.version("yolov5")
    except metadata.PackageNotFoundError:
        installed = None
    if installed != SUPPORTED:
        raise UsageError(f"yolov5 {installed or 'is not installed'}"
                         f"{' installed' if installed else ''}: yolo-attn's yolov5 engine supports yolov5=={SUPPORTED} "
                         f"only. Install it: pip install 'yolov5=={SUPPORTED}'.")


class Yolov5Engine(Engine):
    """yolov5 7.0.14: anchor-based model YAMLs (an ``anchors:`` key), its own train/val/detect/export."""

    name = "yolov5"
    # One embedded-dataset run of yolov5s-cbam (among the slowest of the six) measured 30 s + 19.8 s per epoch (train
    # and val subprocesses): 6 epochs -> ~149 s per run, 18 runs ~45 min.
    sweep_epochs = 6

    def install(self) -> None:
        from yolo_attn.checkpoints.saved import register_builder
        from yolo_attn.engines import yolov5
        from yolo_attn.engines.yolov5.model import Yolov5Builder

        yolov5.install()
        register_builder(Yolov5Builder())

    # --- recognising ------------------------------------------------------------------------------------------
    def owns_yaml(self, d: dict) -> bool:
        return "anchors" in d

    def owns_checkpoint(self, path: Path, class_names: set[str]) -> bool:
        return any(n.startswith(("yolov5.models.", "models.yolo.")) for n in class_names)

    def owns_onnx(self, metadata: dict[str, str]) -> bool:
        return "stride" in metadata and "task" not in metadata  # ultralytics writes its settings ('task', 'args')

    def owns_model(self, model: nn.Module) -> bool:
        rows = getattr(model, "model", None)
        last = rows[-1] if isinstance(rows, nn.Sequential) and len(rows) else model
        return _is_yolov5_class(type(model).__module__) or _is_yolov5_class(type(last).__module__)

    # --- model YAMLs ------------------------------------------------------------------------------------------
    def shipped_yamls(self) -> Optional[Path]:
        from yolo_attn import paths

        return paths.MODEL_YAMLS

    def stock_yaml(self, name: str) -> Path:
        from yolo_attn import paths

        return paths.yolov5_root() / "models" / name

    def find_cfg(self, name: str) -> Optional[Path]:
        return self._cfg(name, quietly=True)

    def resolve_cfg(self, name: str) -> Path:
        return self._cfg(name, quietly=False)

    @staticmethod
    def _cfg(name: str, quietly: bool) -> Optional[Path]:
        from yolo_attn import paths

        try:
            return paths.resolve_cfg(name)
        except UsageError:
            if quietly:
                return None
            raise

    # --- building, loading, saving ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def quiet(self) -> Iterator[None]:
        from yolo_attn.engines.yolov5.model import quiet

        with quiet():
            yield

    def build_model(self, cfg: Any, nc: Optional[int] = None, ch: int = 3) -> nn.Module:
        from yolo_attn.engines.yolov5.model import build_model

        return build_model(cfg, nc=nc, ch=ch)

    def load_model(self, weights: Any, device: str = "cpu") -> tuple[nn.Module, dict]:
        from yolo_attn.engines.yolov5.model import load_trained

        return load_trained(weights, device=device)

    def save_checkpoint(self, model: nn.Module, path: Any, train_settings: Optional[dict] = None,
                        **extra: Any) -> Path:
        from yolo_attn.engines.yolov5.model import save_checkpoint

        return save_checkpoint(model, path, train_settings, **extra)

    def identity_rows(self, source_state_dict: dict, cfg: Any) -> list[int]:
        from yolo_attn.engines.yolov5.model import identity_rows

        return identity_rows(source_state_dict, cfg)

    # --- the sweep, the cost bench, the match records ---------------------------------------------------------
    def training_settings(self, train_args: list[str], parser: argparse.ArgumentParser) -> dict:
        from yolo_attn.engines.yolov5.sweep import training_settings

        return training_settings(train_args, parser)

    @property
    def options_file(self) -> str:
        from yolo_attn.engines.yolov5.sweep import OPTIONS_FILE

        return OPTIONS_FILE

    @property
    def compared_options(self) -> tuple[str, ...]:
        from yolo_attn.engines.yolov5.sweep import COMPARED_OPTIONS

        return COMPARED_OPTIONS

    def validation_args(self, train_args: list[str]) -> list[str]:
        from yolo_attn.engines.yolov5.sweep import validation_args

        return validation_args(train_args)

    def match_collector(self) -> Any:
        """A yolov5 callback: ``.register(callbacks)`` before ``val.run(..., callbacks=callbacks)``."""
        from yolo_attn.engines.yolov5.matches import ValMatchCollector

        return ValMatchCollector()

    bench_baseline = "yolov5s.yaml"
    bench_extras = frozenset({"gpu", "thop_gflops", "channels_last", "fold_attn_bn"})

    def bench_cfgs(self, cfgs: list[str], baseline: str) -> list[Path]:
        """No --cfgs: every YAML yolo-attn ships for yolov5 (model_yamls/)."""
        found = [self.resolve_cfg(c) for c in cfgs] if cfgs else sorted(self.shipped_yamls().glob("*.yaml"))
        out = [self.resolve_cfg(baseline)]
        for p in found:
            if Path(p).resolve() not in [q.resolve() for q in out]:
                out.append(Path(p))
        return out

    def fuse(self, model: nn.Module) -> nn.Module:
        with self.quiet():
            model.fuse()
        return model

    def val_maps(self, weights: Any, data: Any, imgsz: int) -> tuple[float, float]:
        from yolo_attn.engines.yolov5.bench import val_maps

        return val_maps(weights, data, imgsz)

    def loss_fn(self, model: nn.Module) -> Any:
        from yolo_attn.engines.yolov5.bench import loss_fn

        return loss_fn(model)

    # --- heatmaps ---------------------------------------------------------------------------------------------
    def heatmap_head(self, model: nn.Module, source: str = "the model") -> HeatmapHead:
        from yolo_attn.engines.yolov5.heatmap import heatmap_head

        return heatmap_head(model, source)

    def select_device(self, device: str = "") -> torch.device:
        """yolov5's own ``select_device``: its banner, CUDA_VISIBLE_DEVICES, its refusal of a GPU that is not there."""
        from yolov5.utils.torch_utils import select_device

        return select_device(device)

    # --- the commands -----------------------------------------------------------------------------------------
    def add_options(self, command: str, parser: argparse.ArgumentParser) -> None:
        from yolo_attn.engines.yolov5 import commands

        commands.add_options(command, parser)

    def add_help(self, command: str, parser: argparse.ArgumentParser) -> None:
        from yolo_attn.engines.yolov5 import commands

        commands.add_help(command, parser)

    def run(self, command: str, opt: argparse.Namespace, rest: list[str], argv: list[str]) -> Optional[int]:
        from yolo_attn.engines.yolov5 import commands

        require_supported_version()
        return commands.run(command, opt, rest, argv)

    def run_tool(self, tool: str, argv: list[str]) -> Any:
        from yolo_attn.engines.yolov5.commands.tools import run_tool

        return run_tool(tool, argv)

    def model_dict(self, cfg: Any) -> dict:
        import yaml

        return yaml.safe_load(Path(cfg).read_text(encoding="utf-8"))
