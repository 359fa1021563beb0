"""``scripts/gpu_check.sh``: everything that needs a CUDA GPU, in one command that fits in about 10 minutes on one GPU.

    scripts/gpu_check.sh [--out runs/gpu_check] [--epochs 3] [--plan]

Steps (each one a ``yolo-attn`` command in its own process, its output in OUT/logs/STEP.log; ``--plan`` prints them
without running anything):

- ``train-<engine>-<model>``: mixed-precision (AMP, the engines' default on a GPU) training of ``--epochs`` epochs
  on the embedded dataset, ``--device 0``, for the baseline, CBAM after blocks and one in-block variant of each
  engine (yolov5: yolov5s, yolov5s-cbam, yolov5s-c3cbam; ultralytics: yolo26n, yolo26n-cbam, yolo26n-c3k2cbam,
  YOLO26 being ultralytics' default model, end-to-end head included). Checked: every loss column of the run's results.csv is finite;
  reported: mAP50 and mAP50-95 of its summary.json.
- ``ddp-yolov5``: yolov5 DDP with NCCL on every visible GPU (one process per GPU, even with one), through the
  train command's torchrun launcher (``--nproc-per-node N``, docs/ddp.md).
- ``bench-<engine>``: ``yolo-attn bench --device 0`` for every shipped model of the engine: float16 latency at
  640 px and its ratio to the baseline, and the peak GPU memory of the inference call (the bench's ``gpu_ms``,
  ``gpu_ratio``, ``gpu_mem_infer_mb``; docs/ablations.md). Its CPU figures are taken too, with few rounds.

Writes OUT/gpu_check.json and OUT/gpu_check.md, each written whole (``paths.write_atomically``) once every step
has ended, failed ones included (status ``failed``, exit code and log path): exit 0 when every step passed, 1 when
one failed. Without a CUDA GPU it prints ``no GPU: nothing checked`` and exits 0 without writing anything.

An application: it imports no engine; every step runs as a subprocess (``python -m yolo_attn.cli.main ...``) in
its own working folder OUT/work/STEP, so its runs/ folder is its own.
"""
import argparse
import csv
import datetime
import json
import math
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from yolo_attn import paths

NO_GPU = "no GPU: nothing checked"
# (engine, model YAMLs trained: baseline, CBAM after blocks, CBAM inside blocks)
TRAINED = {"yolov5": ("yolov5s.yaml", "yolov5s-cbam.yaml", "yolov5s-c3cbam.yaml"),
           "ultralytics": ("yolo26n.yaml", "yolo26n-cbam.yaml", "yolo26n-c3k2cbam.yaml")}
BENCH_ROUNDS = ["--rounds", "10", "--train-rounds", "3"]
CLI = [sys.executable, "-m", "yolo_attn.cli.main"]


@dataclass
class Step:
    name: str
    kind: str  # train | ddp | bench
    engine: str
    argv: list
    cfg: str = None

    def command(self):
        return " ".join(["yolo-attn"] + self.argv)


@dataclass
class Result:
    name: str
    kind: str
    engine: str
    command: str
    status: str  # passed | failed
    returncode: int
    seconds: float
    log: str
    figures: dict = field(default_factory=dict)
    problem: str = None


def plan(gpus, epochs=3, out=Path("runs/gpu_check")):
    """The steps, in order, for ``gpus`` visible GPUs."""
    steps = []
    for engine, cfgs in TRAINED.items():
        for cfg in cfgs:
            steps.append(Step(f"train-{engine}-{Path(cfg).stem}", "train", engine,
                              ["train", "--cfg", cfg, "--epochs", str(epochs), "--device", "0"], cfg))
    devices = ",".join(str(i) for i in range(gpus))
    steps.append(Step("ddp-yolov5", "ddp", "yolov5",
                      ["train", "--cfg", "yolov5s-cbam.yaml", "--epochs", "1", "--nproc-per-node", str(gpus),
                       "--device", devices, "--batch-size", str(16 * gpus)], "yolov5s-cbam.yaml"))
    for engine in TRAINED:
        steps.append(Step(f"bench-{engine}", "bench", engine,
                          ["bench", "--engine", engine, "--device", "0", "--imgsz", "640", *BENCH_ROUNDS,
                           "--out", str(Path(out) / "bench" / engine)]))
    return steps


def cuda_gpus():
    """Number of visible CUDA GPUs (0 without torch's CUDA)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _finite_losses(run):
    """(loss columns of the run's results.csv, the last epoch's values); raises ValueError if one is not finite."""
    rows = list(csv.DictReader(open(run / "results.csv", newline="")))
    if not rows:
        raise ValueError(f"{run / 'results.csv'} has no epoch")
    rows = [{k.strip(): v for k, v in r.items()} for r in rows]
    keys = [k for k in rows[0] if "loss" in k]
    if not keys:
        raise ValueError(f"{run / 'results.csv'} has no loss column")
    for r in rows:
        for k in keys:
            if not math.isfinite(float(r[k])):
                raise ValueError(f"loss {k} = {r[k]} (not finite) in {run / 'results.csv'}")
    return {k: float(rows[-1][k]) for k in keys}


def read_figures(step, workdir, out):
    """The figures of a finished step from the files it wrote (raises ValueError/OSError when they are missing)."""
    if step.kind in ("train", "ddp"):
        summaries = sorted(Path(workdir).glob("runs/train/*/summary.json"))
        if not summaries:
            raise ValueError(f"no runs/train/*/summary.json under {workdir}")
        summary = json.loads(summaries[-1].read_text())
        return {"mAP50": summary.get("mAP50"), "mAP50-95": summary.get("mAP50-95"),
                "last_losses": _finite_losses(summaries[-1].parent), "run": str(summaries[-1].parent)}
    doc = json.loads((Path(out) / "bench" / step.engine / "ablation.json").read_text())
    rows = [{k: r.get(k) for k in ("model", "gpu_ms", "gpu_ratio", "gpu_mem_infer_mb")} for r in doc["rows"]]
    if not any(r["gpu_ms"] is not None for r in rows):
        raise ValueError("the bench took no GPU figure (gpu_ms empty)")
    return {"gpu": doc.get("meta", {}).get("gpu"), "rows": rows,
            "peak_gpu_mem_infer_mb": max((r["gpu_mem_infer_mb"] or 0) for r in rows)}


def run_step(step, out):
    """Run one step as a subprocess in OUT/work/STEP (emptied first); its output goes to OUT/logs/STEP.log."""
    workdir = Path(out) / "work" / step.name
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    log = Path(out) / "logs" / f"{step.name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(paths.REPO_ROOT),
                                                                      os.environ.get("PYTHONPATH")]))}
    t0 = time.perf_counter()
    with open(log, "w") as f:
        f.write(f"$ {step.command()}\n")
        f.flush()
        rc = subprocess.call(CLI + step.argv, cwd=workdir, stdout=f, stderr=subprocess.STDOUT, env=env)
    return rc, time.perf_counter() - t0, log, workdir


def check(steps, out, runner=run_step, log=print):
    """Run every step (a failed one does not stop the others); a Result per step."""
    results = []
    for step in steps:
        log(f"[gpu_check] {step.name}: {step.command()}")
        rc, seconds, logfile, workdir = runner(step, out)
        result = Result(step.name, step.kind, step.engine, step.command(), "failed", rc, round(seconds, 1),
                        str(logfile))
        if rc != 0:
            result.problem = f"exit code {rc}; see {logfile}"
        else:
            try:
                result.figures = read_figures(step, workdir, out)
                result.status = "passed"
            except (OSError, ValueError, KeyError) as e:
                result.problem = f"{e}; see {logfile}"
        log(f"[gpu_check] {step.name}: {result.status} in {result.seconds:.0f} s"
            + (f" ({result.problem})" if result.problem else ""))
        results.append(result)
    return results


def _cell(x, fmt):
    return "—" if x is None else format(x, fmt)


def markdown(results, meta):
    lines = [f"# GPU check ({meta['date']})", "",
             f"GPUs: {meta['gpus']} × {meta.get('gpu_name') or '?'}; torch {meta.get('torch')}; "
             f"{meta['passed']}/{len(results)} steps passed; {meta['seconds']:.0f} s in all.", "",
             "## Steps", "", "| step | status | s | command | log |", "|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r.name} | {r.status}{' (' + r.problem + ')' if r.problem else ''} | {r.seconds:.0f} | "
                     f"`{r.command}` | {r.log} |")
    lines += ["", "## AMP training (embedded dataset) and DDP", "",
              "| step | mAP50 | mAP50-95 | last epoch's losses |", "|---|---|---|---|"]
    for r in results:
        if r.kind in ("train", "ddp") and r.status == "passed":
            losses = ", ".join(f"{k} {v:.4g}" for k, v in r.figures["last_losses"].items())
            lines.append(f"| {r.name} | {_cell(r.figures['mAP50'], '.4f')} | "
                         f"{_cell(r.figures['mAP50-95'], '.4f')} | {losses} |")
    lines += ["", "## float16 inference at 640 px (the bench)", "",
              "| engine | model | GPU ms | × baseline | peak GPU MB (inference) |", "|---|---|---|---|---|"]
    for r in results:
        if r.kind == "bench" and r.status == "passed":
            for row in r.figures["rows"]:
                lines.append(f"| {r.engine} | {row['model']} | {_cell(row['gpu_ms'], '.2f')} | "
                             f"{_cell(row['gpu_ratio'], '.3f')} | {_cell(row['gpu_mem_infer_mb'], '.1f')} |")
    return "\n".join(lines) + "\n"


def write_report(results, out, meta):
    """OUT/gpu_check.json and OUT/gpu_check.md, each written whole; returns their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {**meta, "passed": sum(r.status == "passed" for r in results)}
    doc = {"meta": meta, "steps": [asdict(r) for r in results]}
    files = out / "gpu_check.json", out / "gpu_check.md"
    paths.write_atomically(files[0], json.dumps(doc, indent=2, default=str) + "\n")
    paths.write_atomically(files[1], markdown(results, meta))
    return files


def main(argv=None, gpus=None, runner=run_step):
    p = argparse.ArgumentParser(prog="scripts/gpu_check.sh", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/gpu_check", help="report folder (default runs/gpu_check)")
    p.add_argument("--epochs", type=int, default=3, help="training epochs per model (default 3)")
    p.add_argument("--plan", action="store_true", help="print the commands for this machine and run nothing")
    args = p.parse_args(argv)
    if args.epochs < 1:
        print(f"--epochs {args.epochs}: give at least 1", file=sys.stderr)
        return 2
    gpus = cuda_gpus() if gpus is None else gpus
    if args.plan:
        for step in plan(max(gpus, 1), args.epochs, args.out):
            print(step.command())
        return 0
    if gpus < 1:
        print(NO_GPU)
        return 0
    t0 = time.perf_counter()
    out = Path(args.out).resolve()  # the steps run in their own working folders
    results = check(plan(gpus, args.epochs, out), out, runner)
    meta = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "gpus": gpus,
            "seconds": round(time.perf_counter() - t0, 1), **_device()}
    files = write_report(results, out, meta)
    print(f"wrote {files[0]} and {files[1]}")
    return 0 if all(r.status == "passed" for r in results) else 1


def _device():
    try:
        import torch

        return {"torch": torch.__version__, "gpu_name": torch.cuda.get_device_name(0) if torch.cuda.is_available()
                else None}
    except Exception:  # noqa: BLE001 - the report is written even if the name cannot be read
        return {}


if __name__ == "__main__":
    raise SystemExit(main())
