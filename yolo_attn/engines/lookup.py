"""Which engine: the registered engines and the one rule that says whose a file or model is (``of``).

Imports only the ``Engine`` contract: engine folders may ask it (e.g. to name the engine of a checkpoint they
refuse) without an import cycle; ``engines/__init__.py`` registers the built-in engines and re-exports this.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from yolo_attn.engines.base import Engine
from yolo_attn.errors import UsageError

_REGISTERED: dict[str, Engine] = {}


def register(engine: Engine) -> Engine:
    """Add ``engine`` (replacing one of the same name); returns it."""
    if not isinstance(engine, Engine):
        raise TypeError(f"register() takes an Engine instance, not {type(engine).__name__}")
    _REGISTERED[engine.name] = engine
    return engine


def unregister(name: str) -> None:
    _REGISTERED.pop(name, None)


def names() -> tuple[str, ...]:
    return tuple(_REGISTERED)


def registered() -> list[Engine]:
    """The engines, the latest registered first (the order ``of`` asks them in)."""
    return list(reversed(_REGISTERED.values()))


def get(name: str) -> Engine:
    try:
        return _REGISTERED[name]
    except KeyError:
        raise UsageError(f"unknown engine {name!r}: choose one of {', '.join(_REGISTERED)}") from None


def default() -> Engine:
    """The engine a command runs with when no file names one (yolov5, as before there were two)."""
    return get("yolov5")


def install() -> None:
    """Install every engine adapter (each patches its engine's modules only when they are imported)."""
    for engine in registered():
        engine.install()


def _first(test) -> Optional[Engine]:
    return next((e for e in registered() if test(e)), None)


def of_yaml(d: Any) -> Optional[Engine]:
    return _first(lambda e: e.owns_yaml(d)) if isinstance(d, dict) else None


def of_model(model: Any) -> Optional[Engine]:
    return _first(lambda e: e.owns_model(model))


def of_checkpoint(path: Any) -> Optional[Engine]:
    """The engine of a checkpoint, from the classes its pickle names (scanned, nothing unpickled); None for a file
    that names no engine's classes (or is not a checkpoint)."""
    from yolo_attn.checkpoints import pickle_globals

    found = pickle_globals(path)  # within the loader's size and opcode bounds: a zip bomb costs nothing here
    if found is None:  # not a readable archive, or beyond a bound: the loader explains it
        return None
    return _first(lambda e: e.owns_checkpoint(Path(path), found))


def of_onnx(path: Any) -> Optional[Engine]:
    try:
        import onnx

        meta = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    except Exception:  # noqa: BLE001  (not readable: the tool reports it)
        return None
    return _first(lambda e: e.owns_onnx(meta))


def find_cfg(name: Any) -> tuple[Optional[Engine], Optional[Path | str]]:
    """(engine, file) of a --cfg name or path. The engine that finds a file does not decide by itself; the file's
    content does (``of_yaml``): (None, file) for a file no engine owns or that cannot be read as YAML (the engine's
    loader reports it). A stock name only one engine resolves gives (that engine, the name). (None, None) when no
    engine knows it."""
    import yaml

    for engine in registered():
        file = engine.find_cfg(str(name))
        if file is None:
            continue
        if isinstance(file, str):
            return engine, file
        try:
            d = yaml.safe_load(Path(file).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            return None, Path(file)
        return of_yaml(d), Path(file)
    return None, None


def cfg_not_found(name: Any) -> UsageError:
    """The error for a --cfg value no engine knows: what each engine looked at and ships."""
    said = []
    for engine in registered():
        try:
            engine.resolve_cfg(str(name))
        except UsageError as e:
            said.append(f"{engine.name} engine: {e}")
        else:
            said.append(f"{engine.name} engine: model cfg {str(name)!r} not found")
    return UsageError("\n".join(said))


def weights_file(value: Any) -> Path:
    """The checkpoint a --weights/--resume value names: a run folder means its weights/last.pt."""
    path = Path(value).expanduser()
    if path.is_dir():
        path = next((c for c in (path / "weights" / "last.pt", path / "last.pt") if c.is_file()),
                    path / "weights" / "last.pt")
    return path


def of(thing: Any) -> Optional[Engine]:
    """The engine of ``thing``: a built model, a model-YAML dict, or a path/name of a model YAML, a checkpoint (or
    run folder) or an ONNX file. None when no engine recognises it."""
    if isinstance(thing, dict):
        return of_yaml(thing)
    if not isinstance(thing, (str, Path)):
        return of_model(thing)
    path = Path(thing).expanduser()
    if path.suffix in (".yaml", ".yml") or not path.suffix and not path.is_dir():
        return find_cfg(thing)[0]
    path = weights_file(path)
    if not path.is_file():
        return None
    return of_onnx(path) if path.suffix == ".onnx" else of_checkpoint(path)
