"""The ultralytics engine as an ``Engine``: what the applications ask of ultralytics 8.4.190, answered here and in
the modules beside this one (imported when a method needs them, so that ``import yolo_attn`` imports no
ultralytics)."""
from __future__ import annotations

import argparse
import contextlib
from pathlib import Path
from typing import Any, Iterator, Optional

from torch import nn

from yolo_attn.engines.base import Engine
from yolo_attn.engines.heatmap_head import HeatmapHead
from yolo_attn.errors import UsageError


class UltralyticsEngine(Engine):
    """ultralytics 8.4.190: anchor-free model YAMLs (YOLOv5u, YOLOv8, YOLO11, ...), driven through ``YOLO()``."""

    name = "ultralytics"
    # One embedded-dataset run of yolo11n-cbam at train.sh's defaults (160 px, batch 16, no per-epoch validation)
    # measured about 11 s per epoch on one thread: 10 epochs -> about 2 min per run with validation.
    sweep_epochs = 10

    def install(self) -> None:
        from yolo_attn.checkpoints.saved import register_builder
        from yolo_attn.engines import ultralytics
        from yolo_attn.engines.ultralytics.checkpoint import UltralyticsBuilder

        ultralytics.install()
        register_builder(UltralyticsBuilder())

    # --- recognising ------------------------------------------------------------------------------------------
    def owns_yaml(self, d: dict) -> bool:
        return "anchors" not in d  # anchor-free heads

    def owns_checkpoint(self, path: Path, class_names: set[str]) -> bool:
        return any(n.startswith("ultralytics.nn.tasks.") for n in class_names)

    def owns_onnx(self, metadata: dict[str, str]) -> bool:
        return "task" in metadata

    def owns_model(self, model: nn.Module) -> bool:
        rows = getattr(model, "model", None)
        last = rows[-1] if isinstance(rows, nn.Sequential) and len(rows) else model
        return any(type(m).__module__.startswith("ultralytics.") for m in (model, last))

    # --- model YAMLs ------------------------------------------------------------------------------------------
    def shipped_yamls(self) -> Optional[Path]:
        from yolo_attn.engines.ultralytics.yamls import ULTRALYTICS_YAMLS

        return ULTRALYTICS_YAMLS

    def stock_yaml(self, name: str) -> Path:
        from yolo_attn.engines.ultralytics.yamls import ultralytics_root

        return ultralytics_root() / "cfg" / "models" / name

    def find_cfg(self, name: str) -> Optional[Path | str]:
        """A path, a name in model_yamls/ultralytics/ (then model_yamls/), or a stock ultralytics name (returned as
        it is: ultralytics resolves it, and its scale, itself)."""
        from yolo_attn.engines.ultralytics.options import offline_environment
        from yolo_attn.engines.ultralytics.yamls import resolve_cfg

        offline_environment()  # before ultralytics is imported to search its package
        try:
            found = resolve_cfg(name)
        except UsageError:
            return None
        return Path(found) if Path(found).is_file() else found

    def resolve_cfg(self, name: str) -> str:
        from yolo_attn.engines.ultralytics.yamls import resolve_cfg

        return resolve_cfg(name)

    # --- building, loading, saving ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def quiet(self) -> Iterator[None]:
        from yolo_attn.engines.ultralytics.model import quiet

        with quiet():
            yield

    def build_model(self, cfg: Any, nc: Optional[int] = None, ch: int = 3) -> nn.Module:
        from yolo_attn.engines.ultralytics.model import build_model

        return build_model(cfg, nc=nc, ch=ch)

    def load_model(self, weights: Any, device: str = "cpu") -> tuple[nn.Module, dict]:
        from yolo_attn.engines.ultralytics.model import load_trained

        return load_trained(weights, device=device)

    def save_checkpoint(self, model: nn.Module, path: Any, train_settings: Optional[dict] = None,
                        **extra: Any) -> Path:
        from yolo_attn.engines.ultralytics.model import save_checkpoint

        return save_checkpoint(model, path, train_settings, **extra)

    def identity_rows(self, source_state_dict: dict, cfg: Any) -> list[int]:
        from yolo_attn.engines.ultralytics.model import identity_rows

        return identity_rows(source_state_dict, cfg)

    # --- the sweep, the cost bench, the match records ---------------------------------------------------------
    def training_settings(self, train_args: list[str], parser: argparse.ArgumentParser) -> dict:
        from yolo_attn.engines.ultralytics.sweep import training_settings

        return training_settings(train_args, parser)

    @property
    def options_file(self) -> str:
        from yolo_attn.engines.ultralytics.sweep import OPTIONS_FILE

        return OPTIONS_FILE

    @property
    def compared_options(self) -> tuple[str, ...]:
        from yolo_attn.engines.ultralytics.sweep import COMPARED_OPTIONS

        return COMPARED_OPTIONS

    def validation_args(self, train_args: list[str]) -> list[str]:
        from yolo_attn.engines.ultralytics.sweep import validation_args

        return validation_args(train_args)

    def match_collector(self) -> Any:
        """Give its ``.validator()`` to ``model.val(validator=...)``."""
        from yolo_attn.engines.ultralytics.matches import MatchCollector

        return MatchCollector()

    bench_baseline = "yolo11n.yaml"

    def bench_cfgs(self, cfgs: list[str], baseline: str) -> list[Path | str]:
        """Only the --cfgs given (and the baseline); a stock name stays a name."""
        from yolo_attn.engines.ultralytics.options import offline_environment

        offline_environment()  # before ultralytics is imported
        return list(dict.fromkeys([self.resolve_cfg(baseline)] + [self.resolve_cfg(c) for c in cfgs]))

    def fuse(self, model: nn.Module) -> nn.Module:
        with self.quiet():
            model.fuse(verbose=False)
        return model

    @contextlib.contextmanager
    def usage_errors(self) -> Iterator[None]:
        from yolo_attn.engines.ultralytics.commands.common import usage_errors

        with usage_errors():
            yield

    # --- heatmaps ---------------------------------------------------------------------------------------------
    def heatmap_head(self, model: nn.Module, source: str = "the model") -> HeatmapHead:
        from yolo_attn.engines.ultralytics.heatmap import heatmap_head

        return heatmap_head(model, source)

    # select_device: the base's plain choice; ultralytics' own also sets torch's thread count on the CPU, which
    # would change how fast (and in the last bits, what) a heatmap computes

    # --- the commands -----------------------------------------------------------------------------------------
    def add_options(self, command: str, parser: argparse.ArgumentParser) -> None:
        from yolo_attn.engines.ultralytics import commands

        commands.add_options(command, parser)

    def add_help(self, command: str, parser: argparse.ArgumentParser) -> None:
        from yolo_attn.engines.ultralytics import commands

        commands.add_help(command, parser)

    def run(self, command: str, opt: argparse.Namespace, rest: list[str], argv: list[str]) -> Optional[int]:
        from yolo_attn.engines.ultralytics import commands, version

        version.require()
        return commands.run(command, opt, rest, argv)

    def run_tool(self, tool: str, argv: list[str]) -> Any:
        from yolo_attn.engines.ultralytics.commands.tool import run_tool

        return run_tool(tool, argv)

    def model_dict(self, cfg: Any) -> dict:
        """ultralytics' model dict (a stock name's scale chosen), without the ``yaml_file`` it adds."""
        from yolo_attn.engines.ultralytics.model import model_dict

        return {k: v for k, v in model_dict(cfg).items() if k != "yaml_file"}
