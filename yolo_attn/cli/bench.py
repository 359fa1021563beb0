"""``scripts/bench.sh``: the ablation table (params, GFLOPs, latency, training step, memory, mAP) per model YAML.

Usage: bench.sh --out DIR [--cfgs A.yaml B.yaml ...] [--imgsz 640] [--device auto|cpu|0] [--runs runs/train]
                [--rounds 30] [--threads N] [--quick] [--channels-last] [--fold-attn-bn]

Writes DIR/ablation.csv, DIR/ablation.md, DIR/ablation.png (and ablation.json) and prints the table.
How each figure is taken: yolo_attn/benchmarks/ablation.py (FLOP rule: yolo_attn/benchmarks/flops.py).
"""
import shlex
import sys

from yolo_attn import engines
from yolo_attn.benchmarks import ablation
from yolo_attn.cli.engine import choose
from yolo_attn.cli.pipeline import Parser, run_cli
from yolo_attn.errors import UsageError


def parse_args(argv):
    p = Parser("bench.sh", __doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="folder for ablation.csv / ablation.md / ablation.png")
    p.add_argument("--cfgs", nargs="+", default=None,
                   help="model YAMLs (paths or names in model_yamls/); default: all of model_yamls/")
    p.add_argument("--baseline", default=None, help="the model the ratios refer to (default yolov5s.yaml)")
    p.add_argument("--imgsz", type=int, default=None, help="inference size for GFLOPs, latency, memory (default 640)")
    p.add_argument("--device", default="auto",
                   help="auto (CPU, plus the GPU when there is one), cpu, or a GPU index such as 0 (CPU figures are "
                        "always taken)")
    p.add_argument("--runs", default=None, help="folder of run folders with summary.json (fills mAP50 / mAP50-95)")
    p.add_argument("--rounds", type=int, default=None, help="interleaved latency rounds (default 30)")
    p.add_argument("--warmup", type=int, default=None, help="warm-up calls per model (default 3)")
    p.add_argument("--train-imgsz", type=int, default=None, help="training-step size (default 320)")
    p.add_argument("--train-batch", type=int, default=None, help="training-step batch (default 2)")
    p.add_argument("--train-rounds", type=int, default=None, help="interleaved training-step rounds (default 10)")
    p.add_argument("--nc", type=int, default=80, help="number of classes the models are built with (default 80)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--channels-last", action="store_true", help="run inference in channels-last memory format")
    p.add_argument("--fold-attn-bn", action="store_true",
                   help="also fold the BNs inside attention modules (yolov5's fuse() leaves them)")
    p.add_argument("--quick", action="store_true",
                   help="few rounds at a small size (128 px, training step 64 px): for tests, not for the table")
    return p.parse_args(argv)


def settings_from(opt, argv):
    defaults = ablation.QUICK if opt.quick else ablation.FULL
    pick = lambda value, key: defaults[key] if value is None else value  # noqa: E731
    s = ablation.Settings(
        cfgs=opt.cfgs or [], baseline=opt.baseline, imgsz=pick(opt.imgsz, "imgsz"), rounds=pick(opt.rounds, "rounds"),
        warmup=pick(opt.warmup, "warmup"), train_imgsz=pick(opt.train_imgsz, "train_imgsz"),
        train_batch=pick(opt.train_batch, "train_batch"), train_rounds=pick(opt.train_rounds, "train_rounds"),
        train_warmup=defaults["train_warmup"], nc=opt.nc, device=opt.device, runs=opt.runs, threads=opt.threads,
        channels_last=opt.channels_last, fold_attn_bn=opt.fold_attn_bn, quick=opt.quick,
        command="scripts/bench.sh " + " ".join(shlex.quote(a) for a in argv))
    for name in ("imgsz", "train_imgsz"):
        if getattr(s, name) < 32 or getattr(s, name) % 32:
            raise UsageError(f"--{name.replace('_', '-')} {getattr(s, name)}: give a multiple of 32 (yolov5's stride)")
    for name in ("rounds", "train_rounds", "train_batch"):
        if getattr(s, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1")
    if s.runs is not None:
        from pathlib import Path

        if not Path(s.runs).is_dir():
            raise UsageError(f"--runs {s.runs}: not a folder (give the folder that holds the run folders, "
                             "e.g. runs/train)")
    return s


def main(argv):
    engine, argv = choose(argv, "bench")
    opt = parse_args(argv)
    settings = settings_from(opt, argv)
    rows, meta = ablation.measure(settings, engine)
    files = ablation.write_all(rows, meta, opt.out)
    print(ablation.markdown(rows, meta))
    print("wrote " + ", ".join(str(f) for f in files), file=sys.stderr)


def cli():
    raise SystemExit(run_cli(main))


if __name__ == "__main__":
    cli()
