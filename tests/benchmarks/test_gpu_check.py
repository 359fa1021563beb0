"""scripts/gpu_check.sh without a GPU: the skip, the plan as documented, and the report from fake steps."""
import json
import re
import subprocess
import sys

from yolo_attn import paths
from yolo_attn.benchmarks import gpu_check


def test_no_gpu_exits_0_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "report"
    calls = []
    assert gpu_check.main(["--out", str(out)], gpus=0, runner=lambda *a: calls.append(a)) == 0
    assert capsys.readouterr().out.strip() == gpu_check.NO_GPU
    assert not out.exists() and not calls


def test_no_gpu_on_this_machine_through_the_script(tmp_path):
    """The real detection (this machine has no CUDA): the module itself exits 0 with the message."""
    import torch

    if torch.cuda.is_available():
        return
    r = subprocess.run([sys.executable, "-m", "yolo_attn.benchmarks.gpu_check", "--out", str(tmp_path / "r")],
                       capture_output=True, text=True, cwd=paths.REPO_ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    assert gpu_check.NO_GPU in r.stdout
    assert not (tmp_path / "r").exists()


def test_plan_is_as_documented():
    text = (paths.REPO_ROOT / "docs" / "gpu.md").read_text()
    block = re.search(r"<!-- gpu-check-plan -->\n```text\n(.*?)```", text, re.S).group(1)
    assert [s.command() for s in gpu_check.plan(1)] == block.strip().splitlines()


def test_plan_uses_every_gpu_for_ddp():
    ddp = next(s for s in gpu_check.plan(4) if s.kind == "ddp")
    assert ddp.argv[ddp.argv.index("--nproc-per-node") + 1] == "4"
    assert ddp.argv[ddp.argv.index("--device") + 1] == "0,1,2,3"
    assert ddp.argv[ddp.argv.index("--batch-size") + 1] == "64"


def _fake_runner(fail=()):
    """A runner that writes what the real commands would (run folders, the bench's ablation.json)."""
    def run(step, out):
        work = out / "work" / step.name
        work.mkdir(parents=True)
        log = out / "logs" / f"{step.name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("fake\n")
        if step.name in fail:
            return 3, 1.0, log, work
        if step.kind == "bench":
            bench = out / "bench" / step.engine
            bench.mkdir(parents=True)
            rows = [{"model": "base", "gpu_ms": 2.0, "gpu_ratio": 1.0, "gpu_mem_infer_mb": 50.0},
                    {"model": "cbam", "gpu_ms": 2.4, "gpu_ratio": 1.2, "gpu_mem_infer_mb": 61.5}]
            (bench / "ablation.json").write_text(json.dumps({"meta": {"gpu": "Fake GPU"}, "rows": rows}))
        else:
            run_dir = work / "runs" / "train" / step.name
            run_dir.mkdir(parents=True)
            (run_dir / "summary.json").write_text(json.dumps({"mAP50": 0.5, "mAP50-95": 0.25}))
            (run_dir / "results.csv").write_text("  epoch,  train/box_loss,  train/obj_loss\n0, 0.1, 0.2\n"
                                                 "1, 0.09, 0.15\n")
        return 0, 2.0, log, work
    return run


def test_report_from_fake_steps(tmp_path):
    out = tmp_path / "report"
    assert gpu_check.main(["--out", str(out)], gpus=1, runner=_fake_runner()) == 0
    doc = json.loads((out / "gpu_check.json").read_text())
    steps = {s["name"]: s for s in doc["steps"]}
    assert [s.name for s in gpu_check.plan(1)] == list(steps)
    assert all(s["status"] == "passed" for s in steps.values())
    assert steps["train-yolov5-yolov5s-cbam"]["figures"]["last_losses"] == {"train/box_loss": 0.09,
                                                                             "train/obj_loss": 0.15}
    assert steps["bench-yolov5"]["figures"]["peak_gpu_mem_infer_mb"] == 61.5
    md = (out / "gpu_check.md").read_text()
    assert "| yolov5 | cbam | 2.40 | 1.200 | 61.5 |" in md
    assert "9/9 steps passed" in md and "| train-ultralytics-yolo26n-c3k2cbam | 0.5000 | 0.2500 |" in md
    assert not list(out.glob("*.tmp*")) and not list(out.glob(".*"))


def test_failed_step_reported_with_its_log(tmp_path):
    out = tmp_path / "report"
    rc = gpu_check.main(["--out", str(out)], gpus=1, runner=_fake_runner(fail={"ddp-yolov5"}))
    assert rc == 1
    steps = {s["name"]: s for s in json.loads((out / "gpu_check.json").read_text())["steps"]}
    assert steps["ddp-yolov5"]["status"] == "failed" and steps["ddp-yolov5"]["returncode"] == 3
    assert str(out / "logs" / "ddp-yolov5.log") in steps["ddp-yolov5"]["problem"]
    assert steps["bench-ultralytics"]["status"] == "passed"  # the steps after it still ran
    assert "ddp-yolov5 | failed" in (out / "gpu_check.md").read_text()


def test_non_finite_loss_fails_the_step(tmp_path):
    out = tmp_path / "report"
    real = _fake_runner()

    def runner(step, out_):
        rc, s, log, work = real(step, out_)
        if step.name == "train-ultralytics-yolo26n":
            csv_path = next(work.glob("runs/train/*/results.csv"))
            csv_path.write_text("epoch,train/box_loss\n0,nan\n")
        return rc, s, log, work

    assert gpu_check.main(["--out", str(out)], gpus=1, runner=runner) == 1
    steps = {s["name"]: s for s in json.loads((out / "gpu_check.json").read_text())["steps"]}
    assert "not finite" in steps["train-ultralytics-yolo26n"]["problem"]
