"""yolov5's own command-line options for one of its tools (train, val, detect, export)."""
import importlib
import sys


def parse_options(tool, argv, prog):
    """``yolov5.<tool>.parse_opt()`` on ``argv`` (it reads sys.argv, which is set for the call and restored)."""
    module = importlib.import_module(f"yolov5.{tool}")
    saved = sys.argv
    sys.argv = [prog, *argv]
    try:
        return module.parse_opt()
    finally:
        sys.argv = saved
