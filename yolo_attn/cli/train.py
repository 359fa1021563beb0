"""``scripts/train.sh``: train a model YAML with its engine's own training and the yolo-attn layers, ending with
mAP50 and mAP50-95 (runs/train/NAME/summary.json).

The engine is the one of --cfg, --weights or --resume (``cli.engine``); its runner is in its ``commands/`` folder
(``engines/yolov5/commands/train.py``, ``engines/ultralytics/commands/train.py``), whose text --help shows.
"""
from yolo_attn import threads
from yolo_attn.cli.engine import choose
from yolo_attn.cli.pipeline import Parser, run_cli


def parser(engine=None):
    """The options of ``yolo-attn train`` for ``engine`` (default: the engine used when no file names one)."""
    from yolo_attn import engines

    p = Parser("yolo-attn train", passthrough=True)
    p.add_argument("--cfg", help="model YAML: a path or a name in model_yamls/ (then yolov5's models/; ultralytics: "
                                 "model_yamls/ultralytics/ first, or a stock name such as yolov8s.yaml)")
    p.add_argument("--data", help="data YAML: a path, a name in data/, coco or voc (default: the embedded dataset)")
    p.add_argument("--weights", default="", help="checkpoint to start from (tensors matched by structure)")
    p.add_argument("--attention-init", choices=("identity", "default"),
                   help="attention rows the checkpoint lacks: start as the identity (default with --weights) or "
                        "with the modules' own initialisation")
    p.add_argument("--resume", nargs="?", const="", default=None, metavar="LAST_PT_OR_RUN",
                   help="continue an interrupted run from its last.pt or run folder (yolov5, without a path: the "
                        "newest runs/train/*/weights/last.pt)")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="CPU threads of the training (default: $YOLO_ATTN_THREADS, else $OMP_NUM_THREADS as you set "
                        "it, else every core; --workers is the dataloader's processes, not threads)")
    (engine or engines.default()).add_options("train", p)
    return p


def main(argv):
    engine, argv = choose(argv, "train")
    opt, rest = parser(engine).parse(argv)
    with threads.using(opt.threads):
        return engine.run("train", opt, rest, argv)


def cli():
    raise SystemExit(run_cli(main))


if __name__ == "__main__":
    cli()
