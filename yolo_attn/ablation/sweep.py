"""A multi-seed sweep: every variant trained with every seed through the training command, each validated on the
same split with its per-image match record; an interrupted sweep continues where it stopped.

Every run is two subprocesses, so runs share nothing but their files: ``python -m yolo_attn.cli.train`` (the same
data and flags for every run; ``--seed S --project DIR/runs --name <cfg-stem>-seed<S>``), then
``python -m yolo_attn.cli.val --weights <its best> --save-matches ...`` into the run's ``val/`` folder.

What a run folder holds decides what is left to do (``state``):

- ``finished``: ``val/summary.json`` and ``val/matches.npz`` exist (both written atomically by val, the record
  first): reused as it is;
- ``validate``: training's ``summary.json`` exists (written at its very end), or every epoch is in results.csv and
  best.pt exists (stopped during training's final validation, when yolov5 or ultralytics has already stripped
  last.pt, which then cannot be resumed): only the validation is run;
- ``resume``: ``weights/last.pt`` exists but training did not finish: ``train --resume <last.pt>``;
- ``train``: nothing usable: trained from the start.
"""
from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import yaml

from yolo_attn import engines

TRAIN, VAL = "yolo_attn.cli.train", "yolo_attn.cli.val"
STATES = ("finished", "validate", "resume", "train")


@dataclass(frozen=True)
class Run:
    cfg: Path
    seed: int
    folder: Path  # DIR/runs/<cfg-stem>-seed<seed>

    @property
    def variant(self) -> str:
        return self.cfg.stem

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def options_file(self) -> Optional[Path]:
        """The training options the engine wrote (``Engine.options_file``: yolov5's opt.yaml, ultralytics' args.yaml;
        None before)."""
        files = (self.folder / e.options_file for e in engines.registered() if e.options_file)
        return next((f for f in files if f.is_file()), None)

    @property
    def last_pt(self) -> Path:
        return self.folder / "weights" / "last.pt"

    @property
    def train_summary(self) -> Path:
        return self.folder / "summary.json"

    @property
    def val_summary(self) -> Path:
        return self.folder / "val" / "summary.json"

    @property
    def matches(self) -> Path:
        return self.folder / "val" / "matches.npz"


def runs_for(cfgs: Sequence[Path], seeds: Sequence[int], out: Path) -> list[Run]:
    """Every cfg with every seed, in sweep order (seed by seed, so that an early stop leaves every variant with
    the same seeds done)."""
    return [Run(Path(cfg), seed, Path(out) / "runs" / f"{Path(cfg).stem}-seed{seed}") for seed in seeds for cfg in cfgs]


def state(run: Run) -> str:
    if run.val_summary.is_file() and run.matches.is_file():
        return "finished"
    if run.train_summary.is_file() or _epochs_all_done(run):
        return "validate"
    if run.last_pt.is_file():
        return "resume"
    return "train"


def _epochs_all_done(run: Run) -> bool:
    results, opt = run.folder / "results.csv", run.options_file
    if not (results.is_file() and opt and (run.folder / "weights" / "best.pt").is_file()):
        return False
    try:
        epochs = (yaml.safe_load(opt.read_text(encoding="utf-8")) or {}).get("epochs")
        rows = [line for line in results.read_text(encoding="utf-8").splitlines()[1:] if line.strip()]
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(epochs, int) and len(rows) >= epochs


def plan(runs: Sequence[Run]) -> dict[Run, str]:
    return {run: state(run) for run in runs}


def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def launch(module: str, argv: Sequence[str], log: Path) -> int:
    """Run ``python -m module argv`` with its output appended to ``log``; the exit code."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a", encoding="utf-8") as f:
        f.write(f"\n$ {shlex.quote(sys.executable)} -m {module} {shlex.join(map(str, argv))}\n")
        f.flush()
        return subprocess.run([sys.executable, "-m", module, *map(str, argv)], stdout=f, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL).returncode


@dataclass
class Failure:
    run: Run
    stage: str  # training / validation
    code: int
    log: Path

    def describe(self) -> str:
        return f"{self.run.name}: {self.stage} failed (exit {self.code}); log {self.log}"


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"


class Sweep:
    """Carries out a plan: trains, resumes and validates what is not finished, one run at a time.

    ``train_args``: the training flags shared by every run (data, epochs, ...); ``val_args``: validation's
    (``--data`` of the split every run is validated on, ...). ``launcher(module, argv, log) -> exit code`` runs one
    command (a subprocess; tests pass a fake)."""

    def __init__(self, runs: Sequence[Run], train_args: Sequence[str], val_args: Sequence[str], logs: Path,
                 launcher: Callable = launch, clock: Callable = time.monotonic, log: Callable = print):
        self.runs, self.train_args, self.val_args, self.logs = list(runs), list(train_args), list(val_args), logs
        self.launcher, self.clock, self.log = launcher, clock, log
        self.failures: dict[Run, Failure] = {}
        self.seconds: list[float] = []  # wall time of each run done by this sweep

    def train_argv(self, run: Run) -> list[str]:
        return ["--cfg", str(run.cfg), *self.train_args, "--seed", str(run.seed), "--project",
                str(run.folder.parent), "--name", run.name, "--exist-ok"]

    def val_argv(self, run: Run) -> list[str]:
        weights = read_json(run.train_summary).get("weights") or run.folder / "weights" / "best.pt"
        return ["--weights", str(weights), *self.val_args, "--project", str(run.folder), "--name", "val",
                "--exist-ok", "--save-matches", str(run.matches)]

    def execute(self) -> dict[Run, Failure]:
        states = plan(self.runs)
        todo = [run for run in self.runs if states[run] != "finished"]
        counts = {s: sum(1 for v in states.values() if v == s) for s in STATES}
        self.log(f"sweep: {len(self.runs)} runs: {counts['finished']} finished (reused), {counts['validate']} to "
                 f"validate, {counts['resume']} to resume, {counts['train']} to train")
        earlier = finished_seconds(self.runs)
        if todo and earlier:
            self.log(f"sweep: ETA about {duration(earlier * len(todo))} from the finished runs' training times")
        for k, run in enumerate(todo, 1):
            self._one(run, states[run], f"[{k}/{len(todo)}] {run.variant} seed {run.seed}", len(todo) - k)
        return self.failures

    def _one(self, run: Run, what: str, label: str, left: int) -> None:
        log = self.logs / f"{run.name}.log"
        self.log(f"{label}: {'train' if what == 'train' else what} (log {log})")
        start = self.clock()
        if what == "train":  # a start that never reached a checkpoint: yolov5 would append to its results.csv
            (run.folder / "results.csv").unlink(missing_ok=True)
        steps = {"train": [("training", TRAIN, self.train_argv)], "resume": [("training", TRAIN, self._resume_argv)],
                 "validate": []}[what] + [("validation", VAL, self.val_argv)]
        for stage, module, argv in steps:
            code = self.launcher(module, argv(run), log)
            if code == 0 and stage == "validation" and state(run) != "finished":
                code = -1  # exited 0 without writing its summary and match record
            if code != 0:
                self.failures[run] = Failure(run, stage, code, log)
                self.log(f"{label}: FAILED in {stage} (exit {code}); see {log}; the sweep goes on")
                return
        self.seconds.append(self.clock() - start)
        result = read_json(run.val_summary)
        self.log(f"{label}: done in {duration(self.seconds[-1])}: mAP50 {result.get('mAP50', float('nan')):.4f} "
                 f"mAP50-95 {result.get('mAP50-95', float('nan')):.4f}; {self.eta(left)}")

    @staticmethod
    def _resume_argv(run: Run) -> list[str]:
        return ["--resume", str(run.last_pt)]

    def eta(self, left: int) -> str:
        if not left:
            return "all runs done"
        per_run = sum(self.seconds) / len(self.seconds)
        return f"{left} run(s) left, ETA {duration(per_run * left)} ({duration(per_run)} per run measured)"


def finished_seconds(runs: Sequence[Run]) -> Optional[float]:
    """Mean training time recorded by the finished runs (their summary.json), for an ETA before any run of this
    invocation ends; None when none recorded one."""
    found = [read_json(r.train_summary).get("seconds") for r in runs if state(r) == "finished"]
    found = [float(s) for s in found if isinstance(s, (int, float))]
    return sum(found) / len(found) if found else None
