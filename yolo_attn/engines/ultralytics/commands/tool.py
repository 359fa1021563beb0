"""ultralytics' own command line (``yolo [TASK] MODE key=value ...``), run in this process with the adapter installed.

Its syntax and defaults are unchanged; two things are added: a ``model=`` that names a shipped YAML
(``model=yolo26n-cbam.yaml``, found in model_yamls/ultralytics/) is given to ultralytics as that file's path,
and ultralytics' argument errors (``SyntaxError``/``ValueError`` with its whole help text, or an assert) become
one clear message instead of a traceback.
"""
from pathlib import Path

from yolo_attn.errors import UsageError


def shipped_model(value):
    """The path of the shipped YAML ``value`` names (``yolo26n-cbam.yaml``), or None (a file that exists, a stock
    name, a checkpoint: ultralytics resolves those itself)."""
    from yolo_attn.engines.ultralytics.yamls import ULTRALYTICS_YAMLS

    name = str(value)
    if Path(name).exists() or Path(name).suffix not in (".yaml", ".yml") or Path(name).name != name:
        return None
    if (ULTRALYTICS_YAMLS / name).is_file():
        return str((ULTRALYTICS_YAMLS / name).resolve())
    return None


def with_shipped_models(argv):
    """``argv`` with ``model=NAME`` of a shipped YAML given as its path (ultralytics would look for NAME in its own
    package and stop)."""
    out = []
    for a in argv:
        key, eq, value = a.partition("=")
        if eq and key.lstrip("-") == "model" and value:
            value = shipped_model(value) or value
            a = f"{key}={value}"
        out.append(a)
    return out


def _first_line(e):
    """ultralytics' message without its help text (it appends the whole ``yolo`` usage)."""
    from ultralytics.cfg import CLI_HELP_MSG

    text = str(e).replace(CLI_HELP_MSG, "").strip()
    return " ".join(text.split("\n")[:8]).strip() or type(e).__name__


def run_tool(tool, argv):
    """ultralytics' ``yolo`` entry point with ``argv`` (``tool``: 'yolo', its console command)."""
    from yolo_attn.engines.ultralytics.commands.common import keep_thread_count, usage_errors
    from yolo_attn.engines.ultralytics.options import offline_environment

    if tool != "yolo":
        raise UsageError(f"ultralytics' command line tool is 'yolo', not {tool!r}")
    offline_environment()
    from ultralytics import cfg

    keep_thread_count()
    saved, cfg.ARGV = cfg.ARGV, ["yolo", *with_shipped_models(argv)]
    try:
        with usage_errors():
            return cfg.entrypoint()
    except SyntaxError as e:  # ultralytics' argument check (unknown key, key without '=')
        raise UsageError(f"ultralytics: {_first_line(e)} Settings: https://docs.ultralytics.com/usage/cfg/") from None
    except ValueError as e:
        if not str(e).startswith("Invalid '"):  # 'mode=...' / 'task=...'; other ValueErrors are not ours to word
            raise
        raise UsageError(f"ultralytics: {_first_line(e)}") from None
    finally:
        cfg.ARGV = saved
