"""What export.sh checks, for every engine: the formats it writes and how close an export must be to PyTorch."""
from yolo_attn.errors import UsageError

FORMATS = {"onnx": ".onnx", "torchscript": ".torchscript"}
TOLERANCE = 1e-4
# A float16 export (--half) against the float32 PyTorch model: float16 keeps 11 significant bits (relative rounding
# 4.9e-4 per operation) and the error grows through the network. Measured on every shipped model (random weights and
# BN statistics, converted as ultralytics' half=True does on a CPU, run by onnxruntime on the CPU at 416 px;
# tests/export/test_every_variant_dynamic.py, 2026-12-07): 3.0e-4 to 5.3e-4. The limit leaves ~20x for trained
# weights and larger activations; a float16 overflow (inf/nan) or a wrong graph is far above it.
HALF_TOLERANCE = 1e-2


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
        first = session.get_inputs()[0]
        dtype = "float16" if first.type == "tensor(float16)" else "float32"  # a --half export traced in float16
        return lambda x: session.run(None, {first.name: x.numpy().astype(dtype)})[0]
    scripted = torch.jit.load(str(file), map_location="cpu")

    def run(x):
        out = scripted(x)
        return (out[0] if isinstance(out, (list, tuple)) else out).detach().numpy()

    return run


def compare_exports(model, files, imgsz, dynamic, batch=1, seed=0):
    """[(format, file, [(shape, relative difference)], max relative difference)] of each exported file against
    ``model`` (the PyTorch model as exported: fused, eval mode, float32) on random images: at the export size, and a
    dynamic ONNX model also at one more image and a larger, non-square size (a second size the trace never saw)."""
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
        checks = []
        for shape in shapes:
            x = torch.rand(shape, generator=gen)
            with torch.no_grad():
                out = model(x)
                expected = (out[0] if isinstance(out, (list, tuple)) else out).numpy()
            checks.append((shape, max_relative_difference(run(x), expected)))
        results.append((fmt, Path(file), checks, max(d for _, d in checks)))
    return results


def report(results, files, tolerance=TOLERANCE):
    """Print each comparison (every size checked, with its difference) and the exported files; SystemExit (exit 1)
    when an export does not reproduce the PyTorch model within ``tolerance``."""
    bad = []
    for fmt, file, checks, diff in results:
        runtime = "onnxruntime" if fmt == "onnx" else "torch.jit"
        sizes = ", ".join(f"{'x'.join(map(str, s))} {d:.1e}" for s, d in checks)
        ok = diff <= tolerance
        print(f"{fmt:<12} {file}  {runtime} vs PyTorch on {sizes}: max relative difference {diff:.1e} "
              f"({'ok' if ok else 'TOO LARGE'}, limit {tolerance:g})")
        bad += [] if ok else [fmt]
    if bad:
        raise SystemExit(f"yolo-attn: error: the {' and '.join(bad)} export does not reproduce the PyTorch model")
    for file in files:
        print(f"exported {file}")
