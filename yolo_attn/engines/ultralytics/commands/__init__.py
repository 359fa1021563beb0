"""ultralytics' train, val, detect and export as the yolo-attn commands run them (``UltralyticsEngine.run``): each
module's docstring is the command's --help text and ``run`` its body; ``common`` holds their shared steps.

Every flag a command does not take itself is an ultralytics setting (``key=value`` or ``--key value``,
``engines.ultralytics.options``). Runs are offline: no DNS probes, analytics, pip installs or downloads.
"""
import importlib

from yolo_attn.engines.ultralytics.options import offline_environment

offline_environment()  # before any of these tools imports ultralytics (it reads the environment when imported)

COMMANDS = ("train", "val", "detect", "export")


def _module(command):
    return importlib.import_module(f"yolo_attn.engines.ultralytics.commands.{command}")


def add_help(command, parser):
    """--help ends with where ultralytics' settings are listed."""
    from yolo_attn.engines.ultralytics.commands.common import SETTINGS_HELP

    parser.epilog = SETTINGS_HELP


def add_options(command, parser):
    parser.prog += " (ultralytics)"
    parser.description = _module(command).__doc__.split("\n\n", 1)[1]
    add_help(command, parser)


def run(command, opt, rest, argv):
    from yolo_attn.engines.ultralytics.commands.common import usage_errors

    with usage_errors():
        return _module(command).run(opt, rest)
