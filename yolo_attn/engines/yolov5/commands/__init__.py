"""yolov5's train, val, detect and export as the yolo-attn commands run them (``Yolov5Engine.run``): each module's
docstring is the command's --help text, ``add_options`` its yolov5-only options, ``run`` its body. ``launch``: the
torchrun launcher of training; ``tools``: yolov5's own tools as its console command runs them."""
import importlib
import sys

COMMANDS = ("train", "val", "detect", "export")


def _module(command):
    return importlib.import_module(f"yolo_attn.engines.yolov5.commands.{command}")


def add_help(command, parser):
    """--help lists our options, then yolov5's own flags for ``command`` (from its parser)."""
    def show():
        from yolo_attn.engines.yolov5.options import parse_options

        print(f"Every other flag goes to yolov5's {command}.py unchanged:\n")
        sys.stdout.flush()
        parse_options(command, ["--help"], parser.prog)  # prints yolov5's help and exits 0

    parser.extend_help("this help, then yolov5's flags", show)


def add_options(command, parser):
    module = _module(command)
    parser.description = module.__doc__.split("\n\n", 1)[1]
    add_help(command, parser)
    if hasattr(module, "add_options"):
        module.add_options(parser)


def run(command, opt, rest, argv):
    return _module(command).run(opt, rest, argv)
