"""Mistakes yolov5 would turn into a traceback, a silent change or a wrong result: refused up front with one message
naming the file or flag and the fix, exit code 2, nothing of the user's changed and yolov5 never started."""
import os
import subprocess
from pathlib import Path

import pytest
import torch
import yaml

from yolo_attn.cli.pipeline import run_cli
from yolo_attn.datasets import shapes

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _quiet(quiet_yolov5):
    """(yolov5's logger keeps the stream of the test that imported it: only warnings, so that nothing is written
    to a closed capture)"""


@pytest.fixture
def cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def no_yolov5_run(monkeypatch):
    """yolov5's train/val must not start: reaching them fails the test at once."""
    import yolov5.train
    import yolov5.val

    def reached(*args, **kwargs):
        pytest.fail("yolov5 started")

    monkeypatch.setattr(yolov5.train, "main", reached)
    monkeypatch.setattr(yolov5.val, "run", reached)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return shapes.generate(tmp_path_factory.mktemp("ds") / "ds", train=4, val=2, size=64, seed=3)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    from yolo_attn.engines.yolov5.model import build_model, save_checkpoint

    cfg = yaml.safe_load((REPO / "model_yamls" / "yolov5s.yaml").read_text())
    cfg["width_multiple"] = 0.125
    model = build_model(cfg, nc=4)
    folder = tmp_path_factory.mktemp("w")
    no_nc = folder / "no_nc.pt"
    bare = save_checkpoint(model, folder / "bare.pt")
    ckpt = torch.load(bare, weights_only=False)  # (a file this test made)
    del ckpt["model"].nc
    torch.save(ckpt, no_nc)
    return {"no_nc": no_nc, "gone_data": save_checkpoint(model, folder / "gone.pt", opt={"imgsz": 64,
            "data": str(folder / "yolo-attn-deleted-data.yaml")}), "no_data": bare}


def refused(capsys, main, argv, *needles):
    code = run_cli(main, argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, f"{needle!r} not in {err}"
    return err


def train_main():
    from yolo_attn.cli import train

    return train.main


@pytest.mark.parametrize("flags, needles", [
    (["--batch-size", "0"], ["--batch-size 0: give the number of images per batch (at least 1)"]),
    (["--epochs", "0"], ["--epochs 0: give the number of passes over the training images, at least 1"]),
    (["--epochs", "-1"], ["--epochs -1"]),
    (["--imgsz", "0"], ["--imgsz 0: yolov5 would silently train at 64", "multiples of 32 from 64 up"]),
    (["--img", "32"], ["--imgsz 32"]),
])
def test_train_flags_yolov5_takes_on_trust(cwd, capsys, dataset, no_yolov5_run, flags, needles):
    refused(capsys, train_main(), ["--cfg", "yolov5s.yaml", "--data", str(dataset), *flags], *needles)
    assert not (cwd / "runs").exists()


def test_val_flags(cwd, capsys, dataset, weights, no_yolov5_run):
    from yolo_attn.cli import val

    refused(capsys, val.main, ["--weights", str(weights["no_data"]), "--data", str(dataset), "--imgsz", "0"],
            "--imgsz 0: sizes that work are multiples of 32")
    refused(capsys, val.main, ["--weights", str(weights["no_data"]), "--data", str(dataset), "--batch-size", "0"],
            "--batch-size 0")
    assert not (cwd / "runs").exists()


@pytest.fixture
def read_only(tmp_path):
    """A folder nothing can be created in, also for root (chattr +i), else the test is skipped."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("root, and no chattr to make a folder read-only")
    yield folder
    subprocess.run(["chattr", "-i", str(folder)], check=True)


def test_a_read_only_project(cwd, capsys, dataset, weights, read_only, no_yolov5_run):
    from yolo_attn.cli import val

    project = read_only / "runs"
    refused(capsys, train_main(), ["--cfg", "yolov5s.yaml", "--data", str(dataset), "--project", str(project)],
            f"--project {project}: cannot create the run folder there", "Choose a folder you can write to")
    refused(capsys, val.main, ["--weights", str(weights["no_data"]), "--data", str(dataset), "--project",
                               str(project)], f"--project {project}: cannot create the run folder there")


def write_data(tmp_path, dataset, **fields):
    d = yaml.safe_load(Path(dataset).read_text())
    d.update(fields)
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(d, sort_keys=False))
    return path


def test_names_given_as_text(cwd, capsys, dataset, no_yolov5_run):
    data = write_data(cwd, dataset, names="red")
    refused(capsys, train_main(), ["--cfg", "yolov5s.yaml", "--data", str(data)],
            f"{data}: names: must be the list of class names, e.g. names: ['red']")


def test_nc_that_disagrees_with_names(cwd, capsys, dataset, no_yolov5_run):
    data = write_data(cwd, dataset, nc=10, names=["a", "b"])
    refused(capsys, train_main(), ["--cfg", "yolov5s.yaml", "--data", str(data)],
            f"{data}: nc: 10 but names: lists 2 class(es). yolov5 would silently train 2 classes")


def test_a_checkpoint_without_a_class_count(cwd, capsys, dataset, weights, no_yolov5_run):
    from yolo_attn.cli import transfer, val

    fix = "Its detection head has 4 classes: save it again with that count"
    refused(capsys, val.main, ["--weights", str(weights["no_nc"]), "--data", str(dataset)],
            f"{weights['no_nc']}: its model has no class count (.nc = None)", fix)
    refused(capsys, transfer.main, ["--weights", str(weights["no_nc"]), "--cfg", "yolov5s-cbam.yaml"], fix)


def test_val_never_validates_on_another_dataset_in_place_of_a_missing_one(cwd, capsys, weights, no_yolov5_run):
    from yolo_attn.cli import val

    refused(capsys, val.main, ["--weights", str(weights["gone_data"])],
            f"was trained on {Path(weights['gone_data']).parent / 'yolo-attn-deleted-data.yaml'}, which no longer "
            f"exists. Give the dataset with --data")
    refused(capsys, val.main, ["--weights", str(weights["no_data"])],
            "does not say which dataset it was trained on; give it with --data")


def test_insert_with_broken_args_or_base(cwd, capsys):
    from yolo_attn.cli import insert

    refused(capsys, insert.main, ["--base", "yolov5s.yaml", "--layer", "se", "--after", "4", "--args", "[0.1",
                                  "--out", "x.yaml"], "--args '[0.1' is not valid YAML", "--args '[0.125]'")
    broken = cwd / "broken.yaml"
    broken.write_text("backbone: [[-1, 1, Conv]]\nhead: [[-1, 1, Detect, []]]\n")
    refused(capsys, insert.main, ["--base", str(broken), "--layer", "se", "--after", "0", "--out", "x.yaml"],
            f"--base {broken}: layer 0 (backbone row 0): expected [from, number, module, args]")
    broken.write_text("backbone: 3\nhead: []\n")
    refused(capsys, insert.main, ["--base", str(broken), "--layer", "se", "--after", "0", "--out", "x.yaml"],
            "backbone: and head: must each be a list of rows")
    broken.write_bytes(b"\xff\xfe\x00garbage")
    refused(capsys, insert.main, ["--base", str(broken), "--layer", "se", "--after", "0", "--out", "x.yaml"],
            f"{broken}: not UTF-8 text")
    assert not (cwd / "x.yaml").exists()
