"""yolov5's own DDP under torchrun, for real: 2 CPU processes (gloo), a tiny dataset, 1-2 epochs, --workers 0.

Every rank imports tests/cli/ddp_probe.py (``--import``), which saves its model's parameters at exit and can kill a
rank. The two launch forms are both used: ``yolo_attn.cli.train --nproc-per-node 2`` and a plain
``torch.distributed.run -m yolo_attn.cli.train``.
"""
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from yolo_attn.checkpoints import load_checkpoint
from yolo_attn.datasets import shapes
from yolo_attn.engines.yolov5.model import build_model, save_checkpoint
from yolo_attn.paths import MODEL_YAMLS

HERE = Path(__file__).resolve().parent
SUMMARY = re.compile(r"^mAP50 (\d\.\d{4}) mAP50-95 (\d\.\d{4})$", re.M)
COMMON = ["--epochs", "1", "--imgsz", "64", "--batch-size", "4", "--workers", "0", "--noplots", "--noval",
          "--device", "cpu", "--import", "ddp_probe"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return shapes.generate(tmp_path_factory.mktemp("ds") / "shapes", train=8, val=4, size=64, seed=5)


def tiny(name, folder):
    """A shipped model YAML at width 1/8, depth 1/3 (yolov5n-like, smaller): fast on a CPU."""
    d = yaml.safe_load((MODEL_YAMLS / name).read_text())
    d.update(width_multiple=0.125, depth_multiple=0.33)
    path = Path(folder) / f"tiny-{name}"
    path.write_text(yaml.safe_dump(d, sort_keys=False))
    return path


def run(tmp_path, *args, plain_torchrun=False, env=None, timeout=300):
    probe = tmp_path / "probe"
    probe.mkdir(exist_ok=True)
    env = dict(os.environ, PYTHONUNBUFFERED="1", DDP_PROBE_OUT=str(probe), **(env or {}),
               PYTHONPATH=os.pathsep.join([str(HERE), str(HERE.parents[1]), os.environ.get("PYTHONPATH", "")]))
    launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"] if plain_torchrun else []
    argv = [sys.executable, *launcher, "-m", "yolo_attn.cli.train", *map(str, args)]
    start = time.time()
    r = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=timeout, env=env)
    r.seconds = time.time() - start
    return r


def ranks_agree(tmp_path):
    """The two ranks' trained parameters, bit for bit, and that training changed them."""
    dumps = [torch.load(tmp_path / "probe" / f"rank{r}.pt") for r in range(2)]
    final0, final1 = dumps[0]["final"], dumps[1]["final"]
    assert final0.keys() == final1.keys()
    differ = [k for k in final0 if not torch.equal(final0[k], final1[k])]
    assert not differ, f"parameters differ between the ranks: {differ[:5]}"
    changed = [k for k in final0 if not torch.equal(final0[k], dumps[0]["initial"][k])]
    assert changed, "training changed no parameter"
    return final0


def one_finished_run(tmp_path, out):
    runs = [p for p in (tmp_path / "runs" / "train").iterdir()]
    assert len(runs) == 1, runs
    assert len(SUMMARY.findall(out)) == 1, out[-3000:]
    summary = json.loads((runs[0] / "summary.json").read_text())
    best = Path(summary["weights"])
    assert best.parent.parent == runs[0]
    return runs[0], summary, best


@pytest.mark.slow
def test_ddp_identity_start_two_cpu_processes(tmp_path, data, run_cli):
    base = build_model(tiny("yolov5s.yaml", tmp_path), nc=4)
    weights = save_checkpoint(base, tmp_path / "base.pt", opt={"imgsz": 64})
    r = run(tmp_path, "--nproc-per-node", "2", "--cfg", tiny("yolov5s-cbam.yaml", tmp_path), "--weights", weights,
            "--data", data, *COMMON)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-5000:]
    # said by rank 0 only: identity start, structural transfer, the loader (identity start's and yolov5's load)
    assert out.count("start as the identity") == 1 and out.count("yolo-attn: Transferred") == 1
    assert out.count(f"loading checkpoint {weights}") == 2
    params = ranks_agree(tmp_path)
    gammas = {k: v for k, v in params.items() if k.endswith(".gamma")}
    assert len(gammas) == 3 and all(v.abs().item() > 0 for v in gammas.values())  # identity start learned
    folder, summary, best = one_finished_run(tmp_path, out)
    assert summary["epochs"] == 1 and load_checkpoint(best)["model"] is not None
    v = run_cli("val", "--weights", best, "--workers", "0")
    assert v.returncode == 0 and SUMMARY.findall(v.stdout + v.stderr), (v.stdout + v.stderr)[-3000:]


@pytest.mark.slow
def test_plain_torchrun_from_scratch_with_sync_bn_and_one_image_per_process(tmp_path, data):
    """MSCAM's BN after global pooling gets one image per process; under --sync-bn it takes both ranks' images."""
    r = run(tmp_path, "--cfg", tiny("yolov5s-mscam.yaml", tmp_path), "--data", data, *COMMON[:4], "--batch-size",
            "2", *COMMON[6:], "--sync-bn", plain_torchrun=True)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-5000:]
    assert "Using SyncBatchNorm()" in out
    params = ranks_agree(tmp_path)
    assert any(".bn." in k for k in params)
    one_finished_run(tmp_path, out)
    assert out.count("Starting training for 1 epochs") == 1  # rank 1 prints nothing


@pytest.mark.slow
def test_killed_rank_ends_the_run_then_resume_finishes_it(tmp_path, data):
    cfg = tiny("yolov5s-se.yaml", tmp_path)
    args = ["--cfg", cfg, "--data", data, "--epochs", "2", *COMMON[2:]]
    killed = run(tmp_path, "--nproc-per-node", "2", *args, env={"DDP_PROBE_KILL": "1:3"}, timeout=240)
    out = killed.stdout + killed.stderr
    assert killed.returncode != 0, out[-3000:]
    assert "training failed: rank 1 was killed by signal 9" in out, out[-3000:]
    assert killed.seconds < 120
    last = tmp_path / "runs" / "train" / cfg.stem / "weights" / "last.pt"
    assert last.is_file() and not SUMMARY.findall(out)

    resumed = run(tmp_path, "--nproc-per-node", "2", "--resume", last, "--import", "ddp_probe")
    out = resumed.stdout + resumed.stderr
    assert resumed.returncode == 0, out[-5000:]
    folder, summary, _ = one_finished_run(tmp_path, out)
    assert summary["epochs"] == 2 and summary["resumed_from"] == str(last)
    assert out.count("yolo-attn: resuming") == 1
    ranks_agree(tmp_path)
