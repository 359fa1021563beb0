"""Identity start, one rule for both engines and both entry points.

A row listed in a model YAML's ``identity_start:`` (or, in a block with attention inside such as yolov5's
``C3 {attn: X}``, each inner attention) is wrapped in ``IdentityStart``, ``x + gamma * (attn(x) - x)`` with gamma = 0,
so that the model computes its checkpoint's function at step 0. A layer that already starts as the identity, declared
so (``starts_as_identity``: NonLocal, GCBlock) or found computing exactly its input when fresh (a Chain of those, a
user's layer), is left as it is and one line says so: wrapped, its blend and its own zero-initialised output would
both start at 0, and every gradient of either would stay exactly 0 for ever.

``start`` is that rule at build time (each engine's parser calls it for the rows the YAML lists); ``rows_to_start``
gives the rows ``--weights`` transfer lists (those the checkpoint has no weights for), by building the model with
every candidate listed and keeping the rows the parser did wrap, so both entry points decide the same way.
"""
from __future__ import annotations

import copy
from typing import Any, Callable, Optional

import torch
from torch import nn

from yolo_attn.errors import ModelConfigError
from yolo_attn.modules import IdentityStart
from yolo_attn.registry import find_layer, registered_layers
from yolo_attn.transfer import structural_transfer

PROBE_SIZE = 8  # pixels of the random maps a fresh layer is run on (YOLO rows after P4/P5 see 2 to 8)


def computes_its_input(module: nn.Module, channels: int, size: int = PROBE_SIZE) -> bool:
    """Whether a fresh ``module`` returns exactly its input for a random batch in training mode (run on a copy, with
    the global random state left as it was; a module that cannot run on the probe, or is on the meta device, is
    taken as not the identity)."""
    if any(t.is_meta for t in (*module.parameters(), *module.buffers())):
        return False
    probe = copy.deepcopy(module).train()
    x = torch.rand(2, channels, size, size, generator=torch.Generator().manual_seed(0))
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            return torch.equal(probe(x), x)
    except Exception:  # noqa: BLE001  (whatever the layer's code raises on the probe)
        return False


def already_identity(module: nn.Module, spec: Any, channels: int) -> bool:
    """Whether a fresh layer starts as the identity: declared (``spec.starts_as_identity``) or measured."""
    return bool(getattr(spec, "starts_as_identity", False)) or computes_its_input(module, channels)


def start(module: nn.Module, spec: Any, channels: int, where: str, warn: Optional[Callable[[str], Any]] = None,
          inner: bool = False) -> nn.Module:
    """``module`` (a fresh row listed in ``identity_start:``, or the attention inside a listed block with ``inner``)
    wrapped in IdentityStart, or as it is when it already starts as the identity (``warn`` says so, once per row)."""
    if not already_identity(module, spec, channels):
        return IdentityStart(module)
    if warn is not None:
        name = getattr(spec, "name", None) or type(module).__name__
        what = f"its attention inside ({name})" if inner else name
        warn(f"{where}: identity_start lists this row, but {what} already starts as the identity (its output starts "
             f"as its input); it is left unwrapped, so that it learns (wrapped, every gradient of it would stay 0)")
    return module


def check_listed(spec: Any, c_in: Any, c_out: Any, where: str, blocks: str = "") -> None:
    """Refuse an ``identity_start:`` row that cannot start as the identity (``blocks``: the engine's blocks with
    attention inside that can, named in the message)."""
    if spec is None or not spec.keeps_channels or c_out != c_in:
        raise ModelConfigError(f"{where}: identity_start lists this row, but only one-input attention layers that "
                               f"keep their channels{blocks} can start as the identity")


def _attention_classes() -> set:
    return {s.cls for s in registered_layers() if s.keeps_channels}


def inner_attention(row: nn.Module) -> list[nn.Module]:
    """The registered attention layers nested in a block under a submodule named ``attn`` (``m.0.attn``), the
    convention structural transfer sets aside (``yolo_attn.transfer.structural``)."""
    classes = _attention_classes()
    return [m for name, m in row.named_modules() if "." in name and name.rsplit(".", 1)[1] == "attn"
            and type(m) in classes]


def candidates(source_state_dict: dict, d: dict, target: nn.Module) -> list[int]:
    """Rows of ``d`` (built: ``target``) whose one-input, channel-keeping attention the checkpoint has no weights
    for: new registered-attention rows, and matched blocks whose inner attention is new."""
    _, report = structural_transfer(source_state_dict, target.state_dict())
    rows = list(d.get("backbone") or []) + list(d.get("head") or [])
    new = [i for i in report.new_rows if isinstance(rows[i][2], str)
           and getattr(find_layer(rows[i][2]), "keeps_channels", False)]
    blocks = [i for i in report.fresh_inner_rows if inner_attention(target.model[i])]
    return sorted(set(new) | set(blocks))


def rows_to_start(source_state_dict: dict, d: dict, build: Callable[[dict], nn.Module]) -> list[int]:
    """The rows to list in ``identity_start:`` for a model ``d`` started from a checkpoint: the ``candidates`` that
    the parser wraps when listed (``start``: never a layer that already starts as the identity). ``build``: the
    engine's builder of a model dict, quiet."""
    rows = candidates(source_state_dict, d, build(dict(d, identity_start=[])))
    if not rows:
        return []
    model = build(dict(d, identity_start=rows))
    return [i for i in rows if any(isinstance(m, IdentityStart) for m in model.model[i].modules())]
