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
  A dynamic ONNX model is checked at two sizes: the export size and a larger, non-square one with one more image.
- ``--half`` (float16 ONNX/TorchScript): yolov5 traces the model in float16 on a GPU, so it needs ``--device 0`` on a
  CUDA machine and a fixed size (not ``--dynamic``); both are refused up front with that fix (exit 2). The float16
  file is compared with the float32 PyTorch model within ``parity.HALF_TOLERANCE``.
"""
from pathlib import Path

from yolo_attn.checkpoints import load_checkpoint
from yolo_attn.engines.yolov5.options import parse_options
from yolo_attn.errors import UsageError
from yolo_attn.parity import FORMATS, HALF_TOLERANCE, TOLERANCE, compare_exports, report
from yolo_attn.parity import formats as _formats
from yolo_attn.runs import resolve_weights, training_options

def _value(rest, *flags):
    """The value of the last of ``flags`` in ``rest`` (``--flag V`` or ``--flag=V``), else None."""
    found = None
    for i, a in enumerate(rest):
        name, eq, v = a.partition("=")
        if name in flags:
            found = v if eq else (rest[i + 1] if i + 1 < len(rest) else "")
    return found


def check_half(rest):
    """yolov5 exports float16 only on a GPU and at a fixed size (its own assertions would end in a traceback)."""
    if "--half" not in rest:
        return
    import torch

    device = (_value(rest, "--device") or "").strip().lower()
    if device == "cpu" or not torch.cuda.is_available():
        raise UsageError("--half: yolov5 traces a float16 model on a GPU only (a CPU cannot trace it: "
                         + ("--device cpu" if device == "cpu" else "no CUDA GPU on this machine") + "). Export with "
                         "--half --device 0 on a CUDA machine, or drop --half for a float32 export (onnxruntime "
                         "and TensorRT can convert it to float16 later).")
    if "--dynamic" in rest:
        raise UsageError("--half with --dynamic: yolov5 exports a float16 model at one fixed size only; drop "
                         "--dynamic (and give --imgsz), or drop --half for a dynamic float32 export.")


def build_argv(opt, rest):
    """yolov5 export argv and what the check needs: (argv, weights, formats)."""
    if not opt.weights:
        raise UsageError("give a checkpoint with --weights PATH (e.g. runs/train/yolov5s-cbam/weights/best.pt)")
    weights = resolve_weights(opt.weights)
    if Path(weights).suffix != ".pt":
        raise UsageError(f"--weights {weights}: export starts from a PyTorch checkpoint (.pt), the file training "
                         f"wrote (runs/train/NAME/weights/best.pt)")
    ckpt = load_checkpoint(weights)  # refuses non-checkpoints clearly, before yolov5 starts
    check_half(rest)
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
    if opt.half and any(str(f).endswith(".torchscript") for f in files):  # traced on the GPU, in float16
        print("yolo-attn: --half: the float16 TorchScript file (traced on the GPU) is not compared; the ONNX file is")
        files_to_check = [f for f in files if not str(f).endswith(".torchscript")]
    elif opt.optimize:  # a mobile (lite interpreter) TorchScript file: torch.jit.load does not read it
        print("yolo-attn: --optimize: the mobile TorchScript file is not compared (torch.jit.load cannot run it)")
        files_to_check = [f for f in files if not str(f).endswith(".torchscript")]
    else:
        files_to_check = files
    results = check_exports(weights, files_to_check, imgsz, opt.dynamic, opt.batch_size) if files_to_check else []
    report(results, files, HALF_TOLERANCE if opt.half else TOLERANCE)

