"""``python -m yolo_attn.cli.launch TORCHRUN_ARGS``: torchrun's agent for a training on several processes, kept as
an entry point; the launcher is the yolov5 engine's (``engines/yolov5/commands/launch.py``)."""
import runpy

if __name__ == "__main__":
    runpy.run_module("yolo_attn.engines.yolov5.commands.launch", run_name="__main__", alter_sys=True)
