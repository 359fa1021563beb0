"""scripts/bench.sh (yolo_attn.cli.bench) in --quick mode: files, columns, a row per cfg, mAP from run folders."""
import csv
import json
import os
import time
from pathlib import Path

import pytest
import torch

import yolo_attn  # noqa: F401
from yolo_attn import paths
from yolo_attn.benchmarks import ablation
from yolo_attn.cli import bench

EXPECTED = ["model", "cfg", "attention", "params", "gflops", "gflops_attention", "gflops_yolov5", "cpu_ms", "cpu_ratio",
            "cpu_goal", "cpu_goal_met", "train_ms", "train_ratio", "train_goal_met", "cpu_mem_infer_mb",
            "cpu_mem_train_mb", "mAP50", "mAP50-95", "run"]


def _summary(folder, mtime=None, **fields):
    folder.mkdir(parents=True)
    path = folder / "summary.json"
    path.write_text(json.dumps(fields))
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


@pytest.fixture
def fake_runs(tmp_path):
    runs = tmp_path / "runs"
    now = time.time()
    # matched by the cfg field although the folder name differs (yolov5 increments names: se2, se3, ...)
    se_cfg = str(paths.MODEL_YAMLS / "yolov5s-se.yaml")
    _summary(runs / "se-run2", now, **{"mAP50": 0.71, "mAP50-95": 0.41, "cfg": se_cfg, "data": "shapes.yaml",
                                       "epochs": 15})
    # an older run of the same cfg loses to the newer one
    _summary(runs / "se-old", now - 3600, **{"mAP50": 0.11, "mAP50-95": 0.01, "cfg": "elsewhere/yolov5s-se.yaml",
                                             "data": "shapes.yaml", "epochs": 15})
    # no cfg field: matched by folder name
    _summary(runs / "yolov5s", now, **{"mAP50": 0.70, "mAP50-95": 0.40, "data": "shapes.yaml", "epochs": 15})
    # a folder named like a variant but whose cfg says otherwise is not taken for it
    _summary(runs / "yolov5s-aff", now, **{"mAP50": 0.99, "mAP50-95": 0.99, "cfg": "yolov5s-cbam.yaml"})
    (runs / "broken").mkdir()
    (runs / "broken" / "summary.json").write_text("{not json")
    return runs


def test_quick_run_writes_table_csv_and_plot(tmp_path, fake_runs, capsys):
    out = tmp_path / "bench"
    rc = bench.main(["--quick", "--cfgs", "yolov5s-se.yaml", "yolov5s-aff.yaml", "--device", "cpu",
                     "--runs", str(fake_runs), "--threads", "1", "--out", str(out)])
    assert rc in (None, 0)
    for name in ("ablation.csv", "ablation.md", "ablation.png", "ablation.json"):
        assert (out / name).stat().st_size > 0, name
    rows = list(csv.DictReader((out / "ablation.csv").open()))
    assert list(rows[0]) == EXPECTED  # no GPU columns with --device cpu
    assert [r["model"] for r in rows] == ["yolov5s", "yolov5s-se", "yolov5s-aff"]  # baseline added, first
    by = {r["model"]: r for r in rows}
    assert by["yolov5s"]["cpu_ratio"] == "1.0000" and by["yolov5s"]["cpu_goal"] == ""
    assert by["yolov5s-se"]["attention"] == "SE×3" and by["yolov5s-se"]["cpu_goal"] == "1.0500"
    assert by["yolov5s-aff"]["attention"] == "AFF×4" and by["yolov5s-aff"]["cpu_goal"] == "1.1000"
    assert int(by["yolov5s-se"]["params"]) == 7279349
    for r in rows:
        assert float(r["gflops"]) == pytest.approx(16.5 * (128 / 640) ** 2, rel=0.05)  # quick: 128 px
        assert float(r["cpu_ms"]) > 0 and float(r["train_ratio"]) > 0 and float(r["cpu_mem_train_mb"]) > 0
    assert float(by["yolov5s-aff"]["gflops_attention"]) > float(by["yolov5s-se"]["gflops_attention"]) > 0
    assert (by["yolov5s-se"]["mAP50"], by["yolov5s-se"]["mAP50-95"]) == ("0.7100", "0.4100")
    assert by["yolov5s-se"]["run"].endswith("se-run2")
    assert (by["yolov5s"]["mAP50"], by["yolov5s"]["mAP50-95"]) == ("0.7000", "0.4000")
    assert by["yolov5s-aff"]["mAP50"] == ""
    md = (out / "ablation.md").read_text()
    assert "--quick" in md and "| `yolov5s-se` | SE×3 | 7,279,349 |" in md
    assert "no run found" in md and "yolov5s-aff" in md
    printed = capsys.readouterr().out
    assert "| model | attention | params | GFLOPs |" in printed


def test_find_runs_without_models(tmp_path, fake_runs):
    class V:  # find_runs needs a name and a cfg path only
        def __init__(self, cfg):
            self.cfg, self.name = Path(cfg), Path(cfg).stem

    names = ("yolov5s.yaml", "yolov5s-se.yaml", "yolov5s-cbam.yaml", "yolov5s-aff.yaml")
    found = ablation.find_runs(fake_runs, [V(paths.MODEL_YAMLS / n) for n in names])
    assert found["yolov5s-se"]["mAP50-95"] == 0.41
    assert found["yolov5s"]["mAP50"] == 0.70
    assert found["yolov5s-cbam"]["mAP50"] == 0.99  # by its cfg field, from the folder named yolov5s-aff
    assert "yolov5s-aff" not in found


def test_markdown_adds_gpu_columns_and_marks_goals():
    row = dict(model="m", cfg="m.yaml", attention="CBAM×3", params=1234, gflops=16.5, gflops_attention=0.01,
               gflops_yolov5=16.5, cpu_ms=100.0, cpu_ratio=1.08, cpu_goal=1.05, cpu_goal_met=False, train_ms=5.0,
               train_ratio=1.2, train_goal_met=False, cpu_mem_infer_mb=1.0, cpu_mem_train_mb=2.0,
               gpu_ms=3.0, gpu_ratio=1.01, gpu_train_ratio=1.02, gpu_mem_infer_mb=9.0)
    table = ablation.markdown_table([row])
    assert "GPU ms" in table and "| 3.00 | 1.010 | 1.02 | 9.0 |" in table
    assert "≤1.05 ✗" in table and "1.20 ✗" in table
    assert ablation.columns([row])[-4:] == ablation.GPU_COLUMNS


@pytest.mark.parametrize("args,message", [
    (["--imgsz", "100"], "multiple of 32"),
    (["--cfgs", "no-such-model.yaml"], "not found"),
    (["--runs", "/no/such/folder"], "not a folder"),
])
def test_bad_input_is_a_message_and_exit_2(tmp_path, args, message, capsys):
    from yolo_attn.cli.pipeline import run_cli

    assert run_cli(bench.main, ["--quick", "--out", str(tmp_path / "o"), *args]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message given when there is no GPU")
def test_gpu_device_without_gpu_is_refused(tmp_path, capsys):
    from yolo_attn.cli.pipeline import run_cli

    assert run_cli(bench.main, ["--quick", "--device", "0", "--out", str(tmp_path / "o")]) == 2
    assert "no CUDA GPU" in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore:CUDA is not available")
def test_gpu_figures_code_path_runs(monkeypatch):
    """The GPU branch (fp16 inference, mixed-precision training step, CUDA peak memory) exercised on the CPU with
    the torch.cuda calls stubbed: this machine may have no GPU, and the branch must not first fail on one."""
    probe = torch.nn.Conv2d(3, 4, 3).half()
    try:
        probe(torch.zeros(1, 3, 8, 8, dtype=torch.float16))
    except RuntimeError:
        pytest.skip("no fp16 convolution on this CPU build")
    for name, value in [("synchronize", None), ("memory_allocated", 0), ("reset_peak_memory_stats", None),
                        ("max_memory_allocated", 3 * 2 ** 20), ("empty_cache", None)]:
        monkeypatch.setattr(torch.cuda, name, lambda *a, _v=value, **k: _v)
    variants = [ablation.build_variant(paths.resolve_cfg(n)) for n in ("yolov5s.yaml", "yolov5s-se.yaml")]
    rows = {v.name: {} for v in variants}
    settings = ablation.Settings(imgsz=64, rounds=1, warmup=0, train_imgsz=64, train_batch=1, train_rounds=1,
                                 train_warmup=0)
    ablation._measure_gpu(variants, rows, "yolov5s", torch.device("cpu"), settings)
    assert rows["yolov5s"]["gpu_ratio"] == 1.0 and rows["yolov5s"]["gpu_mem_infer_mb"] == 3.0
    assert set(rows["yolov5s-se"]) == {"gpu_ms", "gpu_ratio", "gpu_train_ratio", "gpu_mem_infer_mb"}
