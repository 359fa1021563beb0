"""Which engine a command runs with: the engine of its --cfg YAML or --weights checkpoint, or ``--engine``.

Each command calls ``choose(argv, tool)`` first: it returns the engine (an ``Engine``; ``engines.default()`` when no
file names one) and the arguments without ``--engine``. A
yolov5-format YAML (``anchors:``) or checkpoint is for yolov5, the anchor-free YAMLs and checkpoints of ultralytics
(YOLOv5u, YOLOv8, YOLO11) are for ultralytics. ``--engine`` that contradicts the file is a UsageError naming the
file's engine, raised before anything runs or is written.
"""
from yolo_attn import engines
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


def engine_of_cfg(name):
    """(engine name or None, the YAML file or the name as given) of a --cfg value; a UsageError naming what each
    engine looked at when none knows it."""
    engine, file = engines.find_cfg(name)
    if file is None:
        raise engines.cfg_not_found(name)
    return (engine.name if engine else None), file


def _engine_of_weights(value):
    engine = engines.of(value)
    return (engine.name if engine else None), engines.weights_file(value)


def choose(argv, tool):
    """(Engine, argv without --engine) for command ``tool``."""
    argv = list(argv)
    forced = _values(argv, "--engine")
    if forced and forced[-1] not in engines.names():
        raise UsageError(f"--engine {forced[-1]}: choose one of {', '.join(engines.names())}")
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
    name = forced[-1] if forced else engine
    return (engines.get(name) if name else engines.default()), _without_engine(argv)
