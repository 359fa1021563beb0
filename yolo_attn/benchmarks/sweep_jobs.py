"""The sweep's --jobs and a training's threads on this machine: the same 2-variant x 2-seed sweep with --jobs 1 and
--jobs 2 (wall time, ratio; goal <= 0.65), and one training's time with 1 thread and with every core.

    flock /tmp/cpu.lock python -m yolo_attn.benchmarks.sweep_jobs [--cfgs yolov5s.yaml yolov5s-cbam.yaml]
        [--epochs 1] [--imgsz 96] [--out /tmp/sweep_jobs]

Each sweep runs from scratch in its own folder (scripts/ablate.sh's command, embedded dataset); prints figures,
and whether both sweeps gave the same mAPs. Nothing else should run meanwhile.
"""
import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from yolo_attn import threads


def timed(argv):
    start = time.perf_counter()
    code = subprocess.run([sys.executable, "-m", *argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
    return time.perf_counter() - start, code


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cfgs", nargs="+", default=["yolov5s.yaml", "yolov5s-cbam.yaml"])
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--imgsz", type=int, default=96)
    p.add_argument("--out", default="/tmp/sweep_jobs")
    a = p.parse_args(argv)
    out = Path(a.out)
    shutil.rmtree(out, ignore_errors=True)
    flags = ["--epochs", str(a.epochs), "--imgsz", str(a.imgsz)]
    print(f"cores: {threads.cores()}; cfgs {' '.join(a.cfgs)}; {' '.join(flags)}; embedded dataset", flush=True)
    walls, maps = {}, {}
    for jobs in (1, 2):
        folder = out / f"jobs{jobs}"
        walls[jobs], code = timed(["yolo_attn.cli.ablate", "--cfgs", *a.cfgs, "--seeds", "2", "--out", str(folder),
                                   "--quick-bench", "--jobs", str(jobs), *flags])
        rows = json.loads((folder / "ablation.json").read_text())["rows"] if (folder / "ablation.json").is_file() else []
        maps[jobs] = {r["model"]: r.get("mAP50-95_per_seed") for r in rows}
        print(f"sweep --jobs {jobs}: {walls[jobs]:.1f} s (exit {code})", flush=True)
    print(f"wall-time ratio jobs 2 / jobs 1: {walls[2] / walls[1]:.2f} (goal <= 0.65)")
    print(f"same mAP50-95 per seed for jobs 1 and 2: {maps[1] == maps[2]} ({maps[1]} vs {maps[2]})")
    for n in (1, threads.cores()):
        wall, code = timed(["yolo_attn.cli.train", "--cfg", a.cfgs[0], *flags, "--threads", str(n), "--project",
                            str(out / "train"), "--name", f"threads{n}", "--exist-ok"])
        print(f"one training ({a.epochs} epoch(s), start-up included) with --threads {n}: {wall:.1f} s (exit {code})",
              flush=True)


if __name__ == "__main__":
    main()
