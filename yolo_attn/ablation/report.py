"""The sweep's table: per variant its cost (the bench's measurements), its accuracy over seeds, and the paired
bootstrap difference to the baseline with a verdict.

Runs are compared only when they were trained and validated alike (``check_comparable``: the same data, image
size and training settings in every run's options (yolov5's opt.yaml, ultralytics' args.yaml) and validation
summary, the same validation images in the same order in every match record). A variant with failed or missing
seeds is shown with the seeds it has, and the missing ones are named in the seeds column and the notes: nothing is
averaged over fewer runs silently.
"""
from __future__ import annotations

import math
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import yaml

from yolo_attn import engines
from yolo_attn.ablation.bootstrap import map_scores, paired_bootstrap
from yolo_attn.matches import MatchRecord, check_aligned
from yolo_attn.ablation.sweep import Run, read_json, state_error
from yolo_attn.errors import UsageError

METRICS = ("mAP50", "mAP50-95")
FIRST_ENGINE = "yolov5"  # the engine of sweeps and tables written before the engine's name was recorded
COCO = (("coco_AP", "COCO AP", "AP"), ("coco_APs", "AP_S", "APs"), ("coco_APm", "AP_M", "APm"),
        ("coco_APl", "AP_L", "APl"))
VALIDATION_OPTIONS = ("data", "imgsz")


@dataclass
class RunResult:
    run: Run
    record: MatchRecord
    summary: dict  # the validation's summary.json
    options: dict  # the training's options file (opt.yaml or args.yaml)
    compared: tuple = ()  # the options that must agree (its engine's)

    @property
    def scores(self):
        return map_scores(self.record)


def load_result(run: Run) -> RunResult:
    """A finished run's record, validation summary and training options; a UsageError naming the file when one is
    not what the sweep wrote."""
    file = run.options_file
    try:
        options = yaml.safe_load(file.read_text(encoding="utf-8")) if file else {}
    except (OSError, ValueError, yaml.YAMLError, RecursionError) as e:
        raise state_error(file, f"not readable as YAML ({str(e).splitlines()[0][:200]})") from None
    if not isinstance(options or {}, dict):
        raise state_error(file, f"a YAML {type(options).__name__}, where the engine writes a mapping of options")
    # the options every run of a comparison must share: what in its engine's options file matters
    compared = next((e.compared_options for e in engines.registered() if file and e.options_file == file.name), ())
    try:
        record = MatchRecord.load(run.matches)
    except (OSError, ValueError, KeyError, TypeError, IndexError, EOFError, zipfile.BadZipFile) as e:
        raise UsageError(f"{run.matches}: not a readable match record ({str(e)[:300]}); delete {run.folder / 'val'} "
                         "and run the sweep again to validate that run anew") from None
    summary = read_json(run.val_summary)
    stats = summary.get("coco_stats")
    if stats is not None and not (isinstance(stats, dict) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in stats.values())):
        raise state_error(run.val_summary, "its coco_stats: is not a mapping of names to numbers")
    return RunResult(run, record, summary, options or {}, compared)


def check_comparable(results: Sequence[RunResult]) -> None:
    """A UsageError naming the runs unless every run was trained and validated alike, on the same images."""
    compared = sorted({r.compared for r in results})
    if len(compared) > 1:
        raise UsageError("the runs were trained by different engines (some have opt.yaml, some args.yaml): their mAPs "
                         "are not comparable")
    for source, keys in (("options", compared[0] if compared else ()), ("summary", VALIDATION_OPTIONS)):
        for key in keys:
            groups: dict[str, list[str]] = {}
            for r in results:
                groups.setdefault(_comparable(key, getattr(r, source).get(key)), []).append(r.run.name)
            if len(groups) > 1:
                what = "training option" if source == "options" else "validation setting"
                detail = "; ".join(f"{value}: {', '.join(names)}" for value, names in groups.items())
                raise UsageError(f"the runs differ in the {what} {key!r}, so their mAPs are not comparable: "
                                 f"{detail}. Train every variant with the same data and flags (a new --out for a "
                                 "different setting).")
    try:
        check_aligned([r.record for r in results])
    except ValueError as e:
        names = ", ".join(r.run.name for r in results)
        raise UsageError(f"{e} (runs, in order: {names})") from e


def _comparable(key, value):
    """What must agree between runs: for ``data``, the data YAML's content (each run keeps its own resolved copy in
    its run folder, so the paths always differ); else the value itself."""
    if key == "data" and isinstance(value, str) and Path(value).is_file():
        try:
            return repr(yaml.safe_load(Path(value).read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            pass
    return repr(value)


def mean_std(values: Sequence[float]) -> tuple:
    """(mean, sample std with ddof=1) or (None, None) without values; std is NaN for one value."""
    if not len(values):
        return None, None
    v = np.asarray(values, dtype=float)
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else math.nan


@dataclass
class Comparison:
    rows: list
    notes: list
    complete: bool  # every run finished and every variant compared with the baseline


def compare(cfgs: Sequence[Path], seeds: Sequence[int], results: dict, failures: dict, baseline: str,
            n_resamples: int = 1000, ci: float = 0.95, seed: int = 0) -> Comparison:
    """One row per cfg: seeds, mean ± std of mAP50 / mAP50-95 (and COCO AP when there), and against the baseline
    the seed-averaged difference with its paired bootstrap interval and verdict.

    ``results``: {Run: RunResult} of the finished runs; ``failures``: {Run: sweep.Failure}."""
    check_comparable(list(results.values()))
    by_variant = {Path(c).stem: sorted((r for r in results.values() if r.run.cfg.stem == Path(c).stem),
                                       key=lambda r: r.run.seed) for c in cfgs}
    notes, rows = [], []
    for cfg in cfgs:
        name = Path(cfg).stem
        done = by_variant[name]
        row = {"model": name, "cfg": str(cfg), **_seed_fields(name, seeds, done, failures, notes)}
        for i, metric in enumerate(METRICS):
            values = [r.scores[i] for r in done]
            row[metric], row[f"{metric}_std"] = mean_std(values)
            row[f"{metric}_per_seed"] = values
        for key, _, stat in COCO:
            values = [r.summary["coco_stats"][stat] for r in done if stat in (r.summary.get("coco_stats") or {})]
            if len(values) == len(done):
                row[key], row[f"{key}_std"] = mean_std(values)
        rows.append(row)
    base = by_variant[baseline]
    if not base:
        notes.append(f"the baseline {baseline} has no finished run: no differences computed")
    for row in rows:
        variant = by_variant[row["model"]]
        if row["model"] == baseline:
            row.update({f"verdict_{m}": "baseline" for m in METRICS})
        elif base and variant:
            result = paired_bootstrap([r.record for r in base], [r.record for r in variant], n_resamples, ci, seed)
            for m, c in zip(METRICS, (result.map50, result.map50_95)):
                row.update({f"d_{m}": c.difference, f"d_{m}_low": c.low, f"d_{m}_high": c.high, f"verdict_{m}": c.verdict})
    complete = not failures and all(len(v) == len(seeds) for v in by_variant.values())  # so the baseline has runs
    return Comparison(rows, notes, complete)


def _seed_fields(name, seeds, done, failures, notes):
    have = [r.run.seed for r in done]
    failed = {f.run.seed: f for f in failures.values() if f.run.cfg.stem == name}
    not_run = [s for s in seeds if s not in have and s not in failed]
    for s, f in sorted(failed.items()):
        notes.append(f"{name}: seed {s}: {f.stage} failed (exit {f.code}); log {f.log}")
    if not_run:
        notes.append(f"{name}: seed(s) {', '.join(map(str, not_run))} not run (the sweep was stopped)")
    if len(have) < len(seeds):
        notes.append(f"{name}: mean, std and interval over seed(s) {', '.join(map(str, have)) or 'none'} only"
                     if have else f"{name}: no finished run: not compared")
    return {"seeds": len(have), "seeds_asked": len(seeds), "seeds_done": have, "seeds_failed": sorted(failed),
            "seeds_not_run": not_run}
