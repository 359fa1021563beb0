"""``scripts/ablate.sh``: a multi-seed ablation. Every variant trained with every seed by the training command, each
validated on the same split, compared with the baseline by a paired bootstrap over the validation images.

Usage: ablate.sh --cfgs yolov5s.yaml yolov5s-cbam.yaml ... [--seeds 3] [--data D] [--out runs/ablate] [--jobs N]
                 [--baseline CFG] [--ci 0.95] [--resamples 1000] [--bench-imgsz 640] [--bench-rounds 30]
                 [any train flag: --epochs 20 --imgsz 320 --batch-size 32 --device 0 ...]
       ablate.sh --cfgs yolo11n.yaml yolo11n-cbam.yaml ... [same options] [ultralytics settings: epochs=20 ...]
The model YAMLs of one sweep are all for one engine (yolov5, or ultralytics: model_yamls/ultralytics/); the runs are
trained and validated by that engine, so every variant shares one training recipe and one mAP definition.
Runs: DIR/runs/<cfg-stem>-seed<k> (training, then validation in its val/ folder), logs in DIR/logs. Writes
DIR/ablation.{md,csv,json,png}. Run the same command again after an interruption: finished runs are reused,
interrupted ones resumed from their last.pt; more --seeds or --cfgs later train only what is missing.
--jobs N runs N runs at a time, each on its own GPU or its share of the CPU threads (default: one per GPU, else one
per 2 cores); the results and the table are those of --jobs 1 (on the CPU up to float reassociation, docs/ablations.md).
Without --data: the embedded dataset with train.sh's defaults but SWEEP_EPOCHS epochs, so that 6 variants x 3 seeds
finish within about an hour on 2 CPU cores (docs/ablations.md; measured per run, extrapolated: docs/measurements.md).
Exit status: 0 when every run finished and every variant was compared; 1 when runs failed or are missing (the
table names them); 2 for a mistake in the command (nothing is trained) or runs that cannot be compared (no table).
"""
import datetime
import contextlib
import hashlib
import io
import json
import re
import shlex
import sys
from pathlib import Path

import yaml

from yolo_attn import engines, paths
from yolo_attn.ablation.report import FIRST_ENGINE
from yolo_attn.cli.pipeline import Parser, resolve_data, run_cli
from yolo_attn.errors import BadParameter, UsageError
from yolo_attn.runs import refuse_overwrite

MANIFEST = "sweep.json"
SETTING = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=.*")  # ultralytics' key=value
# flags the sweep sets for every run, as the key they are read into -> what to use instead
OWNED = {"seed": "--seeds N", "name": "--out DIR", "project": "--out DIR", "exist_ok": "--out DIR",
         "resume": "the same command again", "cfg": "--cfgs", "model": "--cfgs",
         "save_matches": "nothing (every run saves it)",
         "threads": "--jobs N (the sweep shares the CPU threads out among the runs it runs at a time)"}


def owned_flag(token):
    """The OWNED key a command-line token sets (``--seed``, ``--seed=1``, ``seed=1``), else None."""
    if not token.startswith("--") and "=" not in token:
        return None
    key = token.lstrip("-").split("=", 1)[0].replace("-", "_")
    return key if key in OWNED else None


def sweep_epochs():
    """The runs' epochs without --data, per engine (in the help)."""
    return ", ".join(f"{e.sweep_epochs} ({e.name})" for e in reversed(engines.registered()))


def parser():
    doc = __doc__.split("\n\n", 1)[1].replace("SWEEP_EPOCHS epochs", f"{sweep_epochs()} epochs")
    p = Parser("yolo-attn ablate", doc, engine_tool="train")
    p.add_argument("--cfgs", nargs="+", required=True,
                   help="model YAMLs of one engine (paths, or names in model_yamls/ or model_yamls/ultralytics/)")
    p.add_argument("--seeds", type=int, default=3, help="seeds per variant: 0 .. N-1 (default 3)")
    p.add_argument("--data", help="data YAML (default: the embedded dataset)")
    p.add_argument("--out", default="runs/ablate", help="sweep folder (default runs/ablate)")
    p.add_argument("--baseline", help="the cfg the others are compared with (default: the first of --cfgs)")
    p.add_argument("--ci", type=float, default=0.95, help="confidence level of the intervals (default 0.95)")
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples, at least 1000 (default 1000)")
    p.add_argument("--bootstrap-seed", type=int, default=0, help="seed of the bootstrap's draws (default 0)")
    p.add_argument("--bench-imgsz", type=int, default=None, help="size for GFLOPs and latency (default 640)")
    p.add_argument("--bench-rounds", type=int, default=None, help="interleaved latency rounds (default 30)")
    p.add_argument("--jobs", type=int, default=None, metavar="N",
                   help="runs at a time (default: one per visible GPU; without GPUs one per 2 CPU cores, the "
                        "threads shared out; at most one per GPU or per core)")
    p.add_argument("--quick-bench", action="store_true", help="the bench's --quick settings: for tests")
    return p


def settings_out_of_cfgs(opt, rest):
    """argparse reads ultralytics settings written among or after the --cfgs names (``--cfgs a.yaml b.yaml
    epochs=20``) as more names: they go back to the flags for training, after the others."""
    settings = [c for c in opt.cfgs if SETTING.fullmatch(c) and not Path(c).exists()]
    opt.cfgs = [c for c in opt.cfgs if c not in settings]
    if not opt.cfgs:
        raise BadParameter("cfgs", "{name}: give the model YAMLs to compare (--cfgs yolo11n.yaml yolo11n-cbam.yaml)")
    return opt, rest + settings


def resolve_cfg(name):
    """(engine, path) of a model YAML given to the sweep: a path, or a name in model_yamls/ (yolov5) or
    model_yamls/ultralytics/. The runs are named after the file, so it must be a file."""
    engine, file = engines.find_cfg(name)  # a name only ultralytics resolves comes back as it is
    if file is None:
        raise engines.cfg_not_found(name)
    if not Path(file).is_file():
        raise BadParameter("cfgs", f"{{name}} {name}: a model of the ultralytics package, not a file; the sweep "
                                   "names its runs after their YAML files: use the shipped baseline "
                                   "(model_yamls/ultralytics/yolo11n.yaml is ultralytics' own yolo11n) or a copy")
    return engine, Path(file).resolve()


def _cfgs(names):
    """(engine, the model YAMLs): one engine for all, distinct file names."""
    found = {}
    for name in names:
        engine, cfg = resolve_cfg(name)
        found.setdefault(cfg, engine)
    default = engines.registered()[0]  # the engine asked first takes the YAMLs no engine owns (it reports them)
    found = {cfg: engine or default for cfg, engine in found.items()}
    names = sorted({e.name for e in found.values()})
    if len(names) > 1:
        by_engine = "; ".join(f"{n}: {', '.join(c.name for c, e in found.items() if e.name == n)}" for n in names)
        raise BadParameter("cfgs", f"{{name}}: the model YAMLs are for different engines ({by_engine}). A sweep "
                                   "compares variants trained and validated by one engine (the recipes and the mAP "
                                   "definitions differ); run one sweep per engine, each with its own --out.")
    cfgs = list(found)
    stems = [c.stem for c in cfgs]
    twice = sorted({s for s in stems if stems.count(s) > 1})
    if twice:
        raise BadParameter("cfgs", f"{{name}}: two model YAMLs named {twice[0]}.yaml; the run folders are named "
                                   "after the file: rename one")
    return found[cfgs[0]], cfgs


def _baseline(name, cfgs):
    if name is None:
        return cfgs[0]
    base = resolve_cfg(name)[1]
    if base not in cfgs:
        raise BadParameter("baseline", f"{{name}} {name}: not among --cfgs ({', '.join(c.name for c in cfgs)}); "
                                       "add it to --cfgs, since the baseline is trained with the same seeds")
    return base


def check_options(opt, rest):
    for arg in rest:
        key = owned_flag(arg)
        if key:
            raise UsageError(f"{arg.split('=', 1)[0]}: the sweep sets it for every run; use {OWNED[key]}")
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


def training_args(engine, data_yaml, rest):
    """The training flags every run shares (the sweep adds --cfg, --seed, --project, --name); ``data_yaml`` None:
    the embedded dataset, whose defaults train.sh adds."""
    return (["--data", str(data_yaml)] if data_yaml else ["--epochs", str(engine.sweep_epochs)]) + list(rest)


def validation_args(engine, data_yaml, rest):
    return ["--data", str(data_yaml), *engine.validation_args(rest)]


def _digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def read_manifest(path):
    """DIR/sweep.json, checked: what the sweep wrote there (engine, training flags, model YAML digests), else a
    UsageError naming the file."""
    from yolo_attn.ablation.sweep import read_json, state_error

    manifest = read_json(path)
    if not isinstance(manifest.get("engine", FIRST_ENGINE), str):
        raise state_error(path, "its engine: is not an engine's name")
    args = manifest.get("train_args")
    if not (isinstance(args, list) and all(isinstance(a, str) for a in args)):
        raise state_error(path, "its train_args: is not the list of the sweep's training flags")
    cfgs = manifest.get("cfgs", {})
    if not (isinstance(cfgs, dict) and all(isinstance(v, str) for v in cfgs.values())):
        raise state_error(path, "its cfgs: is not a mapping of model YAML names to digests")
    return manifest


def check_manifest(out, engine, train_args, cfgs):
    """The sweep folder's engine, training flags and model YAMLs: recorded on first use; a later call must mean the
    same options (both parsed here, now: yolov5's defaults are paths relative to the working directory), and a cfg
    swept before must still have the same content."""
    from yolo_attn.cli import train

    options = engine.training_settings(train_args, train.parser(engine))
    path = out / MANIFEST
    manifest = read_manifest(path) if path.exists() else {"engine": engine.name, "train_args": train_args}
    if manifest.get("engine", FIRST_ENGINE) != engine.name:
        raise UsageError(f"{out} holds a sweep of {manifest.get('engine', FIRST_ENGINE)} models; these are "
                         f"{engine.name} models, whose runs cannot be compared with them: give another --out.")
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # the engine's argparse would print its usage
            before = engine.training_settings(manifest["train_args"], train.parser(engine))
    except (SystemExit, UsageError):
        from yolo_attn.ablation.sweep import state_error

        raise state_error(path, f"its train_args: `{shlex.join(manifest['train_args'])}` are not flags the train "
                                f"command takes") from None
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


def measure_cost(engine, opt, cfgs, baseline, nc, argv):
    from yolo_attn.benchmarks import ablation as bench

    base = bench.QUICK if opt.quick_bench else bench.FULL
    s = bench.Settings(cfgs=[str(c) for c in cfgs], baseline=str(baseline), nc=nc, device="cpu",
                       imgsz=opt.bench_imgsz or base["imgsz"], rounds=opt.bench_rounds or base["rounds"],
                       warmup=base["warmup"], quick=opt.quick_bench, training_step=False, memory=False,
                       command="scripts/ablate.sh " + shlex.join(argv))
    rows, meta = bench.measure(s, engine)
    return {r["model"]: r for r in rows}, meta


def device_flag(rest):
    """The --device (or ultralytics' device=) of the training flags, else None."""
    for k, arg in enumerate(rest):
        if arg == "--device":
            return rest[k + 1] if k + 1 < len(rest) else ""
        if arg.startswith(("--device=", "device=")):
            return arg.split("=", 1)[1]
    return None


def slots(opt, rest, gpus=None, cores=None):
    """The sweep's slots for --jobs on this machine (``gpus``/``cores``: found here unless given, for tests)."""
    from yolo_attn import threads
    from yolo_attn.ablation import sweep

    found = threads.cores() if cores is None else cores
    return sweep.machine_slots(opt.jobs, device_flag(rest), found,
                               sweep.visible_gpus() if gpus is None else gpus,
                               threads.wanted() if cores is None else None)


def main(argv, launcher=None, gpus=None, cores=None):
    from yolo_attn.ablation import sweep

    opt, rest = settings_out_of_cfgs(*parser().parse(argv))
    check_options(opt, rest)
    jobs = slots(opt, rest, gpus, cores)
    engine, cfgs = _cfgs(opt.cfgs)
    baseline = _baseline(opt.baseline, cfgs)
    data_yaml = resolve_data(opt.data)
    train_args = training_args(engine, data_yaml if opt.data else None, rest)
    out = Path(opt.out).expanduser().resolve()
    refuse_overwrite("--out", out, [("--data", data_yaml)] + [("--cfgs", c) for c in cfgs])
    check_manifest(out, engine, train_args, cfgs)
    cost = measure_cost(engine, opt, cfgs, baseline, number_of_classes(data_yaml), argv)
    runs = sweep.runs_for(cfgs, list(range(opt.seeds)), out)
    job = sweep.Sweep(runs, train_args, validation_args(engine, data_yaml, rest), out / "logs", slots=jobs,
                      **({"launcher": launcher} if launcher else {}))
    try:
        failures = job.execute()
    except KeyboardInterrupt:
        done = sum(sweep.state(r) == "finished" for r in runs)
        print(f"\nyolo-attn ablate: interrupted with {done} of {len(runs)} runs finished; run the same command "
              "again to continue (finished runs are reused, the interrupted one resumed)", file=sys.stderr)
        return 130
    return write_table(opt, argv, runs, failures, cost, baseline.stem, data_yaml, train_args, out, engine.name)


def write_table(opt, argv, runs, failures, cost, baseline, data_yaml, train_args, out, engine=FIRST_ENGINE):
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
            "command": "scripts/ablate.sh " + shlex.join(argv), "engine": engine, "baseline": baseline,
            "seeds": opt.seeds,
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
