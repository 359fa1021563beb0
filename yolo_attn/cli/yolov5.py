"""``yolo-attn yolov5 train|val|detect|export [yolov5's own flags]``: yolov5's own tools, as its ``yolov5`` console
command would run them, which on setuptools >= 81 dies at import (``No module named 'pkg_resources'``).

Here each runs exactly like ``python -m yolov5.<tool>`` (yolov5's argparse flags, e.g. --img 640 --batch-size 16
--data coco128.yaml --weights yolov5s.pt, its defaults, its runs/ folders), with the yolo-attn engine adapter
installed: the attention layers in model YAMLs, the safe YAML parser, restricted checkpoint loading, the label cache
kept out of the dataset folder and the fixes for today's torch/numpy/Pillow. None of yolo-attn's own defaults apply
(no embedded dataset, no data.yaml copied into the run folder, no summary.json): for those, use ``yolo-attn train``,
``val``, ``detect``, ``export``.

  yolo-attn yolov5 train --data coco128.yaml --cfg model_yamls/yolov5s-cbam.yaml --weights '' --img 640
  yolo-attn yolov5 detect --weights runs/train/exp/weights/best.pt --source images/
  yolo-attn yolov5 val --help          (yolov5's own flags)
"""
from yolo_attn import engines
from yolo_attn.errors import UsageError

TOOLS = ("train", "val", "detect", "export")


def run_tool(tool, argv):
    """``python -m yolov5.<tool> *argv``, in this process, with the engine adapter installed."""
    return engines.get("yolov5").run_tool(tool, argv)


def main(argv):
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        if not argv:
            raise UsageError(f"give one of yolov5's tools: {', '.join(TOOLS)}")
        return 0
    tool, rest = argv[0], argv[1:]
    if tool not in TOOLS:
        raise UsageError(f"yolov5 tool {tool!r} is not one of {', '.join(TOOLS)}. Usage: yolo-attn yolov5 TOOL "
                         f"[yolov5's flags]; yolo-attn yolov5 TOOL --help lists them.")
    run_tool(tool, rest)
    return 0


def cli():
    from yolo_attn.cli.pipeline import run_cli

    raise SystemExit(run_cli(main))


if __name__ == "__main__":
    cli()
