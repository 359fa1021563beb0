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
