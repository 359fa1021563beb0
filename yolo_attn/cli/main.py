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
    "ablate": ("ablate", "train every variant over several seeds; paired bootstrap CIs against the baseline"),
    "convert": ("convert", "convert a local VOC or COCO dataset to the yolov5 layout"),
    "insert": ("insert", "write a variant YAML (insert layers / replace Concat), re-numbered"),
    "transfer": ("transfer", "report how a checkpoint's tensors map onto a model YAML"),
    "layers": ("layers", "list the registered layers (--markdown: the table of docs/layers.md)"),
    "generate-yamls": ("generate_yamls", "regenerate model_yamls/ from yolov5's yolov5s.yaml"),
    "yolov5": ("yolov5", "yolov5's own train/val/detect/export with its flags (its `yolov5` command fails to import), "
                         "the layers and fixes installed, no yolo-attn defaults"),
    "ultralytics": ("ultralytics", "ultralytics' own command line (yolo train model=... data=...), its syntax, the "
                                   "layers installed and shipped YAMLs found by name"),
}
USAGE = "usage: yolo-attn COMMAND [ARGS]   (COMMAND --help for its options; --version)\n\ncommands:\n" + "\n".join(
    f"  {name:<16} {text}" for name, (_, text) in COMMANDS.items())


def cli(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        raise SystemExit(0 if argv else 2)
    if argv[0] == "--version":
        from yolo_attn._version import __version__

        print(f"yolo-attn {__version__}")
        raise SystemExit(0)
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"yolo-attn: unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
        raise SystemExit(2)
    from yolo_attn.cli.pipeline import run_cli

    main = importlib.import_module(f"yolo_attn.cli.{COMMANDS[command][0]}").main
    raise SystemExit(run_cli(main, rest))


if __name__ == "__main__":
    cli()
