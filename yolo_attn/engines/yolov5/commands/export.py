"""``scripts/export.sh``: yolov5's own export of a checkpoint with the yolo-attn layers, checked against PyTorch.

Usage: export.sh --weights W [--include onnx|torchscript ...] [--imgsz N] [--dynamic] [yolov5 export flags]

- ``--include`` takes one or more of onnx, torchscript (default: onnx; ``onnx torchscript`` or ``onnx,torchscript``).
  yolov5's other formats need packages that it would try to pip-install; export them with yolov5's ``export.run``
  after ``import yolo_attn``.
- Without ``--imgsz`` the export uses the image size the checkpoint was trained with (else yolov5's 640).
- ``--dynamic`` gives the ONNX model a dynamic batch size, height and width (``--opset``: yolov5's 17 by default).
- The files are written next to the weights (``best.onnx``, ``best.torchscript``). Each one is then run once
  (onnxruntime on the CPU, torch.jit) on a random image and compared with the PyTorch model (fused, as yolov5 exports
  it); the largest difference relative to the output's magnitude is printed and must be at most 1e-4 (exit 1 if not).
"""
from pathlib import Path

from yolo_attn.checkpoints import load_checkpoint
from yolo_attn.engines.yolov5.options import parse_options
from yolo_attn.errors import UsageError
from yolo_attn.parity import FORMATS, compare_exports, report
from yolo_attn.parity import formats as _formats
from yolo_attn.runs import resolve_weights, training_options

def build_argv(opt, rest):
    """yolov5 export argv and what the check needs: (argv, weights, formats)."""
    if not opt.weights:
        raise UsageError("give a checkpoint with --weights PATH (e.g. runs/train/yolov5s-cbam/weights/best.pt)")
    weights = resolve_weights(opt.weights)
    if Path(weights).suffix != ".pt":
        raise UsageError(f"--weights {weights}: export starts from a PyTorch checkpoint (.pt), the file training "
                         f"wrote (runs/train/NAME/weights/best.pt)")
    ckpt = load_checkpoint(weights)  # refuses non-checkpoints clearly, before yolov5 starts
    formats = _formats(opt.include)
    out = ["--weights", weights, "--include", *formats]
    if not any(a.split("=")[0] in ("--imgsz", "--img", "--img-size") for a in rest):
        out += ["--imgsz", str(training_options(ckpt).get("imgsz") or 640)]
    return out + rest, weights, formats


def check_exports(weights, files, imgsz, dynamic, batch_size=1):
    """Run each exported file on random images and compare with the PyTorch model: [(format, file, shapes, diff)]."""
    from yolov5.models.experimental import attempt_load

    model = attempt_load(weights, device="cpu", inplace=True, fuse=True).eval()
    return compare_exports(model, files, imgsz, dynamic, batch_size)


def run(opt, rest, argv):
    import yolov5.export as yolov5_export

    yolov5_argv, weights, formats = build_argv(opt, rest)
    opt = parse_options("export", yolov5_argv, "yolo-attn export")
    opt.weights = opt.weights[0] if isinstance(opt.weights, list) else opt.weights
    files = [Path(f) for f in yolov5_export.run(**vars(opt))]
    made = {fmt for fmt, suffix in FORMATS.items() for f in files if str(f).endswith(suffix)}
    failed = [fmt for fmt in formats if fmt not in made]
    if failed:
        raise SystemExit(f"\nyolo-attn: error: {' and '.join(failed)} export failed; yolov5's reason is on its "
                         f"'export failure' line above.")
    imgsz = list(opt.imgsz) * (2 if len(opt.imgsz) == 1 else 1)
    print()
    if opt.half:
        print("yolo-attn: --half export: not compared with the FP32 PyTorch model")
        files_to_check = []
    elif opt.optimize:  # a mobile (lite interpreter) TorchScript file: torch.jit.load does not read it
        print("yolo-attn: --optimize: the mobile TorchScript file is not compared (torch.jit.load cannot run it)")
        files_to_check = [f for f in files if not str(f).endswith(".torchscript")]
    else:
        files_to_check = files
    results = check_exports(weights, files_to_check, imgsz, opt.dynamic, opt.batch_size) if files_to_check else []
    report(results, files)

