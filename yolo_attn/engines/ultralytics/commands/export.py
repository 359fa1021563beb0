"""``scripts/export.sh`` for ultralytics checkpoints: ultralytics' own export, checked against PyTorch.

Usage: export.sh --weights W [--include onnx|torchscript ...] [--imgsz N] [--dynamic] [settings: opset=, half=, ...]

The files are written next to the weights (best.onnx, best.torchscript). Each one is run once (onnxruntime on the
CPU, torch.jit) on random images and compared with the PyTorch model (fused, as exported); the largest difference
relative to the output's magnitude is printed and must be at most 1e-4 (exit 1 if not).
"""
import importlib.util
from pathlib import Path

from yolo_attn.engines.ultralytics.commands.common import checkpoint, start, trained_settings
from yolo_attn.errors import UsageError
from yolo_attn.parity import compare_exports, formats, report


def _for_format(fmt, settings):
    """ultralytics refuses settings a format does not take; ONNX is not simplified unless onnxslim is installed
    (ultralytics would pip-install it)."""
    if fmt != "onnx":
        return {k: v for k, v in settings.items() if k not in ("simplify", "opset", "dynamic")}
    return {"simplify": importlib.util.find_spec("onnxslim") is not None, **settings}


def check_exports(weights, files, imgsz, dynamic, batch=1, seed=0):
    """[(format, file, shapes, max relative difference)] of each exported file against the fused PyTorch model."""
    from yolo_attn.engines.ultralytics.model import load_model

    return compare_exports(load_model(weights, fuse=True), files, imgsz, dynamic, batch, seed)


def run(opt, rest):
    from ultralytics import YOLO

    settings = start(rest)
    if not opt.weights:
        raise UsageError("give a checkpoint with --weights PATH (e.g. runs/train/yolo11n-cbam/weights/best.pt)")
    weights, ckpt = checkpoint(opt.weights)
    chosen = formats(opt.include)
    settings.setdefault("imgsz", trained_settings(ckpt).get("imgsz") or 640)
    model = YOLO(weights)
    files = [Path(model.export(format=fmt, **_for_format(fmt, settings))) for fmt in chosen]
    imgsz = settings["imgsz"] if isinstance(settings["imgsz"], (list, tuple)) else [settings["imgsz"]] * 2
    imgsz = [int(v) for v in (list(imgsz) * 2)[:2]]
    print()
    if settings.get("half") or settings.get("int8"):
        print("yolo-attn: half/int8 export: not compared with the FP32 PyTorch model")
        results = []
    else:
        results = check_exports(weights, files, imgsz, settings.get("dynamic", False), settings.get("batch", 1))
    report(results, files)
