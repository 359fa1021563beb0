"""``scripts/detect.sh`` for ultralytics checkpoints (.pt) and their exports (.onnx, .torchscript): boxes on images,
folders, videos, with ultralytics' own predictor.

Usage: detect.sh --weights W --source S [settings: conf=0.25, iou=0.7, save_txt=true, imgsz=, device=, ...]
Without imgsz: the image size the checkpoint was trained with (an export's own size). Results go to
runs/detect/<run>/; the last line says how many images were processed and how many boxes were found.
"""
from collections import Counter
from pathlib import Path

from yolo_attn.engines.ultralytics.commands.common import checkpoint, run_name, start, trained_settings
from yolo_attn.errors import UsageError
from yolo_attn.runs import check_source, resolve_weights


def run(opt, rest):
    from ultralytics import YOLO

    settings = start(rest)
    if not opt.weights or not opt.source:
        raise UsageError("give a model and images: --weights runs/train/NAME/weights/best.pt --source PATH")
    weights = resolve_weights(opt.weights)
    run = {"source": check_source(opt.source), "project": str(Path.cwd() / "runs" / "detect"),
           "name": run_name(weights), "save": True}
    if Path(weights).suffix == ".pt":
        weights, ckpt = checkpoint(weights)
        if trained_settings(ckpt).get("imgsz"):
            run["imgsz"] = trained_settings(ckpt)["imgsz"]
    run.update(settings)
    model = YOLO(weights, task="detect")
    images, classes, save_dir = 0, Counter(), None
    for result in model.predict(stream=True, **run):
        images += 1
        classes.update(int(c) for c in result.boxes.cls.tolist())
        save_dir = save_dir or getattr(model.predictor, "save_dir", None)
    names = model.names or {}
    found = ", ".join(f"{names.get(c, c)}: {n}" for c, n in sorted(classes.items())) or "nothing"
    print(f"\nResults saved to {save_dir}")
    print(f"detect: {images} image(s), {sum(classes.values())} box(es): {found}")
