"""A real sweep through the training and validation commands: 2 tiny variants x 2 seeds, a few seconds per run."""
import json

import pytest
import yaml

from yolo_attn import paths
from yolo_attn.ablation import sweep
from yolo_attn.ablation.bootstrap import map_scores
from yolo_attn.matches import MatchRecord
from yolo_attn.cli import ablate
from yolo_attn.cli.pipeline import run_cli
from yolo_attn.datasets import shapes


@pytest.mark.slow
def test_a_real_sweep_of_two_variants_and_two_seeds(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the runs' subprocesses: one thread each on a small machine
    monkeypatch.chdir(tmp_path)
    data = shapes.generate(tmp_path / "ds", train=16, val=8, size=64, seed=5)
    for name in ("yolov5s", "yolov5s-se"):
        cfg = yaml.safe_load((paths.MODEL_YAMLS / f"{name}.yaml").read_text())
        cfg["width_multiple"] = 0.25
        (tmp_path / f"tiny-{name}.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    argv = ["--cfgs", "tiny-yolov5s.yaml", "tiny-yolov5s-se.yaml", "--seeds", "2", "--data", str(data), "--out",
            "sweep", "--quick-bench", "--epochs", "1", "--imgsz", "64", "--batch-size", "8", "--workers", "0",
            "--noplots"]
    assert run_cli(ablate.main, argv) == 0
    out = tmp_path / "sweep"
    rows = {r["model"]: r for r in json.loads((out / "ablation.json").read_text())["rows"]}
    for stem in ("tiny-yolov5s", "tiny-yolov5s-se"):
        per_seed = []
        for seed in (0, 1):
            folder = out / "runs" / f"{stem}-seed{seed}"
            opt = yaml.safe_load((folder / "opt.yaml").read_text())
            assert (opt["seed"], opt["imgsz"], opt["epochs"], opt["cfg"]) == (seed, 64, 1, str(tmp_path / f"{stem}.yaml"))
            summary = json.loads((folder / "val" / "summary.json").read_text())
            record = MatchRecord.load(folder / "val" / "matches.npz")
            assert record.n_images == 8 and summary["matches"] == str(folder / "val" / "matches.npz")
            scores = map_scores(record)  # the record scores exactly what val printed
            assert (round(scores.map50, 4), round(scores.map50_95, 4)) == (summary["mAP50"], summary["mAP50-95"])
            per_seed.append(scores.map50_95)
        assert rows[stem]["mAP50-95_per_seed"] == per_seed and rows[stem]["seeds"] == 2
    assert rows["tiny-yolov5s-se"]["verdict_mAP50-95"] in ("better", "within noise", "worse")
    assert (out / "ablation.png").stat().st_size > 0

    launched = []
    spy = lambda *a: launched.append(a) or sweep.launch(*a)  # noqa: E731
    assert run_cli(lambda a: ablate.main(a, launcher=spy), argv) == 0
    assert launched == []  # every run finished: nothing trained or validated again


@pytest.mark.slow
def test_a_real_sweep_of_ultralytics_variants(tmp_path, monkeypatch):
    """yolo11n and yolo11n-se, 2 seeds, 1 epoch at 64 px: trained and validated by ultralytics, the records scored by
    ultralytics' AP rule, the same command again trains nothing."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.chdir(tmp_path)
    data = shapes.generate(tmp_path / "ds", train=16, val=8, size=64, seed=5)
    argv = ["--cfgs", "yolo11n.yaml", "yolo11n-se.yaml", "--seeds", "2", "--data", str(data), "--out", "sweep",
            "--quick-bench", "epochs=1", "imgsz=64", "batch=8", "workers=0", "plots=false"]
    assert run_cli(ablate.main, argv) == 0
    out = tmp_path / "sweep"
    doc = json.loads((out / "ablation.json").read_text())
    rows = {r["model"]: r for r in doc["rows"]}
    assert doc["meta"]["engine"] == "ultralytics"
    for stem in ("yolo11n", "yolo11n-se"):
        per_seed = []
        for seed in (0, 1):
            folder = out / "runs" / f"{stem}-seed{seed}"
            args = yaml.safe_load((folder / "args.yaml").read_text())
            assert (args["seed"], args["imgsz"], args["epochs"]) == (seed, 64, 1)
            assert args["model"] == str(paths.MODEL_YAMLS / "ultralytics" / f"{stem}.yaml")
            summary = json.loads((folder / "val" / "summary.json").read_text())
            record = MatchRecord.load(folder / "val" / "matches.npz")
            assert record.n_images == 8 and record.ap_rule == "ultralytics"
            assert summary["engine"] == "ultralytics" and summary["matches"] == str(folder / "val" / "matches.npz")
            scores = map_scores(record)
            assert (round(scores.map50, 4), round(scores.map50_95, 4)) == (summary["mAP50"], summary["mAP50-95"])
            per_seed.append(scores.map50_95)
        assert rows[stem]["mAP50-95_per_seed"] == per_seed and rows[stem]["seeds"] == 2
    assert rows["yolo11n-se"]["attention"] == "SE×3" and rows["yolo11n-se"]["params"] > rows["yolo11n"]["params"]
    assert rows["yolo11n-se"]["verdict_mAP50-95"] in ("better", "within noise", "worse")

    launched = []
    spy = lambda *a: launched.append(a) or sweep.launch(*a)  # noqa: E731
    assert run_cli(lambda a: ablate.main(a, launcher=spy), argv) == 0
    assert launched == []
