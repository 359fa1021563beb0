"""``scripts/export.sh`` for ultralytics checkpoints: ultralytics' own export, checked against PyTorch.

Usage: export.sh --weights W [--include onnx|torchscript ...] [--imgsz N] [--dynamic] [settings: opset=, half=, ...]

The files are written next to the weights (best.onnx, best.torchscript). Each one is run once (onnxruntime on the
CPU, torch.jit) on random images and compared with the PyTorch model (fused, as exported); the largest difference
relative to the output's magnitude is printed and must be at most 1e-4 (exit 1 if not). A dynamic ONNX model is
checked at two sizes (the export size, and a larger non-square one with one more image). ``half=True``: ultralytics
writes a float16 ONNX model (traced in float16 on a GPU; on a CPU converted by onnxruntime's float16 tool, float32
input and output), which onnxruntime runs on the CPU; it is compared within ``parity.HALF_TOLERANCE``.
``nms=False`` on a YOLO26 exports its end-to-end branch (output: the top-k detections, x1 y1 x2 y2 score class),
compared with that branch of the PyTorch model.
"""
import importlib.util
from pathlib import Path

from yolo_attn.engines.ultralytics.commands.common import checkpoint, start, trained_settings
from yolo_attn.errors import UsageError
from yolo_attn.parity import HALF_TOLERANCE, TOLERANCE, compare_exports, formats, report


def _for_format(fmt, settings):
    """ultralytics refuses settings a format does not take; ONNX is not simplified unless onnxslim is installed
    (ultralytics would pip-install it)."""
    if fmt != "onnx":
        return {k: v for k, v in settings.items() if k not in ("simplify", "opset", "dynamic")}
    return {"simplify": importlib.util.find_spec("onnxslim") is not None, **settings}


def check_exports(weights, files, imgsz, dynamic, batch=1, seed=0, end2end=False):
    """[(format, file, shapes, max relative difference)] of each exported file against the fused PyTorch model.
    ``end2end``: the branch ultralytics' exporter chose (``nms=False``: a YOLO26's one-to-one branch, its output the
    top-k detections (b, k, 6); otherwise the one-to-many branch), selected here before fusing drops the other."""
    from yolo_attn.engines.ultralytics.model import load_model

    model = load_model(weights)
    if hasattr(model, "end2end"):
        model.end2end = end2end  # as the exporter sets it (model.end2end = args.nms is False)
    return compare_exports(model.fuse().eval(), files, imgsz, dynamic, batch, seed)


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
    half = bool(settings.get("half")) or str(settings.get("quantize")) == "16"
    if settings.get("int8") or str(settings.get("quantize")) == "8":
        print("yolo-attn: int8 export: not compared with the FP32 PyTorch model")
        results = []
    elif half:  # float16 ONNX: traced in float16 on a GPU, converted by onnxruntime's float16 tool on a CPU
        onnx_files = [f for f in files if f.suffix == ".onnx"]
        if len(onnx_files) < len(files):
            print("yolo-attn: half: the TorchScript file is not compared (float16 on a GPU only); the ONNX file is")
        results = check_exports(weights, onnx_files, imgsz, settings.get("dynamic", False), settings.get("batch", 1),
                                end2end=settings.get("nms") is False)
    else:
        results = check_exports(weights, files, imgsz, settings.get("dynamic", False), settings.get("batch", 1),
                                end2end=settings.get("nms") is False)
    report(results, files, HALF_TOLERANCE if half else TOLERANCE)
