"""``scripts/val.sh``: validate a checkpoint with its engine's own validation, ending with mAP50 and mAP50-95
(runs/val/NAME/summary.json).

The engine is the checkpoint's (``cli.engine``); its runner is in its ``commands/`` folder
(``engines/yolov5/commands/val.py``, ``engines/ultralytics/commands/val.py``), whose text --help shows.
"""
from yolo_attn import threads
from yolo_attn.cli.engine import choose
from yolo_attn.cli.pipeline import Parser, run_cli


def parser(engine=None):
    """The options of ``yolo-attn val`` for ``engine`` (default: the engine used when no file names one)."""
    from yolo_attn import engines

    p = Parser("yolo-attn val", passthrough=True)
    p.add_argument("--weights", help="checkpoint (.pt), e.g. runs/train/NAME/weights/best.pt")
    p.add_argument("--data", help="data YAML (default: the one the checkpoint was trained with)")
    p.add_argument("--save-matches", metavar="PATH", help="also write the per-image match record to PATH (.npz)")
    (engine or engines.default()).add_options("val", p)
    return p


def main(argv):
    engine, argv = choose(argv, "val")
    opt, rest = parser(engine).parse(argv)
    with threads.using():  # $YOLO_ATTN_THREADS (a sweep's share), else the user's $OMP_NUM_THREADS, else every core
        return engine.run("val", opt, rest, argv)


def cli():
    raise SystemExit(run_cli(main))


if __name__ == "__main__":
    cli()
