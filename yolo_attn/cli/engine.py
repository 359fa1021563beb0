"""Which engine a command runs with: the engine of its --cfg YAML or --weights checkpoint, or ``--engine``.

Each command calls ``choose(argv, tool)`` first: it returns the engine and the arguments without ``--engine``. A
yolov5-format YAML (``anchors:``) or checkpoint is for yolov5, the anchor-free YAMLs and checkpoints of ultralytics
(YOLOv5u, YOLOv8, YOLO11) are for ultralytics. ``--engine`` that contradicts the file is a UsageError naming the
file's engine, raised before anything runs or is written.
"""
from pathlib import Path

import yaml

from yolo_attn import paths
from yolo_attn.engines import ENGINES, engine_of_checkpoint, engine_of_yaml
from yolo_attn.errors import UsageError

FILE_FLAGS = ("--cfg", "--weights", "--resume", "--cfgs", "--baseline")


def _values(argv, flag):
    """The values given to ``flag`` (``--flag v``, ``--flag=v``; several for nargs='+' flags)."""
    out = []
    for i, token in enumerate(argv):
        if token == flag:
            for value in argv[i + 1:]:
                if value.startswith("-"):
                    break
                out.append(value)
                if flag not in ("--cfgs",):
                    break
        elif token.startswith(flag + "="):
            out.append(token.split("=", 1)[1])
    return out


def _without_engine(argv):
    out, skip = [], False
    for token in argv:
        if skip:
            skip = False
        elif token == "--engine":
            skip = True
        elif not token.startswith("--engine="):
            out.append(token)
    return out


def _yaml_file(name):
    """The model YAML a --cfg name means (yolov5's lookup, then ultralytics'), or None for a stock ultralytics name
    (yolov8s.yaml) that only ultralytics resolves."""
    from yolo_attn.engines.ultralytics.yamls import ULTRALYTICS_YAMLS, resolve_cfg

    path = Path(name).expanduser()
    wanted = name if str(name).endswith((".yaml", ".yml")) else f"{name}.yaml"
    for candidate in (path, paths.MODEL_YAMLS / wanted, ULTRALYTICS_YAMLS / wanted):
        if candidate.is_file():
            return candidate
    try:
        return paths.resolve_cfg(name)  # yolov5's own models/
    except UsageError as not_yolov5:
        from yolo_attn.engines.ultralytics.options import offline_environment

        offline_environment()  # ultralytics is imported to search its package: only ultralytics can run this name
        try:
            resolved = resolve_cfg(name)
        except UsageError:
            shipped = ", ".join(sorted(p.name for p in ULTRALYTICS_YAMLS.glob("*.yaml")))
            raise UsageError(f"{not_yolov5}\nFor the ultralytics engine: {shipped} (in {ULTRALYTICS_YAMLS}), or a "
                             f"name of ultralytics' own models such as yolov8s.yaml") from None
        return Path(resolved) if Path(resolved).is_file() else None


def engine_of_cfg(name):
    file = _yaml_file(name)
    if file is None:
        return "ultralytics", name
    try:
        d = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None, file  # the engine's own loader reports it
    return (engine_of_yaml(d) if isinstance(d, dict) else None), file


def _engine_of_weights(value):
    path = Path(value).expanduser()
    if path.is_dir():  # a run folder (--resume)
        path = path / "weights" / "last.pt"
    if path.suffix == ".onnx" and path.is_file():
        return _engine_of_onnx(path), path
    return (engine_of_checkpoint(path) if path.is_file() else None), path


def _engine_of_onnx(path):
    """ultralytics writes its settings ('task', 'args', ...) into an ONNX model's metadata; yolov5 only stride and
    names."""
    try:
        import onnx

        keys = {p.key for p in onnx.load(str(path), load_external_data=False).metadata_props}
    except Exception:  # noqa: BLE001  (not readable: the tool reports it)
        return None
    return "ultralytics" if "task" in keys else "yolov5"


def choose(argv, tool):
    """(engine, argv without --engine) for command ``tool``."""
    argv = list(argv)
    forced = _values(argv, "--engine")
    if forced and forced[-1] not in ENGINES:
        raise UsageError(f"--engine {forced[-1]}: choose one of {', '.join(ENGINES)}")
    found = {}
    for flag in FILE_FLAGS:
        for value in _values(argv, flag):
            engine, file = engine_of_cfg(value) if flag in ("--cfg", "--cfgs", "--baseline") else \
                _engine_of_weights(value)
            if engine:
                found.setdefault(engine, []).append(f"{flag} {value}")
    if len(found) > 1:
        raise UsageError(f"{tool}: the files given are for different engines: "
                         + "; ".join(f"{', '.join(v)} ({k})" for k, v in found.items())
                         + ". Use files of one engine.")
    engine = next(iter(found), None)
    if forced and engine and forced[-1] != engine:
        what = ", ".join(found[engine])
        raise UsageError(f"{what} is for the {engine} engine, not {forced[-1]} (given with --engine). Drop "
                         f"--engine: the engine is chosen from the file.")
    return (forced[-1] if forced else engine or "yolov5"), _without_engine(argv)
