"""``scripts/export.sh``: export a checkpoint to ONNX/TorchScript with its engine's own export, each file checked
against PyTorch (``yolo_attn.parity``).

The engine is the checkpoint's (``cli.engine``); its runner is in its ``commands/`` folder
(``engines/yolov5/commands/export.py``, ``engines/ultralytics/commands/export.py``), whose text --help shows.
"""
from yolo_attn.cli.engine import choose
from yolo_attn.cli.pipeline import Parser, run_cli
from yolo_attn.parity import FORMATS


def parser(engine=None):
    """The options of ``yolo-attn export`` for ``engine`` (default: the engine used when no file names one)."""
    from yolo_attn import engines

    p = Parser("yolo-attn export", passthrough=True)
    p.add_argument("--weights", help="the checkpoint (.pt) training wrote")
    p.add_argument("--include", nargs="+", metavar="FORMAT", help=f"one or more of {', '.join(FORMATS)} (default onnx)")
    (engine or engines.default()).add_options("export", p)
    return p


def main(argv):
    engine, argv = choose(argv, "export")
    opt, rest = parser(engine).parse(argv)
    return engine.run("export", opt, rest, argv)


def cli():
    raise SystemExit(run_cli(main))


if __name__ == "__main__":
    cli()
