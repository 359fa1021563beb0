"""``scripts/detect.sh``: yolov5's own detect.py with the yolo-attn layers: boxes on images, folders, videos.

Usage: detect.sh --weights W --source S [yolov5 detect flags: --conf-thres, --save-txt, --save-conf, --device ...]

- W: a checkpoint (.pt) or its export (.onnx, .torchscript from export.sh).
- S: an image, a video, a folder, a glob (quoted), or a webcam index.
- Without ``--imgsz``: the image size the checkpoint was trained with, or the fixed input size of an export
  (else yolov5's 640).
- Results go to ``runs/detect/<run>/`` (annotated copies; ``--save-txt`` adds YOLO-format label files). The last
  line says how many images were processed and how many boxes were found.
"""
import ast
import json
import zipfile
from collections import Counter
from pathlib import Path

from yolo_attn.checkpoints import load_checkpoint
from yolo_attn.engines.yolov5.options import parse_options
from yolo_attn.errors import UsageError
from yolo_attn.runs import check_source, resolve_weights, run_folder, training_options


def _names(names):
    return dict(enumerate(names)) if isinstance(names, (list, tuple)) else dict(names or {})


def _export_info(weights):
    """(fixed input size [h, w] or None, class names) of an exported model, from the metadata yolov5 writes."""
    suffix = Path(weights).suffix
    try:
        if suffix == ".onnx":
            import onnx

            model = onnx.load(weights, load_external_data=False)
            hw = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim[2:4]]
            meta = {p.key: p.value for p in model.metadata_props}
            return (hw if all(hw) else None), _names(ast.literal_eval(meta.get("names", "{}")))
        if suffix == ".torchscript":
            with zipfile.ZipFile(weights) as z:
                name = next(n for n in z.namelist() if n.endswith("extra/config.txt"))
                config = json.loads(z.read(name))
                return list(config["shape"][2:4]), {int(k): v for k, v in config.get("names", {}).items()}
    except (OSError, StopIteration, KeyError, ValueError, SyntaxError, zipfile.BadZipFile):
        pass
    return None, {}


def build_argv(opt, rest):
    if not opt.weights or not opt.source:
        raise UsageError("give a model and images: --weights runs/train/NAME/weights/best.pt --source PATH")
    weights = resolve_weights(opt.weights)
    if Path(weights).suffix == ".pt":
        ckpt = load_checkpoint(weights)  # refuses non-checkpoints clearly, before yolov5 starts
        imgsz = training_options(ckpt).get("imgsz")
        imgsz, names = [imgsz] if imgsz else None, _names(getattr(ckpt.get("ema") or ckpt["model"], "names", {}))
    else:
        imgsz, names = _export_info(weights)
    run = Path(weights).parent.parent.name if Path(weights).parent.name == "weights" else Path(weights).stem
    out = ["--weights", weights, "--source", check_source(opt.source),
           "--project", str(Path.cwd() / "runs" / "detect"), "--name", run or "exp"]
    if imgsz and not any(a.split("=")[0] in ("--imgsz", "--img", "--img-size") for a in rest):
        out += ["--imgsz", *map(str, imgsz)]
    return out + rest, names


def run(opt, rest, argv):
    import yolov5.detect as yolov5_detect

    yolov5_argv, names = build_argv(opt, rest)
    opt = parse_options("detect", yolov5_argv, "yolo-attn detect")
    save_dir = run_folder(opt.project, opt.name, opt.exist_ok)
    opt.name, opt.exist_ok = save_dir.name, True

    images, classes = [0], Counter()
    nms = yolov5_detect.non_max_suppression

    def counting_nms(*args, **kwargs):  # yolov5's NMS, counting what detect.py is about to draw
        out = nms(*args, **kwargs)
        images[0] += len(out)
        classes.update(int(c) for det in out for c in det[:, 5].tolist())
        return out

    yolov5_detect.non_max_suppression = counting_nms
    try:
        yolov5_detect.run(**vars(opt))
    finally:
        yolov5_detect.non_max_suppression = nms
    found = ", ".join(f"{names.get(c, c)}: {n}" for c, n in sorted(classes.items())) or "nothing"
    print(f"\nResults saved to {save_dir}")
    print(f"detect: {images[0]} image(s), {sum(classes.values())} box(es): {found}")

