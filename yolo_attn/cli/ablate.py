"""``scripts/ablate.sh``: a multi-seed ablation. Every variant trained with every seed by the training command, each
validated on the same split, compared with the baseline by a paired bootstrap over the validation images.

Usage: ablate.sh --cfgs yolov5s.yaml yolov5s-cbam.yaml ... [--seeds 3] [--data D] [--out runs/ablate]
                 [--baseline CFG] [--ci 0.95] [--resamples 1000] [--bench-imgsz 640] [--bench-rounds 30]
                 [any train flag: --epochs 20 --imgsz 320 --batch-size 32 --device 0 ...]
Runs: DIR/runs/<cfg-stem>-seed<k> (training, then validation in its val/ folder), logs in DIR/logs. Writes
DIR/ablation.{md,csv,json,png}. Run the same command again after an interruption: finished runs are reused,
interrupted ones resumed from their last.pt; more --seeds or --cfgs later train only what is missing.
Without --data: the embedded dataset with train.sh's defaults but SWEEP_EPOCHS epochs, so that 6 variants x 3 seeds
finish within an hour on 2 CPU cores (README, "Trustworthy ablations": measured per run, extrapolated).
Exit status: 0 when every run finished and every variant was compared; 1 when runs failed or are missing (the
table names them); 2 for a mistake in the command (nothing is trained) or runs that cannot be compared (no table).
"""
import argparse
import datetime
import hashlib
import json
import shlex
import sys
from pathlib import Path

import yaml

from yolo_attn import paths
from yolo_attn.cli.pipeline import Parser, resolve_data, run_cli
from yolo_attn.engines import engine_of_yaml
from yolo_attn.engines.yolov5.options import parse_options
from yolo_attn.errors import BadParameter, UsageError

# One embedded-dataset run of yolov5s-cbam (among the slowest of the six) measured 30 s + 19.8 s per epoch (train
# and val subprocesses): 6 epochs -> ~149 s per run, 18 runs ~45 min.
SWEEP_EPOCHS = 6
OWNED = {"--seed": "--seeds N", "--name": "--out DIR", "--project": "--out DIR", "--exist-ok": "--out DIR",
         "--resume": "the same command again", "--cfg": "--cfgs", "--save-matches": "nothing (every run saves it)"}
VAL_FLAGS = ("--device", "--workers", "--single-cls")  # training flags validation needs too
MANIFEST = "sweep.json"


def parser():
    doc = __doc__.split("\n\n", 1)[1].replace("SWEEP_EPOCHS epochs", f"{SWEEP_EPOCHS} epochs")
    p = Parser("yolo-attn ablate", doc, engine_tool="train")
    p.add_argument("--cfgs", nargs="+", required=True, help="model YAMLs (paths or names in model_yamls/)")
    p.add_argument("--seeds", type=int, default=3, help="seeds per variant: 0 .. N-1 (default 3)")
    p.add_argument("--data", help="data YAML (default: the embedded dataset)")
    p.add_argument("--out", default="runs/ablate", help="sweep folder (default runs/ablate)")
    p.add_argument("--baseline", help="the cfg the others are compared with (default: the first of --cfgs)")
    p.add_argument("--ci", type=float, default=0.95, help="confidence level of the intervals (default 0.95)")
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples, at least 1000 (default 1000)")
    p.add_argument("--bootstrap-seed", type=int, default=0, help="seed of the bootstrap's draws (default 0)")
    p.add_argument("--bench-imgsz", type=int, default=None, help="size for GFLOPs and latency (default 640)")
    p.add_argument("--bench-rounds", type=int, default=None, help="interleaved latency rounds (default 30)")
    p.add_argument("--quick-bench", action="store_true", help="the bench's --quick settings: for tests")
    return p


def _cfgs(names):
    cfgs = list(dict.fromkeys(paths.resolve_cfg(n) for n in names))
    stems = [c.stem for c in cfgs]
    twice = sorted({s for s in stems if stems.count(s) > 1})
    if twice:
        raise BadParameter("cfgs", f"{{name}}: two model YAMLs named {twice[0]}.yaml; the run folders are named "
                                   "after the file: rename one")
    for cfg in cfgs:
        _yolov5_only(cfg)
    return cfgs


def _yolov5_only(cfg):
    """The sweep trains and validates through the yolov5 engine (val --save-matches); say so for another engine's
    YAML before anything is trained."""
    try:
        d = yaml.safe_load(cfg.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return  # training names what is wrong with the file
    if isinstance(d, dict) and engine_of_yaml(d) != "yolov5":
        raise BadParameter("cfgs", f"{{name}}: {cfg} is a model YAML for the {engine_of_yaml(d)} engine; the sweep "
                                   "trains yolov5 models only (its per-image match records come from yolov5's "
                                   "validation). Compare yolov5 YAMLs (model_yamls/*.yaml), or train the ultralytics "
                                   "variants one by one with scripts/train.sh --seed S.")


def _baseline(name, cfgs):
    if name is None:
        return cfgs[0]
    base = paths.resolve_cfg(name)
    if base not in cfgs:
        raise BadParameter("baseline", f"{{name}} {name}: not among --cfgs ({', '.join(c.name for c in cfgs)}); "
                                       "add it to --cfgs, since the baseline is trained with the same seeds")
    return base


def check_options(opt, rest):
    for arg in rest:
        flag = arg.split("=", 1)[0]
        if flag in OWNED:
            raise UsageError(f"{flag}: the sweep sets it for every run; use {OWNED[flag]}")
    if opt.seeds < 1:
        raise BadParameter("seeds", "{name} must be at least 1")
    if not 0 < opt.ci < 1:
        raise BadParameter("ci", "{name} must be between 0 and 1, e.g. 0.95")
    if opt.resamples < 1000:
        raise BadParameter("resamples", "{name} must be at least 1000 (fewer make the interval's ends noisy)")
    if opt.bench_imgsz is not None and (opt.bench_imgsz < 32 or opt.bench_imgsz % 32):
        raise BadParameter("bench_imgsz", "{name} " + f"{opt.bench_imgsz}: give a multiple of 32 (yolov5's stride)")
    if opt.bench_rounds is not None and opt.bench_rounds < 1:
        raise BadParameter("bench_rounds", "{name} must be at least 1")


def training_args(data_yaml, rest):
    """The training flags every run shares (the sweep adds --cfg, --seed, --project, --name); ``data_yaml`` None:
    the embedded dataset, whose defaults train.sh adds."""
    return (["--data", str(data_yaml)] if data_yaml else ["--epochs", str(SWEEP_EPOCHS)]) + list(rest)


def validation_args(data_yaml, rest):
    p = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    for flag in VAL_FLAGS:
        p.add_argument(flag, action="store_true" if flag == "--single-cls" else "store")
    known = vars(p.parse_known_args(rest)[0])
    out = ["--data", str(data_yaml)]
    for flag in VAL_FLAGS:
        value = known[flag[2:].replace("-", "_")]
        out += [] if value in (None, False) else [flag] if value is True else [flag, str(value)]
    return out


def parsed_training_options(train_args):
    """What the training command makes of these flags (yolov5's options and train.sh's own); a bad flag stops here."""
    from yolo_attn.cli import train

    ours, engine = train.parser().parse(train_args)
    return {**vars(parse_options("train", engine, "yolo-attn ablate")), **vars(ours)}


def _digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def check_manifest(out, train_args, cfgs):
    """The sweep folder's training flags and model YAMLs: recorded on first use; a later call must mean the same
    options (both parsed here, now: yolov5's defaults are paths relative to the working directory), and a cfg
    swept before must still have the same content."""
    options = parsed_training_options(train_args)
    path = out / MANIFEST
    manifest = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {"train_args": train_args}
    before = parsed_training_options(manifest["train_args"])
    changed = sorted(k for k in set(options) | set(before) if options.get(k) != before.get(k))
    if changed:
        raise UsageError(f"{out} holds a sweep trained with the flags `{shlex.join(manifest['train_args'])}`; this "
                         f"call asks for `{shlex.join(train_args)}` (differs in {', '.join(changed)}). Runs trained "
                         "differently are not comparable: repeat the same training flags (--cfgs and --seeds may "
                         "change), or give another --out.")
    known = manifest.get("cfgs", {})
    edited = [c for c in cfgs if known.get(c.stem, _digest(c)) != _digest(c)]
    if edited:
        raise UsageError(f"{edited[0]} changed since its runs in {out} were trained; delete "
                         f"{out / 'runs' / (edited[0].stem + '-seed*')} to train it anew, or give another --out.")
    cfg_digests = {**known, **{c.stem: _digest(c) for c in cfgs}}
    if cfg_digests != known or not path.is_file():
        out.mkdir(parents=True, exist_ok=True)
        paths.write_atomically(path, json.dumps({**manifest, "cfgs": cfg_digests}, indent=2) + "\n")


def number_of_classes(data_yaml):
    names = (yaml.safe_load(Path(data_yaml).read_text(encoding="utf-8")) or {}).get("names") or []
    return len(names)


def measure_cost(opt, cfgs, baseline, nc, argv):
    from yolo_attn.benchmarks import ablation as bench

    base = bench.QUICK if opt.quick_bench else bench.FULL
    s = bench.Settings(cfgs=[str(c) for c in cfgs], baseline=str(baseline), nc=nc, device="cpu",
                       imgsz=opt.bench_imgsz or base["imgsz"], rounds=opt.bench_rounds or base["rounds"],
                       warmup=base["warmup"], quick=opt.quick_bench, training_step=False, memory=False,
                       command="scripts/ablate.sh " + shlex.join(argv))
    rows, meta = bench.measure(s)
    return {r["model"]: r for r in rows}, meta


def main(argv, launcher=None):
    from yolo_attn.ablation import sweep

    opt, rest = parser().parse(argv)
    check_options(opt, rest)
    cfgs = _cfgs(opt.cfgs)
    baseline = _baseline(opt.baseline, cfgs)
    data_yaml = resolve_data(opt.data)
    train_args = training_args(data_yaml if opt.data else None, rest)
    out = Path(opt.out).expanduser().resolve()
    check_manifest(out, train_args, cfgs)
    cost = measure_cost(opt, cfgs, baseline, number_of_classes(data_yaml), argv)
    runs = sweep.runs_for(cfgs, list(range(opt.seeds)), out)
    job = sweep.Sweep(runs, train_args, validation_args(data_yaml, rest), out / "logs",
                      **({"launcher": launcher} if launcher else {}))
    try:
        failures = job.execute()
    except KeyboardInterrupt:
        done = sum(sweep.state(r) == "finished" for r in runs)
        print(f"\nyolo-attn ablate: interrupted with {done} of {len(runs)} runs finished; run the same command "
              "again to continue (finished runs are reused, the interrupted one resumed)", file=sys.stderr)
        return 130
    return write_table(opt, argv, runs, failures, cost, baseline.stem, data_yaml, train_args, out)


def write_table(opt, argv, runs, failures, cost, baseline, data_yaml, train_args, out):
    """Compare the finished runs, write DIR/ablation.*, print the table; the exit status."""
    from yolo_attn.ablation import output, report, sweep

    cost_rows, cost_meta = cost
    cfgs = list(dict.fromkeys(r.cfg for r in runs))
    results = {r: report.load_result(r) for r in runs if sweep.state(r) == "finished"}
    comparison = report.compare(cfgs, list(range(opt.seeds)), results, failures, baseline, opt.resamples, opt.ci,
                                opt.bootstrap_seed)
    for row in comparison.rows:
        row.update({k: cost_rows[row["model"]].get(k) for k in ("attention", *output.COST)})
    meta = {"date": datetime.datetime.now().isoformat(timespec="seconds"),
            "command": "scripts/ablate.sh " + shlex.join(argv), "baseline": baseline, "seeds": opt.seeds,
            "data": str(data_yaml), "train_args": train_args, "resamples": opt.resamples, "ci": opt.ci,
            "bootstrap_seed": opt.bootstrap_seed, "notes": comparison.notes,
            "cost": {k: cost_meta[k] for k in ("imgsz", "rounds", "threads", "cpu", "torch", "quick", "nc")},
            "runs": {r.name: str(r.folder) for r in results}}
    files = output.write_all(comparison.rows, meta, out, opt.ci)
    print("\n" + output.markdown(comparison.rows, meta, opt.ci))
    print("wrote " + ", ".join(str(f) for f in files), file=sys.stderr)
    return 0 if comparison.complete else 1


def cli():
    raise SystemExit(run_cli(main))


if __name__ == "__main__":
    cli()
