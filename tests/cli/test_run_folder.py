"""A run folder is self-contained and a command writes only into its own: the data YAML and the identity-start model
YAML are written into the run folder (never /tmp), yolov5 is told to use exactly that folder, and --resume of a run
folder that was renamed continues there without touching the run that now has its old name."""
import hashlib
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
import torch
import yaml

from yolo_attn.cli.pipeline import run_cli
from yolo_attn.datasets import shapes

REPO = Path(__file__).resolve().parents[2]


class Started(Exception):
    """yolov5's training was reached; carries its options."""


@pytest.fixture
def started(monkeypatch, quiet_yolov5):
    import yolov5.train

    def stop(opt, callbacks=None):
        raise Started(opt)

    monkeypatch.setattr(yolov5.train, "main", stop)


def relative_dataset(root):
    """A dataset whose YAML has a relative path: (what yolo-attn once resolved into /tmp/yolo-attn-*-data.yaml)."""
    shapes.generate(root / "sets" / "mine", train=4, val=2, size=64, seed=3)
    d = yaml.safe_load((root / "sets" / "mine" / "shapes.yaml").read_text())
    d["path"] = "mine"
    (root / "sets" / "mine.yaml").write_text(yaml.safe_dump(d, sort_keys=False))
    return root / "sets" / "mine.yaml"


def temp_files():
    return set(Path(tempfile.gettempdir()).glob("yolo-attn-*"))


def test_the_data_yaml_is_written_into_the_run_folder_yolov5_is_given(tmp_path, monkeypatch, started):
    from yolo_attn.cli import train

    monkeypatch.chdir(tmp_path)
    data = relative_dataset(tmp_path)
    (tmp_path / "runs" / "train" / "yolov5s").mkdir(parents=True)  # taken: the run is numbered, as yolov5 does
    before, original = temp_files(), data.read_bytes()
    with pytest.raises(Started) as e:
        run_cli(train.main, ["--cfg", "yolov5s.yaml", "--data", str(data), "--epochs", "1", "--imgsz", "64"])
    opt = e.value.args[0]
    run = tmp_path / "runs" / "train" / "yolov5s2"
    assert (opt.project, opt.name, opt.exist_ok) == (str(run.parent), "yolov5s2", True)  # exactly this folder
    assert opt.data == str(run / "data.yaml")
    written = yaml.safe_load((run / "data.yaml").read_text())
    assert written["path"] == str(tmp_path / "sets" / "mine") and tuple(written["names"].values()) == tuple(shapes.NAMES)
    assert temp_files() == before and data.read_bytes() == original


def test_the_identity_start_model_yaml_is_written_into_the_run_folder(tmp_path, monkeypatch, started):
    from yolo_attn.cli import train
    from yolo_attn.engines.yolov5.model import build_model, save_checkpoint

    monkeypatch.chdir(tmp_path)
    dataset = shapes.generate(tmp_path / "ds", train=4, val=2, size=64, seed=3)
    weights = save_checkpoint(build_model(REPO / "model_yamls" / "yolov5s.yaml", nc=4), tmp_path / "base.pt")
    before = temp_files()
    with pytest.raises(Started) as e:
        run_cli(train.main, ["--cfg", "yolov5s-cbam.yaml", "--weights", str(weights), "--data", str(dataset),
                             "--epochs", "1", "--imgsz", "64"])
    opt = e.value.args[0]
    run = tmp_path / "runs" / "train" / "yolov5s-cbam"
    assert opt.cfg == str(run / "yolov5s-cbam.yaml")
    assert yaml.safe_load(Path(opt.cfg).read_text())["identity_start"] == [5, 8, 11]  # the three CBAM rows
    assert temp_files() == before


def digest(folder):
    return {p.relative_to(folder): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(folder).rglob("*")) if p.is_file()}


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
def test_resuming_a_renamed_run_continues_it_there_and_leaves_the_other_run_alone(tmp_path):
    data = relative_dataset(tmp_path)
    cfg = yaml.safe_load((REPO / "model_yamls" / "yolov5s.yaml").read_text())
    cfg["width_multiple"] = 0.125
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    args = ["--cfg", "tiny.yaml", "--data", str(data), "--epochs", "3", "--imgsz", "64", "--batch-size", "4",
            "--workers", "0", "--noplots", "--noval"]
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(KILLED_AFTER_FIRST_EPOCH), *args], cwd=tmp_path,
                       capture_output=True, text=True, timeout=900, env=env)
    runs = tmp_path / "runs" / "train"
    assert r.returncode == -signal.SIGKILL, (r.stdout + r.stderr)[-3000:]
    recorded = yaml.safe_load((runs / "tiny" / "opt.yaml").read_text())
    (runs / "tiny").rename(runs / "renamed")
    other = runs / "tiny"  # another run now lives under the old name
    (other / "weights").mkdir(parents=True)
    (other / "weights" / "last.pt").write_bytes(b"the other run's checkpoint")
    (other / "opt.yaml").write_text("the other run's options\n")
    (other / "results.csv").write_text("the other run's results\n")
    before = digest(other)

    r = subprocess.run([sys.executable, "-m", "yolo_attn.cli.train", "--resume", str(runs / "renamed")],
                       cwd=tmp_path, capture_output=True, text=True, timeout=900, env=env)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    assert digest(other) == before
    assert recorded["data"] == str(runs / "tiny" / "data.yaml")  # the run's own copy, not a temporary file
    assert f"this run was started in {other} and is now in {runs / 'renamed'}: it resumes here" in out
    opt = yaml.safe_load((runs / "renamed" / "opt.yaml").read_text())
    assert opt["save_dir"] == str(runs / "renamed") and opt["data"] == str(runs / "renamed" / "data.yaml")
    assert (runs / "renamed" / "summary.json").is_file()
    assert [int(line.split(",")[0]) for line in (runs / "renamed" / "results.csv").read_text().splitlines()[1:]] == \
        [0, 1, 2]
    best = torch.load(runs / "renamed" / "weights" / "best.pt", weights_only=False)  # (a file this test made)
    assert best["epoch"] == -1
