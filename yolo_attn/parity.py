"""What export.sh checks, for every engine: the formats it writes and how close an export must be to PyTorch."""
from yolo_attn.errors import UsageError

FORMATS = {"onnx": ".onnx", "torchscript": ".torchscript"}
TOLERANCE = 1e-4


def formats(values):
    """The --include formats (one or more, commas allowed, as in yolov5), checked."""
    formats = [f.strip().lower() for v in values or [] for f in v.split(",") if f.strip()]
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise UsageError(
            f"--include {', '.join(unknown)}: yolo-attn exports {' and '.join(FORMATS)}. yolov5's other formats "
            f"(openvino, coreml, tflite, ...) need packages that yolov5 would pip-install; use yolov5's export.run "
            f"after `import yolo_attn` on a machine that has them.")
    return list(dict.fromkeys(formats)) or ["onnx"]


def max_relative_difference(got, expected):
    import numpy as np

    got, expected = np.asarray(got, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    if got.shape != expected.shape:
        return float("inf")
    return float(np.abs(got - expected).max() / max(np.abs(expected).max(), 1e-12))


def _runner(file, fmt):
    """A function running an exported file on a batch: its first output as a numpy array."""
    import torch

    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(file), providers=["CPUExecutionProvider"])
        return lambda x: session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    scripted = torch.jit.load(str(file), map_location="cpu")

    def run(x):
        out = scripted(x)
        return (out[0] if isinstance(out, (list, tuple)) else out).detach().numpy()

    return run


def compare_exports(model, files, imgsz, dynamic, batch=1, seed=0):
    """[(format, file, shapes, max relative difference)] of each exported file against ``model`` (the PyTorch model
    as exported: fused, eval mode) on random images; a dynamic ONNX model is also run at one more image and a larger,
    non-square size."""
    import torch
    from pathlib import Path

    stride = int(max(model.stride))
    h, w = imgsz
    gen = torch.Generator().manual_seed(seed)
    results = []
    for file in files:
        fmt = next(f for f, suffix in FORMATS.items() if str(file).endswith(suffix))
        shapes = [(batch, 3, h, w)] + ([(batch + 1, 3, h + stride, w + 2 * stride)] if dynamic and fmt == "onnx"
                                       else [])
        run = _runner(file, fmt)
        worst = 0.0
        for shape in shapes:
            x = torch.rand(shape, generator=gen)
            with torch.no_grad():
                expected = model(x)[0].numpy()
            worst = max(worst, max_relative_difference(run(x), expected))
        results.append((fmt, Path(file), shapes, worst))
    return results


def report(results, files):
    """Print each comparison and the exported files; SystemExit (exit 1) when an export does not reproduce the
    PyTorch model."""
    bad = []
    for fmt, file, shapes, diff in results:
        runtime = "onnxruntime" if fmt == "onnx" else "torch.jit"
        sizes = ", ".join("x".join(map(str, s)) for s in shapes)
        ok = diff <= TOLERANCE
        print(f"{fmt:<12} {file}  {runtime} vs PyTorch on {sizes}: max relative difference {diff:.1e} "
              f"({'ok' if ok else 'TOO LARGE'}, limit {TOLERANCE:g})")
        bad += [] if ok else [fmt]
    if bad:
        raise SystemExit(f"yolo-attn: error: the {' and '.join(bad)} export does not reproduce the PyTorch model")
    for file in files:
        print(f"exported {file}")
