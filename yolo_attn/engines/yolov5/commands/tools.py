"""yolov5's own tools (train, val, detect, export), run exactly like ``python -m yolov5.<tool>``, in this process."""
import importlib
import sys

from yolo_attn.errors import YoloAttnError


def run_tool(tool, argv):
    """``python -m yolov5.<tool> *argv``, in this process (sys.argv is set for the call and restored). The engine
    adapter is installed already: importing yolo_attn ran ``yolo_attn/__init__.py``."""
    module = importlib.import_module(f"yolov5.{tool}")
    saved, sys.argv = sys.argv, [f"yolo-attn yolov5 {tool}", *argv]
    try:
        return module.main(module.parse_opt()) if tool == "train" else module.main()
    except Exception as e:  # yolov5 wraps data-loading errors (ours included) in a bare Exception with its own text
        if isinstance(e.__cause__, YoloAttnError):
            raise e.__cause__ from None
        raise
    finally:
        sys.argv = saved
