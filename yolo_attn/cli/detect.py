"""``scripts/detect.sh``: boxes on images, folders, videos with a checkpoint or its export, by its engine's own
detection (runs/detect/NAME/).

The engine is the model's (``cli.engine``); its runner is in its ``commands/`` folder
(``engines/yolov5/commands/detect.py``, ``engines/ultralytics/commands/detect.py``), whose text --help shows.
"""
from yolo_attn.cli.engine import choose
from yolo_attn.cli.pipeline import Parser, run_cli


def parser(engine=None):
    """The options of ``yolo-attn detect`` for ``engine`` (default: the engine used when no file names one)."""
    from yolo_attn import engines

    p = Parser("yolo-attn detect", passthrough=True)
    p.add_argument("--weights", help="a checkpoint (.pt) or its export (.onnx, .torchscript)")
    p.add_argument("--source", help="an image, a video, a folder, a quoted glob or a webcam index")
    (engine or engines.default()).add_options("detect", p)
    return p


def main(argv):
    engine, argv = choose(argv, "detect")
    opt, rest = parser(engine).parse(argv)
    return engine.run("detect", opt, rest, argv)


def cli():
    raise SystemExit(run_cli(main))


if __name__ == "__main__":
    cli()
