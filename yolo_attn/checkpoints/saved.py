"""A checkpoint's model, read as data and rebuilt from the YAML it stores.

No object of a checkpoint is made as the class it names. Its pickle is loaded with every module class mapped to an
inert ``SavedObject`` (a subclass per name, holding the attributes the file gives and nothing else: no method of
the named class runs). The model is then rebuilt from the model YAML it stores through the engine's own parser
(yolo-attn's, with its bounds), the saved module tree must be the tree that YAML builds (same paths, same classes),
and the saved tensors are loaded into it with ``load_state_dict(strict=True, assign=True)`` (their dtypes and
devices kept). Of the other values the file gives, only the plain ones an engine's ``ModelBuilder`` lists are carried
over (class names, training settings, the head's inference branch), each checked; everything structural (a row's
``f`` indices, strides, anchors grids, flags such as ``export``) comes from the fresh build.

Engines register a ``ModelBuilder`` when they are installed (``register_builder``): this layer never imports one.
"""
from __future__ import annotations

import copy
import functools
from typing import Any, Callable, Iterator, Optional

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from yolo_attn.checkpoints.classes import canonical, model_class, module_class
from yolo_attn.errors import ModelConfigError, UsageError
from yolo_attn.modules._common import PooledBatchNorm2d
from yolo_attn.modules.sync_bn import SyncBatchNorm


class SavedObject:
    """A module object of a checkpoint, as data: ``vars()`` is the state the file gives it; the class the file
    names is ``type(obj).saved_class``."""

    saved_class = ""

    def __repr__(self) -> str:
        return f"<saved {type(self).saved_class}>"


@functools.lru_cache(maxsize=None)
def saved_class(name: str) -> type:
    """The inert class standing in for the class ``name`` while a checkpoint is unpickled (one per name)."""
    return type(f"Saved[{name}]", (SavedObject,), {"saved_class": name, "__module__": __name__})


class ModelBuilder:
    """How one engine rebuilds a checkpoint's model (registered by the engine, ``register_builder``).

    ``bases``: canonical names (``classes.canonical``) of the engine's model base classes; ``model_values``: the
    plain attributes carried from the saved model (each checked by ``fields.MODEL_FIELDS`` before anything is
    built); ``head_values``: those carried from its head (the model's last row), each with the check its value
    must pass.
    """

    bases: frozenset = frozenset()
    model_values: tuple = ()
    head_values: dict[str, Callable[[Any], bool]] = {}

    def build(self, cls: type, yaml: dict) -> nn.Module:
        """A fresh model of class ``cls`` (an engine model class) from the model dict ``yaml``, built quietly through
        the engine's parser. Raise UsageError/ModelConfigError for a class or YAML the engine cannot build."""
        raise NotImplementedError


_BUILDERS: list[ModelBuilder] = []


def register_builder(builder: ModelBuilder) -> None:
    """Let ``load_checkpoint`` rebuild models whose class derives from one of ``builder.bases`` (idempotent)."""
    if not any(type(b) is type(builder) for b in _BUILDERS):
        _BUILDERS.append(builder)


def _builder_of(cls: type) -> Optional[ModelBuilder]:
    names = {canonical(c) for c in cls.__mro__}
    return next((b for b in reversed(_BUILDERS) if names & b.bases), None)


class Malformed(Exception):
    """A saved module whose torch bookkeeping (``_modules``, ``_parameters``, ``_buffers``) is not what torch
    writes; the message says where."""


def _table(saved: SavedObject, key: str, path: str, kind: type) -> dict:
    table = vars(saved).get(key, {})
    if not isinstance(table, dict) or not all(isinstance(k, str) and (v is None or isinstance(v, kind))
                                              for k, v in table.items()):
        raise Malformed(f"has a {key} at {path or 'the model'} that is not a table of names to "
                        f"{'modules' if kind is SavedObject else 'tensors'}")
    return table


def walk(saved: SavedObject, prefix: str = "") -> Iterator[tuple[str, Optional[SavedObject]]]:
    """(path, saved module or None) of ``saved`` and every module below it, as ``named_modules`` names them;
    ``Malformed`` for a ``_modules`` that is not a table of modules."""
    yield prefix, saved
    for name, child in _table(saved, "_modules", prefix, SavedObject).items():
        path = f"{prefix}.{name}" if prefix else name
        if child is None:
            yield path, None
        else:
            yield from walk(child, path)


def _state_dict(tree: dict[str, Optional[SavedObject]]) -> tuple[dict, dict]:
    """(state dict, {parameter name: requires_grad}) of a saved module tree; ``Malformed`` for tables that are not
    what torch writes."""
    state, grads = {}, {}
    for path, saved in tree.items():
        if saved is None:
            continue
        skip = vars(saved).get("_non_persistent_buffers_set", set())
        if not isinstance(skip, (set, frozenset)):
            raise Malformed(f"has a _non_persistent_buffers_set at {path or 'the model'} that is not a set")
        pre = f"{path}." if path else ""
        for name, p in _table(saved, "_parameters", path, torch.Tensor).items():
            if p is not None:
                state[pre + name] = p
                grads[pre + name] = bool(p.requires_grad)
        for name, b in _table(saved, "_buffers", path, torch.Tensor).items():
            if b is not None and name not in skip:
                state[pre + name] = b
    return state, grads


def _refuse(path: Any, where: str, what: str) -> UsageError:
    return UsageError(f"refusing to load {path}: its '{where}' {what}. A checkpoint is rebuilt from the model YAML it "
                      f"stores and must hold the weights of that model as training saved them. If you made this file "
                      f"or trust its source, set YOLO_ATTN_TRUST_CHECKPOINTS=1 to load it as it is.")


def first_line(e: BaseException) -> str:
    """``Type: first line of the message`` (160 characters at most), for one-line refusals."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return f"{type(e).__name__}: {lines[0][:160]}" if lines else type(e).__name__


def _same_class(saved: type, built: type) -> bool:
    """Whether a module saved as ``saved`` is what the YAML builds as ``built``. A synchronised batch norm (torch's,
    or yolo-attn's that also runs on CPU) stands for the batch norm it replaced: DDP training with --sync-bn converts
    every batch norm and saves the converted model (same state; the engines convert again when they resume)."""
    if canonical(saved) == canonical(built):
        return True
    if not issubclass(saved, (nn.SyncBatchNorm, SyncBatchNorm)):
        return False
    return issubclass(built, PooledBatchNorm2d if issubclass(saved, PooledBatchNorm2d) else _BatchNorm)


def _same_tree(tree: dict, model: nn.Module, path: Any, where: str) -> None:
    built = dict(model.named_modules(remove_duplicate=False))
    for name, saved in tree.items():
        here = name or "the model"
        if saved is None:
            if built.get(name) is not None:
                raise _refuse(path, where, f"has no module at {here}, where its YAML builds "
                                           f"{type(built[name]).__name__}")
            continue
        if name not in built:
            raise _refuse(path, where, f"holds a {type(saved).saved_class} at {here}, which its YAML does not build")
        cls = module_class(type(saved).saved_class)
        if cls is None or not _same_class(cls, type(built[name])):
            raise _refuse(path, where, f"holds a {type(saved).saved_class} at {here}, where its YAML builds "
                                       f"{canonical(type(built[name]))}")
    missing = sorted(set(built) - set(tree))
    if missing:
        raise _refuse(path, where, f"has no module at {missing[0]}, where its YAML builds "
                                   f"{type(built[missing[0]]).__name__}")


def _carry(builder: ModelBuilder, tree: dict, model: nn.Module, path: Any, where: str) -> None:
    saved = vars(tree[""])
    for key in builder.model_values:
        if key in saved:
            setattr(model, key, saved[key])
    head_path = f"model.{len(model.model) - 1}" if isinstance(getattr(model, "model", None), nn.Sequential) else None
    head = vars(tree[head_path]) if head_path in tree and tree[head_path] is not None else {}
    for key, ok in builder.head_values.items():
        if key in head:
            if not ok(head[key]):
                raise _refuse(path, where, f"gives its head's {key} the value {type(head[key]).__name__} "
                                           f"{head[key]!r:.60}, which it cannot be")
            setattr(model.model[-1], key, head[key])
    nc = saved.get("nc")
    if nc is not None and nc != model.yaml.get("nc"):
        raise _refuse(path, where, f"says it has {nc} classes but its YAML builds a head for {model.yaml.get('nc')}")


def _key(saved: SavedObject) -> tuple:
    return type(saved).saved_class, repr(vars(saved).get("yaml"))


def rebuild(saved: SavedObject, path: Any, where: str, fresh: dict, spare: bool = False) -> nn.Module:
    """The model ``saved`` (a checkpoint's 'model' or 'ema') stands for, rebuilt from its YAML with its weights.
    ``fresh``: unloaded models of this load by ``_key``, taken instead of built again; ``spare``: leave a copy of
    the fresh model there for the next one (the model and the EMA of one checkpoint store the same YAML)."""
    name = type(saved).saved_class
    cls = model_class(name)
    builder = _builder_of(cls) if cls is not None else None
    if builder is None:
        raise _refuse(path, where, f"is a {name}, which no engine installed here rebuilds")
    yaml = vars(saved).get("yaml")
    if not isinstance(yaml, dict):
        raise _refuse(path, where, "stores no model YAML (its 'yaml'), so it cannot be rebuilt")
    model = fresh.pop(_key(saved), None)
    if model is None:
        try:
            model = builder.build(cls, copy.deepcopy(yaml))
        except (ModelConfigError, UsageError) as e:
            raise _refuse(path, where, f"stores a model YAML that does not build: {e}") from None
        except Exception as e:  # noqa: BLE001  (whatever the engine raises on a YAML its parser let through)
            raise _refuse(path, where, f"stores a model YAML that does not build ({first_line(e)})") from None
    if spare:
        fresh[_key(saved)] = copy.deepcopy(model)
    try:
        tree = dict(walk(saved))
        state, grads = _state_dict(tree)
    except Malformed as e:
        raise _refuse(path, where, str(e)) from None
    _same_tree(tree, model, path, where)
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except (RuntimeError, TypeError, ValueError) as e:
        raise _refuse(path, where, f"holds weights that do not fit the model its YAML builds "
                                   f"({first_line(e)})") from None
    for pname, p in model.named_parameters():
        p.requires_grad_(grads.get(pname, p.requires_grad))
    modules = dict(model.named_modules(remove_duplicate=False))
    for mpath, s in tree.items():
        if s is not None and isinstance(vars(s).get("training"), bool):
            modules[mpath].training = vars(s)["training"]
    _carry(builder, tree, model, path, where)
    return model


def rebuild_models(ckpt: dict, path: Any) -> dict:
    """``ckpt`` with its saved 'model' and 'ema' replaced by the models rebuilt from them (``rebuild``); one build
    when both store the same YAML."""
    saved = [where for where in ("ema", "model") if isinstance(ckpt.get(where), SavedObject)]
    fresh: dict = {}
    for i, where in enumerate(saved):
        spare = i + 1 < len(saved) and _key(ckpt[saved[i + 1]]) == _key(ckpt[where])
        ckpt[where] = rebuild(ckpt[where], path, where, fresh, spare)
    return ckpt


__all__ = ["ModelBuilder", "SavedObject", "first_line", "rebuild", "rebuild_models", "register_builder", "saved_class",
           "walk"]
