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

Several runs at a time (``--jobs N``): each of N ``Slot``s is a share of the machine (a number of CPU threads, or
one GPU) that one run at a time uses, passed to its subprocesses as environment variables (and, for a GPU, ``--device
0`` for its one visible device). Runs start in sweep order as slots free up; each writes only its own run folder and
log, so their order of finishing changes nothing: the failures are returned, and the table made, in sweep order.
"""
from __future__ import annotations

import json
import shlex
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import yaml

from yolo_attn import engines
from yolo_attn.errors import UsageError
from yolo_attn.runs import confined

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


def state_error(path: Path, problem: str) -> UsageError:
    """A sweep state file that is not what the sweep writes (edited, or copied from elsewhere): which file, what is
    wrong, what to do."""
    return UsageError(f"{path}: {problem}. The sweep writes this file itself; delete it (or the run folder it is in) "
                      f"and run the same command again to redo that step.")


def read_json(path: Path) -> dict:
    """A sweep state file (summary.json, sweep.json): {} when absent; a JSON object, else a UsageError naming it."""
    path = Path(path)
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as e:  # ValueError: not JSON, or not UTF-8
        raise state_error(path, f"not readable as JSON ({str(e).splitlines()[0][:200]})") from None
    if not isinstance(data, dict):
        raise state_error(path, f"a JSON {type(data).__name__}, where the sweep writes an object")
    return data


def number(value, default=float("nan")) -> float:
    """A metric read from a state file as a float (``default`` when it is not a number)."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else default


def launch(module: str, argv: Sequence[str], log: Path, env: Optional[dict] = None) -> int:
    """Run ``python -m module argv`` with its output appended to ``log`` and ``env`` added to this process's
    environment; the exit code."""
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {str(k): str(v) for k, v in (env or {}).items()}
    with open(log, "a", encoding="utf-8") as f:
        shown = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
        f.write(f"\n$ {shown + ' ' if shown else ''}{shlex.quote(sys.executable)} -m {module} "
                f"{shlex.join(map(str, argv))}\n")
        f.flush()
        return subprocess.run([sys.executable, "-m", module, *map(str, argv)], stdout=f, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, env={**os.environ, **env}).returncode


@dataclass(frozen=True)
class Slot:
    """One run at a time's share of the machine: ``env`` for its subprocesses (threads, or CUDA_VISIBLE_DEVICES),
    ``args`` added to its training and validation commands (``--device 0`` on a GPU)."""
    env: dict = field(default_factory=dict)
    args: tuple = ()
    name: str = "this machine"


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
    """Carries out a plan: trains, resumes and validates what is not finished, ``len(slots)`` runs at a time.

    ``train_args``: the training flags shared by every run (data, epochs, ...); ``val_args``: validation's
    (``--data`` of the split every run is validated on, ...). ``launcher(module, argv, log, env) -> exit code`` runs
    one command (a subprocess; tests pass a fake); ``env`` is the run's slot's."""

    def __init__(self, runs: Sequence[Run], train_args: Sequence[str], val_args: Sequence[str], logs: Path,
                 launcher: Callable = launch, clock: Callable = time.monotonic, log: Callable = print,
                 slots: Sequence[Slot] = (Slot(),)):
        self.runs, self.train_args, self.val_args, self.logs = list(runs), list(train_args), list(val_args), logs
        self.launcher, self.clock, self._print = launcher, clock, log
        self.slots = list(slots) or [Slot()]
        self.failures: dict[Run, Failure] = {}
        self.seconds: list[float] = []  # wall time of each run done by this sweep
        self._lock = threading.Lock()
        self._left = 0  # runs of this invocation not yet done (or failed)

    def log(self, line: str) -> None:
        with self._lock:
            self._print(line)

    def train_argv(self, run: Run) -> list[str]:
        return ["--cfg", str(run.cfg), *self.train_args, "--seed", str(run.seed), "--project",
                str(run.folder.parent), "--name", run.name, "--exist-ok"]

    def val_argv(self, run: Run) -> list[str]:
        weights = read_json(run.train_summary).get("weights") or run.folder / "weights" / "best.pt"
        if not isinstance(weights, (str, Path)) or not confined(weights, run.folder):
            raise state_error(run.train_summary, f"its weights: {str(weights)[:200]!r} is not a file in the run "
                                                 f"folder {run.folder}, and a sweep validates only its own runs")
        return ["--weights", str(weights), *self.val_args, "--project", str(run.folder), "--name", "val",
                "--exist-ok", "--save-matches", str(run.matches)]

    def execute(self) -> dict[Run, Failure]:
        states = plan(self.runs)
        todo = [run for run in self.runs if states[run] != "finished"]
        counts = {s: sum(1 for v in states.values() if v == s) for s in STATES}
        self.log(f"sweep: {len(self.runs)} runs: {counts['finished']} finished (reused), {counts['validate']} to "
                 f"validate, {counts['resume']} to resume, {counts['train']} to train")
        jobs = min(len(self.slots), len(todo)) or 1
        earlier = finished_seconds(self.runs)
        if todo and earlier:
            self.log(f"sweep: ETA about {duration(earlier * -(-len(todo) // jobs))} from the finished runs' training "
                     "times" + (f", {jobs} at a time" if jobs > 1 else ""))
        if jobs > 1:
            self.log(f"sweep: {jobs} runs at a time: " + "; ".join(s.name for s in self.slots[:jobs]))
        labels = {run: f"[{k}/{len(todo)}] {run.variant} seed {run.seed}" for k, run in enumerate(todo, 1)}
        self._left = len(todo)
        if jobs == 1:
            for run in todo:
                self._one(run, states[run], labels[run], self.slots[0])
        else:
            self._concurrently(todo, states, labels, self.slots[:jobs])
        return {run: self.failures[run] for run in self.runs if run in self.failures}  # sweep order

    def _concurrently(self, todo: list[Run], states: dict, labels: dict, slots: list[Slot]) -> None:
        """One thread per slot takes the next run in sweep order until none is left. An exception in one (Ctrl-C in
        a launcher) starts no further run; the others' runs finish, then it is raised here. Ctrl-C here (the
        terminal's reaches the subprocesses too) waits for the runs to stop, then is raised."""
        pending, errors = list(todo), []

        def worker(slot):
            while True:
                with self._lock:
                    if not pending or errors:
                        return
                    run = pending.pop(0)
                try:
                    self._one(run, states[run], labels[run], slot)
                except BaseException as e:  # noqa: B036  (KeyboardInterrupt included: re-raised by the main thread)
                    with self._lock:
                        errors.append(e)
                    return

        workers = [threading.Thread(target=worker, args=(slot,), daemon=True) for slot in slots]
        for w in workers:
            w.start()
        try:
            for w in workers:
                while w.is_alive():
                    w.join(0.2)
        except KeyboardInterrupt:
            with self._lock:
                pending.clear()
            for w in workers:
                w.join()
            raise
        if errors:
            raise errors[0]

    def _one(self, run: Run, what: str, label: str, slot: Slot) -> None:
        log = self.logs / f"{run.name}.log"
        self.log(f"{label}: {'train' if what == 'train' else what} (log {log})"
                 + (f" on {slot.name}" if len(self.slots) > 1 else ""))
        start = self.clock()
        if what == "train":  # a start that never reached a checkpoint: yolov5 would append to its results.csv
            (run.folder / "results.csv").unlink(missing_ok=True)
        steps = {"train": [("training", TRAIN, self.train_argv)], "resume": [("training", TRAIN, self._resume_argv)],
                 "validate": []}[what] + [("validation", VAL, self.val_argv)]
        for stage, module, argv in steps:
            extra = list(slot.args) if argv != self._resume_argv else []  # a resumed run keeps its own options
            code = self.launcher(module, argv(run) + extra, log, dict(slot.env))
            if code == 0 and stage == "validation" and state(run) != "finished":
                code = -1  # exited 0 without writing its summary and match record
            if code != 0:
                with self._lock:
                    self.failures[run] = Failure(run, stage, code, log)
                    self._left -= 1
                self.log(f"{label}: FAILED in {stage} (exit {code}); see {log}; the sweep goes on")
                return
        seconds = self.clock() - start
        with self._lock:
            self.seconds.append(seconds)
            self._left -= 1
            left = self._left
        result = read_json(run.val_summary)
        self.log(f"{label}: done in {duration(seconds)}: mAP50 {number(result.get('mAP50')):.4f} "
                 f"mAP50-95 {number(result.get('mAP50-95')):.4f}; {self.eta(left)}")

    @staticmethod
    def _resume_argv(run: Run) -> list[str]:
        return ["--resume", str(run.last_pt)]

    def eta(self, left: int) -> str:
        """With N runs at a time: the runs left in rounds of N, each as long as the mean run so far (a run still
        going counts as a whole one)."""
        if not left:
            return "all runs done"
        with self._lock:
            per_run = sum(self.seconds) / len(self.seconds)
        jobs = min(len(self.slots), left)
        rounds = -(-left // jobs)
        return (f"{left} run(s) left, ETA {duration(per_run * rounds)} ({duration(per_run)} per run measured"
                + (f", {jobs} at a time)" if jobs > 1 else ")"))


def finished_seconds(runs: Sequence[Run]) -> Optional[float]:
    """Mean training time recorded by the finished runs (their summary.json), for an ETA before any run of this
    invocation ends; None when none recorded one."""
    found = [read_json(r.train_summary).get("seconds") for r in runs if state(r) == "finished"]
    found = [float(s) for s in found if isinstance(s, (int, float))]
    return sum(found) / len(found) if found else None


def machine_slots(jobs: Optional[int], device: Optional[str], cores: int, gpus: Sequence[str],
                  threads: Optional[int] = None) -> list[Slot]:
    """The slots of ``--jobs`` on this machine. ``device``: the --device the training flags give (None: none);
    ``cores``: the CPU cores this process may use; ``gpus``: the visible CUDA devices' ids; ``threads``: the CPU
    threads to share out (default ``cores``).

    GPUs (and no --device): one run per GPU by default, each seeing only its GPU (CUDA_VISIBLE_DEVICES) as
    ``--device 0``. CPU: one run per 2 cores by default, the threads shared out evenly (a run's dataloader workers
    and its main process together keep more than one core busy at times; 2 threads each oversubscribe nothing and
    hold half the memory of one run per core); ``--jobs`` up to one run per core. A --device other than cpu pins
    every run to it: one run at a time. ``jobs`` out of range: a BadParameter (exit 2)."""
    from yolo_attn import threads as threads_
    from yolo_attn.errors import BadParameter

    if jobs is not None and jobs < 1:
        raise BadParameter("jobs", "{name} " + f"{jobs}: give the number of runs at a time, at least 1 (default: "
                                               "one per GPU, or one per 2 CPU cores)")
    cpu = device is not None and device.strip().lower() == "cpu"
    if device is not None and not cpu:
        if jobs not in (None, 1):
            raise BadParameter("jobs", "{name} " + f"{jobs} with --device {device}: every run would share that "
                                                   "device. Leave out --device: the sweep gives each run its own "
                                                   "GPU (or --device cpu for CPU runs)")
        return [Slot(name=f"device {device}")]
    if gpus and not cpu:
        n = len(gpus) if jobs is None else jobs
        if n > len(gpus):
            raise BadParameter("jobs", "{name} " + f"{jobs}: this machine has {len(gpus)} visible GPU(s) "
                                                   f"({','.join(gpus)}), one run per GPU: give --jobs {len(gpus)} "
                                                   "or less (or --device cpu for CPU runs)")
        return [Slot({"CUDA_VISIBLE_DEVICES": g}, ("--device", "0"), f"GPU {g}") for g in gpus[:n]]
    n = max(1, cores // 2) if jobs is None else jobs
    if n > cores:
        raise BadParameter("jobs", "{name} " + f"{jobs}: this machine has {cores} CPU core(s), and a run needs at "
                                               f"least one: give --jobs {cores} or less")
    total = max(n, threads or cores)
    shares = [total // n + (1 if k < total % n else 0) for k in range(n)]
    return [Slot(threads_.child_env(t), (), f"{t} CPU thread(s)") for t in shares]


def visible_gpus() -> list[str]:
    """The ids of the CUDA devices this process sees (as CUDA_VISIBLE_DEVICES names them when it is set)."""
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    listed = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    return (listed if "CUDA_VISIBLE_DEVICES" in os.environ else [str(k) for k in range(count)])[:count]
