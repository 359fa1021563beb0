"""Constants shared by the heatmap tests (imported by name: this folder is on sys.path under pytest)."""
import os

from yolo_attn import paths

MODEL_YAMLS = sorted(p.name for p in paths.MODEL_YAMLS.glob("*.yaml"))
STOCK_YOLOV5S = "yolov5:yolov5s.yaml"  # yolov5's own models/yolov5s.yaml, as a stock yolov5 user has it


def yaml_path(name):
    if name.startswith("yolov5:"):
        return paths.yolov5_root() / "models" / name.split(":", 1)[1]
    return paths.MODEL_YAMLS / name


def one_thread_env():
    """Environment for a child process on a small shared machine: one OpenMP thread (several oversubscribe the
    cores and made a training run 10x slower here)."""
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
