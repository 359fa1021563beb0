"""The one pipeline of the command-line tools.

Every command parses typed options with ``Parser`` (argparse; a mistake is a UsageError). The commands that run an
engine's tool (train, val, detect, export) declare the options both engines share, the engine adds its own
(``Engine.add_options``) and every other flag is passed to the engine unchanged (``Parser(passthrough=True)``;
``--help`` shows both). The steps around the engine's tool are engine-neutral (``yolo_attn.runs``: resolve_weights,
resolve_data, run_folder, write_summary; re-exported here). ``run_cli`` turns yolo-attn errors into one message and
exit code 2; library code raises domain errors, and a ``BadParameter`` is worded here with its flag.
"""
import argparse
import sys

from yolo_attn.errors import BadParameter, UsageError, YoloAttnError
from yolo_attn.runs import (matches_path, resolve_data, resolve_weights, run_folder,  # noqa: F401  (re-exported)
                            training_options, write_summary)


class _Help(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None):
        if parser.more_help is None:
            parser.print_help()
        else:
            print(parser.format_help())
            sys.stdout.flush()
            parser.more_help()  # the engine's own flags (it may exit itself)
        parser.exit()


class Parser(argparse.ArgumentParser):
    """argparse for one command: no abbreviations, mistakes as UsageError. ``passthrough``: unknown flags are
    returned for the engine's own parser (``engine_tool`` 'train', 'val', ...: also ``--help`` lists the default
    engine's flags for that tool)."""

    def __init__(self, prog=None, description="", engine_tool=None, epilog=None, passthrough=False, **kwargs):
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(prog=prog, description=description, epilog=epilog, allow_abbrev=False, add_help=False,
                         **kwargs)
        self.passthrough = passthrough or engine_tool is not None
        self.more_help = None
        self._help = self.add_argument("-h", "--help", action=_Help, nargs=0, default=argparse.SUPPRESS,
                                      help="show this help message and exit")
        if engine_tool:
            from yolo_attn import engines

            engines.default().add_help(engine_tool, self)

    def extend_help(self, text, show):
        """``--help`` (described as ``text``) prints this parser's help, then calls ``show()``."""
        self._help.help, self.more_help = text, show
        self._help.default = None  # as before: these commands' options have always held help=None

    def error(self, message):
        raise UsageError(f"{message}\n{self.format_usage()}")

    def parse(self, argv):
        """(options, the flags left for the engine's parser)."""
        if self.passthrough:
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
    except Exception as e:  # an engine that re-raises our error as its own (ultralytics' get_dataset: RuntimeError)
        ours = _ours(e)
        if ours is None:
            raise
        print(f"\nyolo-attn: error: {ours}", file=sys.stderr)
        return 2


def _ours(error, depth=8):
    """The yolo-attn error that caused ``error`` (through ``raise ... from``), or None."""
    while error is not None and depth:
        if isinstance(error, YoloAttnError):
            return error
        error, depth = error.__cause__, depth - 1
    return None
