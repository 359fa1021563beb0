"""Shared pieces of the command-line tools: error reporting, argv handling, the metrics summary."""
import json
import re
import sys
from contextlib import contextmanager
from pathlib import Path

from yolo_attn import paths
from yolo_attn.errors import UsageError, YoloAttnError

_OFFICIAL = re.compile(r"^yolov5[nsmlx]6?(-seg|-cls)?\.pt$")


def resolve_weights(weights):
    """A weights path that exists, resolved; a bare official name (yolov5s.pt) that is not on disk goes to yolov5,
    which downloads it where there is a network; anything else is a UsageError, never a download attempt."""
    path = Path(weights).expanduser()
    if path.is_file():
        return str(path.resolve())
    if not _OFFICIAL.match(str(weights)):
        raise UsageError(f"weights {weights} not found (looked at {path.resolve()})")
    if paths.online():
        return weights  # yolov5 fetches official weights (e.g. yolov5s.pt) from its GitHub releases
    raise UsageError(
        f"weights {weights!r} not found at {path.resolve()}, and this machine is offline, so yolov5 cannot download "
        f"them from its GitHub releases. Download the file on a networked machine and pass its path, or train from "
        f"scratch without --weights.")


def run_cli(main, argv=None):
    """Run ``main(argv)``; a user mistake becomes a clear message and exit code 2, never a traceback."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        return main(argv) or 0
    except YoloAttnError as e:
        print(f"\nyolo-attn: error: {e}", file=sys.stderr)
        return 2
    except AssertionError as e:  # yolov5 reports many input problems with assert
        if not str(e):
            raise
        print(f"\nyolo-attn: yolov5 stopped: {e}", file=sys.stderr)
        return 2


def flag_value(argv, *names):
    """The value given to any of the option ``names`` in argv (last one wins, as in argparse), else None."""
    value = None
    for k, arg in enumerate(argv):
        for name in names:
            if arg == name and k + 1 < len(argv):
                value = argv[k + 1]
            elif arg.startswith(name + "="):
                value = arg.split("=", 1)[1]
    return value


def without_flag(argv, *names):
    """argv with the options ``names`` and their values removed."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in names:
            skip = True
        elif not any(arg.startswith(n + "=") for n in names):
            out.append(arg)
    return out


@contextmanager
def patched_argv(argv, prog):
    saved = sys.argv
    sys.argv = [prog, *argv]
    try:
        yield
    finally:
        sys.argv = saved


def summarize(results, save_dir, **extra):
    """Print the closing line ``mAP50 <x> mAP50-95 <y>`` and write it as summary.json in the run folder."""
    precision, recall, map50, map5095 = (float(x) for x in results[:4])
    summary = {"mAP50": round(map50, 4), "mAP50-95": round(map5095, 4), "precision": round(precision, 4),
               "recall": round(recall, 4), **extra}
    path = save_dir / "summary.json"
    path.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    print(f"\nResults saved to {save_dir} (summary: {path})")
    print(f"mAP50 {map50:.4f} mAP50-95 {map5095:.4f}")
    return summary
