"""A run folder from elsewhere is untrusted (#22 item 3): every path it records is confined to it on resume, and no
output flag overwrites an input."""
import os

import pytest
from tiny_models import tiny_yolov5
import yaml

import yolo_attn  # noqa: F401
from yolo_attn import paths
from yolo_attn.cli.pipeline import run_cli
from yolo_attn.errors import UsageError


@pytest.fixture(scope="module")
def ul_model():
    from yolo_attn.engines.ultralytics.model import build_model

    return build_model(paths.MODEL_YAMLS / "ultralytics" / "yolo11n-cbam.yaml", nc=4)


def moved_run(tmp_path, ul_model, data):
    """An interrupted ultralytics run in tmp_path/moved whose checkpoint names tmp_path/victim as its save_dir; the
    victim folder holds files that must not change."""
    from yolo_attn.engines.ultralytics.model import save_checkpoint

    victim = tmp_path / "victim"
    (victim / "weights").mkdir(parents=True)
    for name in ("args.yaml", "results.csv", "weights/best.pt", "weights/last.pt"):
        (victim / name).write_text("victim's\n")
    run = tmp_path / "moved"
    last = save_checkpoint(ul_model, run / "weights" / "last.pt",
                           {"imgsz": 64, "epochs": 2, "save_dir": str(victim), "data": str(data),
                            "project": str(tmp_path / "victim-project"), "name": "victim", "device": "cpu"},
                           epoch=0, optimizer={"state": {}, "param_groups": []})
    return run, last, victim


def untouched(victim):
    return all(p.read_text() == "victim's\n" for p in victim.rglob("*") if p.is_file()) and \
        len([p for p in victim.rglob("*") if p.is_file()]) == 4


def test_ultralytics_resume_writes_into_the_folder_resumed_only(tmp_path, ul_model, monkeypatch):
    """The real trainer, given our resume settings, writes into the moved run folder, not the recorded one."""
    from ultralytics.models.yolo.detect import DetectionTrainer

    from yolo_attn.datasets import shapes
    from yolo_attn.engines.ultralytics.commands.train import resume_settings

    monkeypatch.chdir(tmp_path)
    data = shapes.ensure(paths.EMBEDDED_DATASET)
    run, last, victim = moved_run(tmp_path, ul_model, data)
    path, _, overrides = resume_settings(str(run))
    trainer = DetectionTrainer(overrides={"model": path, "resume": path, "data": str(data), **overrides})
    assert os.path.samefile(trainer.save_dir, run)
    assert (run / "args.yaml").is_file() and untouched(victim)
    assert not (tmp_path / "victim-project").exists()


def test_ultralytics_trainer_alone_would_overwrite_the_victim(tmp_path, ul_model, monkeypatch):
    """Proof the test above can fail: ultralytics' own resume writes args.yaml into the recorded save_dir."""
    from ultralytics.models.yolo.detect import DetectionTrainer

    from yolo_attn.datasets import shapes

    monkeypatch.chdir(tmp_path)
    data = shapes.ensure(paths.EMBEDDED_DATASET)
    run, last, victim = moved_run(tmp_path, ul_model, data)
    DetectionTrainer(overrides={"model": str(last), "resume": str(last), "data": str(data)})
    assert not untouched(victim)


def test_ultralytics_resume_refuses_a_data_yaml_recorded_elsewhere(tmp_path, ul_model):
    from yolo_attn.engines.ultralytics.commands.train import resume_settings

    elsewhere = tmp_path / "elsewhere.yaml"
    elsewhere.write_text("train: a\nval: b\nnames: [x]\n")
    run, last, victim = moved_run(tmp_path, ul_model, elsewhere)
    with pytest.raises(UsageError, match="outside the run folder"):
        resume_settings(str(run))
    inside = tmp_path / "second" / "moved" / "data.yaml"  # a data YAML kept in the run folder is fine
    inside.parent.mkdir(parents=True)
    inside.write_text(elsewhere.read_text())
    run2, last2, _ = moved_run(tmp_path / "second", ul_model, inside)
    assert resume_settings(str(run2))[2] == {"save_dir": str(run2)}
    from yolo_attn.datasets import shapes

    named = shapes.ensure(paths.EMBEDDED_DATASET)
    _, _, overrides = resume_settings(str(run), data=str(named))  # named again by the user: read (and checked)
    assert overrides["save_dir"] == str(run) and overrides["data"] == str(named)


def test_ultralytics_resume_of_a_checkpoint_outside_weights(tmp_path, ul_model):
    from yolo_attn.engines.ultralytics.commands.train import resume_settings

    run, last, victim = moved_run(tmp_path, ul_model, tmp_path / "d.yaml")
    loose = tmp_path / "last.pt"
    loose.write_bytes(last.read_bytes())
    with pytest.raises(UsageError, match="not in a run folder's weights/"):
        resume_settings(str(loose))


# ------------------------------------------------------------------------------------ outputs never overwrite inputs
@pytest.mark.parametrize("command_engine", ["ultralytics", "yolov5"])
def test_save_matches_onto_the_weights_is_refused(tmp_path, ul_model, capsys, monkeypatch, command_engine):
    from yolo_attn.cli import val

    monkeypatch.chdir(tmp_path)
    if command_engine == "ultralytics":
        from yolo_attn.engines.ultralytics.model import save_checkpoint

        weights = save_checkpoint(ul_model, tmp_path / "w" / "best.pt", {"imgsz": 64})
    else:
        from yolov5.models.yolo import Model

        from yolo_attn.engines.yolov5.model import quiet, save_checkpoint

        with quiet():
            weights = save_checkpoint(Model(str(paths.MODEL_YAMLS / "yolov5s.yaml"), nc=4), tmp_path / "w" / "best.pt",
                                      {"imgsz": 64})
    before = open(weights, "rb").read()
    link = tmp_path / "link.pt"
    link.symlink_to(weights)
    for target in (weights, link):
        assert run_cli(val.main, ["--weights", str(weights), "--save-matches", str(target)]) == 2
        err = capsys.readouterr().err
        assert "would overwrite the input --weights" in err and "Traceback" not in err
    assert open(weights, "rb").read() == before


def yolov5_run(tmp_path, data, save_dir):
    import torch

    from yolo_attn.engines.yolov5.model import save_checkpoint

    run = tmp_path / "moved"
    last = save_checkpoint(tiny_yolov5(), run / "weights" / "last.pt", opt={"epochs": 3}, epoch=0,
                           optimizer={"state": {}, "param_groups": []})
    (run / "opt.yaml").write_text(yaml.safe_dump({"epochs": 3, "save_dir": str(save_dir), "data": str(data),
                                                  "weights": "", "project": str(save_dir.parent)}))
    return run, last


def test_yolov5_resume_refuses_a_data_yaml_recorded_elsewhere(tmp_path):
    from yolo_attn.engines.yolov5.commands.train import resume_target

    elsewhere = tmp_path / "elsewhere.yaml"
    elsewhere.write_text("train: a\nval: b\nnames: [x]\n")
    victim = tmp_path / "victim"
    run, last = yolov5_run(tmp_path, elsewhere, victim)
    with pytest.raises(UsageError, match="is outside the run folder"):
        resume_target(str(run))
    assert not victim.exists()
    inside = run / "data.yaml"  # recorded inside the folder it was started in: moved here with it
    inside.write_text(elsewhere.read_text())
    run, last = yolov5_run(tmp_path, victim / "data.yaml", victim)
    _, opt = resume_target(str(run))
    assert opt["data"] == str(inside) and opt["save_dir"] == str(run) and not victim.exists()
