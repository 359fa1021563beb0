"""The ``Engine`` contract: everything that differs between YOLO engines, asked of one object.

Applications (``cli``, ``heatmaps``, ``ablation``, ``benchmarks``) never import yolov5 or ultralytics and never
compare an engine's name: they get an ``Engine`` from ``yolo_attn.engines.of(file_or_model)`` (or ``get(name)``)
and call the methods below. Each engine folder (``engines/yolov5``, ``engines/ultralytics``) holds one subclass;
a third engine is one more folder whose subclass is passed to ``engines.register`` (``engines/README.md``).

A method that an engine cannot do raises ``UsageError`` naming what it lacks (the base class does this), so an
application needs no capability checks of its own.
"""
from __future__ import annotations

import argparse
import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Optional

import torch
from torch import nn

from yolo_attn.engines.heatmap_head import HeatmapHead
from yolo_attn.errors import UsageError

if TYPE_CHECKING:
    from yolo_attn.matches import MatchCollector


class Engine:
    """One YOLO engine, as the applications see it. Subclasses set ``name`` and override what they support."""

    name: str = "?"
    #: epochs per run of a sweep on the embedded dataset when the user gives no --data (measured per engine)
    sweep_epochs: int = 6

    def _lacks(self, what: str) -> UsageError:
        return UsageError(f"the {self.name} engine does not support {what}")

    def install(self) -> None:
        """Install the adapter: patch the engine's modules when they are imported (idempotent)."""

    # --- recognising files and models (one rule per engine, used everywhere) ---------------------------------
    def owns_yaml(self, d: dict) -> bool:
        """Is this model-YAML dict written for this engine?"""
        return False

    def owns_checkpoint(self, path: Path, class_names: set[str]) -> bool:
        """Is the checkpoint at ``path``, whose pickle names these classes (``module.Class``; scanned, never
        unpickled), for this engine?"""
        return False

    def owns_onnx(self, metadata: dict[str, str]) -> bool:
        """Is an ONNX model with these metadata properties for this engine?"""
        return False

    def owns_model(self, model: nn.Module) -> bool:
        """Is this built model (a detection model, or a row of one) this engine's?"""
        return False

    # --- model YAMLs ------------------------------------------------------------------------------------------
    def shipped_yamls(self) -> Optional[Path]:
        """The folder of the model YAMLs yolo-attn ships for this engine (None: none)."""
        return None

    def stock_yaml(self, name: str) -> Path:
        """A model YAML of the engine's own package, by its path inside the engine's models folder
        (``yolov5s.yaml``; ``11/yolo11.yaml``): what the shipped variants are generated from."""
        raise self._lacks("stock model YAMLs")

    def find_cfg(self, name: str) -> Optional[Path | str]:
        """The model YAML file a --cfg name means for this engine (a path, a shipped name, the engine's own
        models); a name (str) the engine resolves itself without a file of ours (a stock name); None when this
        engine knows no such model."""
        return None

    def resolve_cfg(self, name: str) -> Any:
        """What to give this engine's builder for a --cfg name (a path; a stock name the engine resolves itself):
        like ``find_cfg``, but a UsageError listing what exists when nothing is found."""
        found = self.find_cfg(name)
        if found is None:
            raise UsageError(f"model cfg {name!r} not found for the {self.name} engine")
        return found

    # --- building, loading, saving ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def quiet(self) -> Iterator[None]:
        """The engine's logging at warnings only inside the block (no per-layer printout)."""
        yield

    def build_model(self, cfg: Any, nc: Optional[int] = None, ch: int = 3) -> nn.Module:
        """A detection model from a YAML path or dict, without the per-layer printout."""
        raise self._lacks("building models")

    def load_model(self, weights: Any, device: str = "cpu") -> tuple[nn.Module, dict]:
        """(model, training settings) of a checkpoint, loaded restricted (``yolo_attn.checkpoints``): the EMA
        weights when saved, float32, eval mode, not fused. The settings dict holds at least ``imgsz`` when the
        checkpoint records it."""
        raise self._lacks("loading checkpoints")

    def save_checkpoint(self, model: nn.Module, path: Any, train_settings: Optional[dict] = None,
                        **extra: Any) -> Path:
        """Write ``model`` as this engine's training leaves its final weights, atomically; returns the path."""
        raise self._lacks("saving checkpoints")

    def identity_rows(self, source_state_dict: dict, cfg: Any) -> list[int]:
        """Rows of ``cfg`` whose one-input, channel-keeping attention (a row, or inside a block) the checkpoint has
        no weights for and that do not already start as the identity: the rows to start as the identity."""
        raise self._lacks("identity start")

    # --- heatmaps ---------------------------------------------------------------------------------------------
    def heatmap_head(self, model: nn.Module, source: str = "the model") -> HeatmapHead:
        """The adapter of ``model``'s detection head for heatmaps (``heatmap_head.HeatmapHead``); UsageError, naming
        ``source``, for heads it cannot explain."""
        raise self._lacks("heatmaps")

    def select_device(self, device: str = "") -> torch.device:
        """The torch device a --device value means ('', 'cpu', 'mps', '0', '0,1', 'cuda:1': the first GPU listed;
        '': the first GPU if any), as this engine's commands choose it (here: plainly, without a banner)."""
        value = str(device).strip().lower().replace("cuda:", "").replace("none", "")
        if value in ("cpu", "mps"):
            return torch.device("mps" if value == "mps" and torch.backends.mps.is_available() else "cpu")
        gpus = value.split(",") if value else []
        if gpus and not (all(g.isdigit() for g in gpus) and torch.cuda.is_available()
                         and max(map(int, gpus)) < torch.cuda.device_count()):
            raise UsageError(f"Invalid CUDA '--device {value}' requested, use '--device cpu' or pass valid CUDA "
                             f"device(s)")
        if not torch.cuda.is_available():
            return torch.device("cpu")
        return torch.device(f"cuda:{gpus[0] if gpus else 0}")

    # --- the commands (cli/train.py, val.py, detect.py, export.py; yolo-attn yolov5 TOOL) ------------------------
    # A command declares the options both engines share on a ``cli.pipeline.Parser`` (argparse, unknown flags passed
    # through), lets the chosen engine add its own and describe itself (``add_options``), parses, then hands over to
    # ``run``. The runners live in each engine's ``commands/`` folder; what they share is ``yolo_attn.runs``.
    def add_options(self, command: str, parser: argparse.ArgumentParser) -> None:
        """Declare the options this engine adds to ``command`` ('train', 'val', ...), and its --help text."""

    def add_help(self, command: str, parser: argparse.ArgumentParser) -> None:
        """Make ``parser``'s --help also list the flags the engine's own ``command`` takes (``parser.extend_help``)."""

    def run(self, command: str, opt: argparse.Namespace, rest: list[str], argv: list[str]) -> Optional[int]:
        """Run ``command`` with the parsed options, the flags left for the engine's own parser, and the whole
        command line (without --engine: for a runner that restarts itself, e.g. under torchrun)."""
        raise self._lacks(f"the {command} command")

    def run_tool(self, tool: str, argv: list[str]) -> Any:
        """Run the engine's own command-line ``tool`` with its own flags, as its console command would."""
        raise self._lacks(f"its own {tool} tool")

    def model_dict(self, cfg: Any) -> dict:
        """The model-YAML dict of ``cfg`` (a resolved --cfg), as a YAML file of it would hold it."""
        raise self._lacks("model dicts")

    # --- the sweep, the cost bench, the match records (ablation, benchmarks) --------------------------------------
    def training_settings(self, train_args: list[str], parser: argparse.ArgumentParser) -> dict:
        """Every setting the training command makes of ``train_args`` that decides a run's result; ``parser`` is the
        train command's parser of yolo-attn's own options, the flags it leaves are the engine's."""
        raise self._lacks("sweeps")

    #: the file a training run writes its options to, in its run folder ('' for none), and the options in it that
    #: every run of one comparison must share (the sweep refuses to compare runs that differ in them)
    options_file: str = ""
    compared_options: tuple[str, ...] = ()

    def validation_args(self, train_args: list[str]) -> list[str]:
        """The training flags validation needs too (device, workers, single-class), in the val command's syntax."""
        return []

    def match_collector(self) -> "MatchCollector":
        """A new collector of one validation's per-image matches (``yolo_attn.matches``), for this engine's val."""
        raise self._lacks("match records")

    #: the model the cost bench compares the others with when none is given
    bench_baseline: str = ""
    #: the bench figures this engine's models have beyond the common ones: "gpu" (GPU latency, memory), "thop_gflops"
    #: (the engine's own thop GFLOPs), "channels_last", "fold_attn_bn" (attention BNs folded)
    bench_extras: frozenset = frozenset()

    def bench_cfgs(self, cfgs: list[str], baseline: str) -> list[Any]:
        """The model YAMLs the bench measures for these --cfgs (none given: the engine's default set): resolved,
        the baseline first, each once."""
        raise self._lacks("cost measurement")

    def fuse(self, model: nn.Module) -> nn.Module:
        """Fold the engine's conv+BN blocks of an eval-mode model, in place and quietly; returns it."""
        raise self._lacks("cost measurement")

    @contextlib.contextmanager
    def usage_errors(self) -> Iterator[None]:
        """Inside the block, the engine's own reports of a user's mistake (asserts, missing files) as UsageError."""
        yield

    def val_maps(self, weights: Any, data: Any, imgsz: int) -> tuple[float, float]:
        """(mAP50, mAP50-95) of a checkpoint on a data YAML at ``imgsz``, by the engine's validation (benchmarks)."""
        raise self._lacks("validation from a benchmark")

    def loss_fn(self, model: nn.Module) -> Any:
        """The engine's training loss of ``model`` at its default hyper-parameters: ``loss_fn(outputs, targets)[0]``
        is the loss to back-propagate (``targets``: rows of image, class, x, y, w, h normalised)."""
        raise self._lacks("the training loss")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"
