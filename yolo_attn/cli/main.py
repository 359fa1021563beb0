"""``yolo-attn COMMAND``: one entry point for every tool (the scripts/*.sh call the same modules)."""
import importlib
import sys

# command -> (module in yolo_attn.cli with main(argv), one-line help)
COMMANDS = {
    "train": ("train", "train a model (yolov5 train flags; --cfg NAME from model_yamls/)"),
    "val": ("val", "validate a checkpoint (yolov5 val flags)"),
    "detect": ("detect", "run detection with a checkpoint (yolov5 detect flags)"),
    "export": ("export", "export a checkpoint to ONNX/TorchScript, checked against PyTorch"),
    "heatmap": ("heatmap", "Grad-CAM-family heatmaps per detection, and attention gates"),
    "bench": ("bench", "ablation table: params, GFLOPs, latency, mAP per variant"),
    "convert": ("convert", "convert a local VOC or COCO dataset to the yolov5 layout"),
    "insert": ("insert", "write a variant YAML (insert layers / replace Concat), re-numbered"),
    "transfer": ("transfer", "report how a checkpoint's tensors map onto a model YAML"),
    "layers": (None, "list the registered layers (--markdown: the README table)"),
    "generate-yamls": (None, "regenerate model_yamls/ from yolov5's yolov5s.yaml"),
}
USAGE = "usage: yolo-attn COMMAND [ARGS]   (COMMAND --help for its options)\n\ncommands:\n" + "\n".join(
    f"  {name:<16} {text}" for name, (_, text) in COMMANDS.items())


def _layers(argv):
    from yolo_attn.registry import registered_layers
    from yolo_attn.benchmarks.layer_table import layer_table

    if "--markdown" in argv:
        print(layer_table())
        return
    for spec in registered_layers():
        params = ", ".join(f"{k}={v!r}" for k, v in spec.hyper_parameters.items())
        print(f"{spec.name:<16} inputs={spec.inputs}  {spec.paper}\n{'':<16} hyper-parameters: {params}")


def _generate(argv):
    from yolo_attn import paths
    from yolo_attn.model_yaml.variants import write_all

    out = argv[0] if argv else paths.MODEL_YAMLS
    for name in write_all(out):
        print(f"wrote {out}/{name}")


def cli(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        raise SystemExit(0 if argv else 2)
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"yolo-attn: unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
        raise SystemExit(2)
    from yolo_attn.cli import common

    module = COMMANDS[command][0]
    main = importlib.import_module(f"yolo_attn.cli.{module}").main if module else \
        {"layers": _layers, "generate-yamls": _generate}[command]
    raise SystemExit(common.run_cli(main, rest))
