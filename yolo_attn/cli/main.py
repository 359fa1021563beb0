"""``yolo-attn`` command: train, val, layers, generate-yamls."""
import sys

USAGE = """usage: yolo-attn COMMAND [ARGS]

commands:
  train            train a model (yolov5 train flags; --cfg NAME from model_yamls/)
  val              validate a checkpoint (yolov5 val flags)
  layers           list the registered attention layers (--markdown: the README table)
  insert           write a variant YAML: --base B --layer L --after ROW... | --replace-concat L, --out F
  transfer         report how a checkpoint's tensors map onto a model YAML: --weights W --cfg C
  generate-yamls   regenerate model_yamls/ from yolov5's yolov5s.yaml
"""


def _layers(argv):
    from yolo_attn.registry import registered_layers
    from yolo_attn.registry.docs import layer_table

    if "--markdown" in argv:
        print(layer_table())
        return

    for spec in registered_layers():
        params = ", ".join(f"{k}={v!r}" for k, v in spec.hyper_parameters.items())
        print(f"{spec.name:<10} inputs={spec.inputs}  {spec.paper}\n{'':<10} hyper-parameters: {params}")


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
    from yolo_attn.cli import common

    if command == "train":
        from yolo_attn.cli.train import main
    elif command == "val":
        from yolo_attn.cli.val import main
    elif command == "insert":
        from yolo_attn.cli.insert import main
    elif command == "transfer":
        from yolo_attn.cli.transfer import main
    elif command == "layers":
        main = _layers
    elif command == "generate-yamls":
        main = _generate
    else:
        print(f"yolo-attn: unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
        raise SystemExit(2)
    raise SystemExit(common.run_cli(main, rest))
