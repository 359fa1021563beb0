"""--resume: a training run killed after its first epoch continues from last.pt in a fresh process, keeps --noval,
and ends with the same summary; what cannot be resumed is refused with a message."""
import csv
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from tiny_models import tiny_yolov5
import torch
import yaml

from yolo_attn.cli.pipeline import run_cli as run_main
from yolo_attn.datasets import shapes

REPO = Path(__file__).resolve().parents[2]
SUMMARY = re.compile(r"^mAP50 (\d\.\d{4}) mAP50-95 (\d\.\d{4})$", re.M)
VAL_LINE = re.compile(r"^\s+all\s+4\s+\d+\s", re.M)  # a validation of the 4 val images

# Runs yolo-attn train, killed (SIGKILL: no clean-up, as a power cut or the OOM killer) right after the first
# epoch's last.pt is written.
KILLED_AFTER_FIRST_EPOCH = """
    import os, signal, sys
    import yolo_attn
    from yolov5.utils import callbacks
    from yolo_attn.cli import train

    class KilledAfterFirstEpoch(callbacks.Callbacks):
        def __init__(self):
            super().__init__()
            self.register_action("on_model_save", "kill",
                                 lambda last, epoch, *a: epoch == 0 and os.kill(os.getpid(), signal.SIGKILL))

    callbacks.Callbacks = KilledAfterFirstEpoch
    train.main(sys.argv[1:])
"""


@pytest.mark.slow
def test_an_interrupted_run_resumes_and_finishes_with_the_summary(run_cli, tmp_path):
    data = shapes.generate(tmp_path / "ds", train=8, val=4, size=64, seed=5)
    cfg = yaml.safe_load((REPO / "model_yamls" / "yolov5s-cbam.yaml").read_text())
    cfg["width_multiple"] = 0.25  # small and quick; the CBAM layers stay
    (tmp_path / "tiny-cbam.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    args = ["--cfg", "tiny-cbam.yaml", "--data", str(data), "--epochs", "3", "--imgsz", "64", "--batch-size", "8",
            "--workers", "0", "--noplots", "--noval"]
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(KILLED_AFTER_FIRST_EPOCH), *args], cwd=tmp_path,
                       capture_output=True, text=True, timeout=600, env=env)
    run_dir = tmp_path / "runs" / "train" / "tiny-cbam"
    last = run_dir / "weights" / "last.pt"
    assert r.returncode == -signal.SIGKILL, (r.stdout + r.stderr)[-3000:]
    assert last.is_file() and not (run_dir / "summary.json").exists()
    assert not SUMMARY.findall(r.stdout + r.stderr)
    assert yaml.safe_load((run_dir / "opt.yaml").read_text())["yolo_attn_noval"] is True

    r = run_cli("train", "--resume", last.relative_to(tmp_path))
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    assert f"yolo-attn: resuming {run_dir} from last.pt (epoch 1 of 3 done)" in out
    assert f"Resuming training from {last} from epoch 1 to 3 total epochs" in out
    assert "Transferred 379/379 items" in out  # every tensor of last.pt, CBAM's included
    line = SUMMARY.findall(out)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert line and (f"{summary['mAP50']:.4f}", f"{summary['mAP50-95']:.4f}") == line[-1]
    assert summary["epochs"] == 3 and summary["resumed_from"] == str(last)
    assert Path(summary["weights"]) == run_dir / "weights" / "best.pt"
    # --noval kept: epoch 1 was not validated, the final epoch was (and best.pt once more at the end)
    assert len(VAL_LINE.findall(out)) == 2, out[-4000:]
    with open(run_dir / "results.csv") as f:
        epochs = [int(row[0]) for row in list(csv.reader(f))[1:]]
    assert epochs == [0, 1, 2]  # each epoch trained once: the run continued, it did not start over
    best = torch.load(summary["weights"], weights_only=False)  # (a file this test made)
    assert best["epoch"] == -1 and best["optimizer"] is None  # finished: stripped as usual
    assert [type(m).__name__ for m in best["model"].model].count("CBAM") == 3


def test_what_cannot_be_resumed_is_refused_clearly(tmp_path, monkeypatch, capsys):
    from yolo_attn.engines.yolov5.model import save_checkpoint
    from yolo_attn.cli import train

    monkeypatch.chdir(tmp_path)
    assert run_main(train.main, ["--resume"]) == 2
    assert "there is none under" in capsys.readouterr().err
    assert run_main(train.main, ["--resume", "nowhere/last.pt"]) == 2
    assert "checkpoint nowhere/last.pt not found" in capsys.readouterr().err
    assert run_main(train.main, ["--resume", "x.pt", "--epochs", "10"]) == 2
    assert "drop --epochs 10" in capsys.readouterr().err
    finished = save_checkpoint(tiny_yolov5(), tmp_path / "runs" / "train" / "a" / "weights" / "last.pt",
                               opt={"epochs": 3})
    assert run_main(train.main, ["--resume", str(finished)]) == 2
    err = capsys.readouterr().err
    assert "is from a finished run" in err and f"--weights {finished}" in err and "Traceback" not in err
    assert run_main(train.main, ["--resume"]) == 2  # the newest last.pt: the same one
    assert "is from a finished run" in capsys.readouterr().err
    (tmp_path / "junk.pt").write_text("x")
    assert run_main(train.main, ["--resume", "junk.pt"]) == 2
    assert "is not a yolov5/yolo-attn checkpoint" in capsys.readouterr().err


@pytest.mark.parametrize("argv,expected", [
    (["--resume"], ("", [])),
    (["--resume", "a/last.pt"], ("a/last.pt", [])),
    (["--resume=a/last.pt"], ("a/last.pt", [])),
    (["--resume", "--workers", "0"], ("", ["--workers", "0"])),
    (["--cfg", "x.yaml"], (None, [])),
])
def test_resume_option(argv, expected):
    from yolo_attn.cli.train import parser

    opt, rest = parser().parse(argv)
    assert (opt.resume, rest) == expected
