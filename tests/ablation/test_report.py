"""The sweep's table on constructed records: mean ± std over seeds, the paired bootstrap difference and verdict,
failed seeds and a missing baseline named (never averaged away), runs trained or validated differently refused."""
import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from sweep_helpers import FakeCommands
from yolo_attn import engines
from yolo_attn.ablation import output, report
from yolo_attn.ablation.bootstrap import map_scores
from yolo_attn.ablation.sweep import Sweep, runs_for, state
from yolo_attn.errors import UsageError

QUALITY = {"base": 0.6, "better": 0.85, "same": 0.6, "worse": 0.35}
CFGS = [Path(f"/cfgs/{name}.yaml") for name in QUALITY]


def _swept(tmp_path, fake, cfgs=CFGS, seeds=(0, 1, 2)):
    runs = runs_for(cfgs, list(seeds), tmp_path)
    failures = Sweep(runs, [], ["--data", "d.yaml"], tmp_path / "logs", launcher=fake, log=lambda *_: None).execute()
    results = {r: report.load_result(r) for r in runs if state(r) == "finished"}
    return runs, failures, results


def _compare(tmp_path, fake, cfgs=CFGS, baseline="base", **kw):
    runs, failures, results = _swept(tmp_path, fake, cfgs)
    return report.compare(cfgs, [0, 1, 2], results, failures, baseline, **kw), results


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """One sweep of the four detectors, 3 seeds, compared (shared by the tests that only read it)."""
    return _compare(tmp_path_factory.mktemp("swept"), FakeCommands(QUALITY))


def test_verdicts_follow_the_known_quality_of_the_detectors(swept):
    comparison, results = swept
    rows = {r["model"]: r for r in comparison.rows}
    assert comparison.complete and comparison.notes == []
    assert [rows[n]["verdict_mAP50-95"] for n in QUALITY] == ["baseline", "better", "within noise", "worse"]
    assert [rows[n]["verdict_mAP50"] for n in QUALITY] == ["baseline", "better", "within noise", "worse"]
    for name in QUALITY:
        per_seed = [map_scores(r.record).map50_95 for r in results.values() if r.run.variant == name]
        assert rows[name]["mAP50-95_per_seed"] == per_seed and len(per_seed) == 3
        assert rows[name]["mAP50-95"] == pytest.approx(np.mean(per_seed))
        assert rows[name]["mAP50-95_std"] == pytest.approx(np.std(per_seed, ddof=1))
    better = rows["better"]
    assert better["d_mAP50-95"] == pytest.approx(better["mAP50-95"] - rows["base"]["mAP50-95"])
    assert 0 < better["d_mAP50-95_low"] < better["d_mAP50-95"] < better["d_mAP50-95_high"]
    same = rows["same"]
    assert same["d_mAP50-95_low"] < 0 < same["d_mAP50-95_high"]
    assert "d_mAP50" not in rows["base"]


def test_a_wider_confidence_level_gives_a_wider_interval(tmp_path):
    rows = {}
    runs, failures, results = _swept(tmp_path, FakeCommands(QUALITY), cfgs=[CFGS[0], CFGS[2]])
    for ci in (0.8, 0.99):
        comparison = report.compare([CFGS[0], CFGS[2]], [0, 1, 2], results, failures, "base", ci=ci)
        rows[ci] = comparison.rows[1]
    assert rows[0.8]["d_mAP50-95"] == rows[0.99]["d_mAP50-95"]
    assert rows[0.99]["d_mAP50-95_low"] < rows[0.8]["d_mAP50-95_low"]
    assert rows[0.99]["d_mAP50-95_high"] > rows[0.8]["d_mAP50-95_high"]


def test_failed_seeds_are_named_not_averaged_away(tmp_path):
    fake = FakeCommands(QUALITY, fail={("better-seed1", "yolo_attn.cli.train"): 1})
    comparison, _ = _compare(tmp_path, fake, cfgs=CFGS[:2])
    row = next(r for r in comparison.rows if r["model"] == "better")
    assert not comparison.complete
    assert (row["seeds"], row["seeds_asked"], row["seeds_done"], row["seeds_failed"]) == (2, 3, [0, 2], [1])
    assert len(row["mAP50-95_per_seed"]) == 2
    assert output._seeds_cell(row) == "2 of 3 (seed 1 failed)"
    assert any(n.startswith("better: seed 1: training failed (exit 1); log ") for n in comparison.notes)
    assert "better: mean, std and interval over seed(s) 0, 2 only" in comparison.notes


def test_a_missing_baseline_gives_no_differences_and_an_incomplete_sweep(tmp_path):
    fail = {(f"base-seed{s}", "yolo_attn.cli.train"): 1 for s in range(3)}
    comparison, _ = _compare(tmp_path, FakeCommands(QUALITY, fail=fail))
    assert not comparison.complete
    assert "the baseline base has no finished run: no differences computed" in comparison.notes
    assert "base: no finished run: not compared" in comparison.notes
    assert all("d_mAP50-95" not in r for r in comparison.rows)
    base = comparison.rows[0]
    assert base["mAP50-95"] is None and output._mean_std_cell("mAP50-95")(base) == "-"


def test_one_seed_has_no_spread(tmp_path):
    runs, failures, results = _swept(tmp_path, FakeCommands(QUALITY), seeds=[0])
    comparison = report.compare(CFGS, [0], results, failures, "base")
    row = comparison.rows[1]
    assert math.isnan(row["mAP50-95_std"]) and " ± " not in output._mean_std_cell("mAP50-95")(row)
    assert row["verdict_mAP50-95"] in ("better", "within noise")  # one seed each is still a paired comparison


@pytest.mark.parametrize("where, key, message", [
    ("summary", "imgsz", "differ in the validation setting 'imgsz'"),
    ("summary", "data", "differ in the validation setting 'data'"),
    ("options", "imgsz", "differ in the training option 'imgsz'"),
    ("options", "data", "differ in the training option 'data'"),
    ("options", "epochs", "differ in the training option 'epochs'"),
])
def test_runs_trained_or_validated_differently_are_refused(tmp_path, where, key, message):
    runs, failures, results = _swept(tmp_path, FakeCommands(QUALITY))
    odd = runs[5]  # same-seed1
    path = odd.val_summary if where == "summary" else odd.folder / "opt.yaml"
    doc = json.loads(path.read_text()) if where == "summary" else yaml.safe_load(path.read_text())
    doc[key] = 320 if key in ("imgsz", "epochs") else "other/data.yaml"
    path.write_text(json.dumps(doc) if where == "summary" else yaml.safe_dump(doc))
    results = {r: report.load_result(r) for r in runs}
    with pytest.raises(UsageError, match=message) as e:
        report.compare(CFGS, [0, 1, 2], results, failures, "base")
    assert "same-seed1" in str(e.value)


def test_ultralytics_runs_trained_differently_are_refused(tmp_path):
    """ultralytics' args.yaml: its hyper-parameters are settings of their own, each compared."""
    runs, failures, _ = _swept(tmp_path, FakeCommands(QUALITY, options_file="args.yaml"))
    common = {"mosaic": 1.0, "batch": 16, "val": False}
    for run in runs:
        args = yaml.safe_load((run.folder / "args.yaml").read_text())
        (run.folder / "args.yaml").write_text(yaml.safe_dump({**args, **common}))
    results = {r: report.load_result(r) for r in runs}
    assert report.compare(CFGS, [0, 1, 2], results, failures, "base").complete
    odd = runs[5].folder / "args.yaml"
    agreed = yaml.safe_load(odd.read_text())
    for key, value in (("mosaic", 0.5), ("batch", 8), ("val", True)):
        odd.write_text(yaml.safe_dump({**agreed, key: value}))
        results = {r: report.load_result(r) for r in runs}
        with pytest.raises(UsageError, match=f"differ in the training option '{key}'.*same-seed1"):
            report.compare(CFGS, [0, 1, 2], results, failures, "base")
    odd.write_text(yaml.safe_dump(agreed))
    odd.rename(runs[5].folder / "opt.yaml")
    results = {r: report.load_result(r) for r in runs}
    with pytest.raises(UsageError, match="trained by different engines"):
        report.compare(CFGS, [0, 1, 2], results, failures, "base")


def test_the_compared_ultralytics_options_are_ultralytics_settings():
    from yolo_attn.engines.ultralytics.options import offline_environment

    offline_environment()
    from ultralytics.cfg import DEFAULT_CFG_DICT

    unknown = [k for k in engines.get("ultralytics").compared_options if k not in DEFAULT_CFG_DICT]
    assert not unknown, (f"ultralytics no longer has the settings {unknown}: update COMPARED_OPTIONS in "
                         f"engines/ultralytics/sweep.py")


def test_runs_validated_on_different_images_are_refused(tmp_path):
    runs, failures, results = _swept(tmp_path, FakeCommands(QUALITY))
    from sweep_helpers import detector_record

    detector_record(0, 0.6, n_images=59).save(runs[2].matches)
    results = {r: report.load_result(r) for r in runs}
    with pytest.raises(UsageError, match=r"do not cover the same validation images.*runs, in order: base-seed0"):
        report.compare(CFGS, [0, 1, 2], results, failures, "base")


def test_coco_columns_appear_on_coco_format_data(tmp_path, swept):
    comparison, _ = _compare(tmp_path, FakeCommands(QUALITY, coco=True), cfgs=CFGS[:2])
    row = comparison.rows[0]
    assert row["coco_APm"] == pytest.approx(0.21) and row["coco_APm_std"] == pytest.approx(0.01)
    headers = output.table.markdown_table(output.schema(), comparison.rows).splitlines()[0]
    assert "| COCO AP | AP_S | AP_M | AP_L |" in headers
    assert "COCO AP" not in output.table.markdown_table(output.schema(), swept[0].rows)


def test_written_files_hold_the_same_rows(tmp_path, swept):
    comparison = report.Comparison([dict(r) for r in swept[0].rows], [], True)
    for row in comparison.rows:
        row.update(attention="-", params=1000, gflops=16.5, cpu_ms=100.0, cpu_ratio=1.0)
    meta = {"baseline": "base", "seeds": 3, "command": "scripts/ablate.sh ...", "date": "today", "train_args": [],
            "data": "d.yaml", "resamples": 1000, "notes": ["a note"],
            "cost": dict(imgsz=640, rounds=30, threads=2, cpu="cpu", quick=False, nc=3)}
    out = tmp_path / "out"
    out.mkdir()
    files = output.write_all(comparison.rows, meta, out, 0.95)
    assert all(f.stat().st_size > 0 for f in files)
    csv_rows = list(csv.DictReader((out / "ablation.csv").open()))
    doc = json.loads((out / "ablation.json").read_text())
    assert [c["key"] for c in doc["columns"]] == list(csv_rows[0])
    better_csv, better_json = csv_rows[1], doc["rows"][1]
    assert better_csv["verdict_mAP50-95"] == better_json["verdict_mAP50-95"] == "better"
    assert float(better_csv["d_mAP50-95"]) == pytest.approx(better_json["d_mAP50-95"], abs=5e-5)
    md = (out / "ablation.md").read_text()
    r = comparison.rows[1]
    cell = f"| {r['d_mAP50-95']:+.4f} [{r['d_mAP50-95_low']:+.4f}, {r['d_mAP50-95_high']:+.4f}] | better |"
    assert cell in md and "| ΔmAP50-95 [95% CI] | mAP50-95 verdict |" in md
    assert f"| {r['mAP50-95']:.4f} ± {r['mAP50-95_std']:.4f} |" in md and "- a note" in md


@pytest.mark.slow
@pytest.mark.parametrize("where", ["summary", "options"])
def test_data_yamls_are_compared_by_content(tmp_path, where):
    """Each run keeps its own resolved copy of the data YAML in its run folder: copies of the same YAML are the same
    data; a copy with other content is not."""
    runs, failures, results = _swept(tmp_path, FakeCommands(QUALITY))
    for k, run in enumerate(runs):
        copy = run.folder / f"data-{where}.yaml"
        copy.write_text(f"# run {k}\npath: /data/shapes\ntrain: images/train\nval: images/val\nnames: [a, b]\n")
        path = run.val_summary if where == "summary" else run.folder / "opt.yaml"
        doc = json.loads(path.read_text()) if where == "summary" else yaml.safe_load(path.read_text())
        doc["data"] = str(copy)
        path.write_text(json.dumps(doc) if where == "summary" else yaml.safe_dump(doc))
    results = {r: report.load_result(r) for r in runs}
    assert report.compare(CFGS, [0, 1, 2], results, failures, "base").complete
    odd = runs[5].folder / f"data-{where}.yaml"
    odd.write_text(odd.read_text().replace("names: [a, b]", "names: [a, c]"))
    results = {r: report.load_result(r) for r in runs}
    with pytest.raises(UsageError, match="differ in the"):
        report.compare(CFGS, [0, 1, 2], results, failures, "base")
