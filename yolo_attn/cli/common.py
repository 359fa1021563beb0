"""Shared pieces of the command-line tools: error reporting, argv handling, the metrics summary."""
import json
import sys
from contextlib import contextmanager

from yolo_attn.errors import YoloAttnError


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
