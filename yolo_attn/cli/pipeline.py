"""The one pipeline of the command-line tools.

Every command parses typed options with ``Parser`` (argparse; a mistake is a UsageError). The commands that run a
yolov5 tool (train, val, detect, export) declare only their own options and pass every other flag to yolov5's parser
unchanged (``Parser(engine_tool=...)``; ``--help`` shows both). Then the shared steps: ``resolve_weights``,
``resolve_data``, ``run_folder``, ``write_summary``. ``run_cli`` turns yolo-attn errors into one message and exit
code 2; library code raises domain errors, and a ``BadParameter`` is worded here with its flag.
"""
import argparse
import json
import re
import sys
from pathlib import Path

from yolo_attn import paths
from yolo_attn.errors import BadParameter, UsageError, YoloAttnError

_OFFICIAL = re.compile(r"^yolov5[nsmlx]6?(-seg|-cls)?\.pt$")


class _EngineHelp(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None):
        from yolo_attn.engines.yolov5.options import parse_options

        print(parser.format_help())
        print(f"Every other flag goes to yolov5's {parser.engine_tool}.py unchanged:\n")
        sys.stdout.flush()
        parse_options(parser.engine_tool, ["--help"], parser.prog)  # prints yolov5's help and exits 0


class Parser(argparse.ArgumentParser):
    """argparse for one command: no abbreviations, mistakes as UsageError; ``engine_tool`` ('train', 'val', ...):
    unknown flags are returned for yolov5's own parser, and ``--help`` lists yolov5's flags too."""

    def __init__(self, prog=None, description="", engine_tool=None, epilog=None, **kwargs):
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(prog=prog, description=description, epilog=epilog, allow_abbrev=False,
                         add_help=engine_tool is None, **kwargs)
        self.engine_tool = engine_tool
        if engine_tool:
            self.add_argument("-h", "--help", action=_EngineHelp, nargs=0, help="this help, then yolov5's flags")

    def error(self, message):
        raise UsageError(f"{message}\n{self.format_usage()}")

    def parse(self, argv):
        """(options, the flags left for yolov5's parser)."""
        if self.engine_tool:
            return self.parse_known_args(argv)
        return self.parse_args(argv), []


def run_cli(main, argv=None):
    """Run ``main(argv)``; a user mistake becomes a clear message and exit code 2, never a traceback."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        return main(argv) or 0
    except BadParameter as e:
        print(f"\nyolo-attn: error: {e.as_flag()}", file=sys.stderr)
        return 2
    except YoloAttnError as e:
        print(f"\nyolo-attn: error: {e}", file=sys.stderr)
        return 2
    except AssertionError as e:  # yolov5 reports many input problems with assert
        if not str(e):
            raise
        print(f"\nyolo-attn: yolov5 stopped: {e}", file=sys.stderr)
        return 2


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


def resolve_data(data):
    """The data YAML yolov5 should read for ``--data`` (a path, a name in data/, ``coco``/``voc``), checked; None:
    the embedded shapes dataset, generated on first use."""
    from yolo_attn.datasets import checks, shapes

    if data is None:
        return shapes.ensure(paths.EMBEDDED_DATASET)
    path = paths.resolve_data(data)
    return checks.prepare(path, is_yolov5_builtin=paths.is_yolov5_data(path))


def run_folder(project, name, exist_ok=False):
    """The run folder ``project/name`` (``name2``, ``name3``, ... when taken, as yolov5 numbers them)."""
    from yolov5.utils.general import increment_path

    return Path(increment_path(Path(project) / name, exist_ok=exist_ok))


def matches_path(path):
    """``--save-matches PATH`` as an absolute file path (None when not given); a folder is refused."""
    if not path:
        return None
    path = Path(path).expanduser().resolve()
    if path.is_dir():
        raise BadParameter("save_matches", f"{{name}} {path}: a folder; give a file name such as {path}/matches.npz")
    return path


def training_options(checkpoint):
    """The options a checkpoint was trained with (its ``opt``), as a dict."""
    opt = checkpoint.get("opt") or {}
    return vars(opt) if isinstance(opt, argparse.Namespace) else dict(opt)


def write_summary(results, save_dir, **extra):
    """Print the closing line ``mAP50 <x> mAP50-95 <y>`` and write it as summary.json in the run folder."""
    precision, recall, map50, map5095 = (float(x) for x in results[:4])
    summary = {"mAP50": round(map50, 4), "mAP50-95": round(map5095, 4), "precision": round(precision, 4),
               "recall": round(recall, 4), **extra}
    path = Path(save_dir) / "summary.json"
    paths.write_atomically(path, json.dumps(summary, indent=2, default=str) + "\n")
    print(f"\nResults saved to {save_dir} (summary: {path})")
    print(f"mAP50 {map50:.4f} mAP50-95 {map5095:.4f}")
    return summary
