"""``yolo-attn ultralytics [TASK] MODE key=value ...``: ultralytics' own command line (its ``yolo`` command), with
the yolo-attn layers installed and the shipped YAMLs found by name.

Everything after ``ultralytics`` is ultralytics' syntax, unchanged (https://docs.ultralytics.com/usage/cli/): its
modes (train, val, predict, export, ...), its settings and defaults, its runs/ folders. ``model=`` may name a
shipped YAML (model_yamls/ultralytics/) or any YAML or checkpoint ultralytics reads. None of yolo-attn's own defaults
apply (no embedded dataset, no summary.json): for those, use ``yolo-attn train``, ``val``, ``detect``, ``export``.

  yolo-attn ultralytics train model=yolo26n-cbam.yaml data=coco8.yaml epochs=100 imgsz=640
  yolo-attn ultralytics val model=runs/detect/train/weights/best.pt data=coco8.yaml
  yolo-attn ultralytics predict model=runs/detect/train/weights/best.pt source=images/
  yolo-attn ultralytics export model=runs/detect/train/weights/best.pt format=onnx
"""
from yolo_attn import engines
from yolo_attn.errors import UsageError


def main(argv):
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        if not argv:
            raise UsageError("give ultralytics' arguments, e.g. yolo-attn ultralytics train model=yolo26n-cbam.yaml "
                             "data=coco8.yaml epochs=3")
        return 0
    engines.get("ultralytics").run_tool("yolo", list(argv))
    return 0


def cli():
    from yolo_attn.cli.pipeline import run_cli

    raise SystemExit(run_cli(main))


if __name__ == "__main__":
    cli()
