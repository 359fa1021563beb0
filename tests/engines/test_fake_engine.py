"""A third engine is a folder: the fake engine (plain torch, tests/engines/fake_engine.py) runs through the train and
val commands' dispatch, per-detection heatmaps and the sweep with its report, without any change to application
code — they ask ``yolo_attn.engines`` and the Engine object only."""
import importlib
import json

import pytest
import yaml

from fake_engine import FakeDetector, FakeEngine, registered
from yolo_attn import engines
from yolo_attn.cli.pipeline import run_cli
from yolo_attn.errors import UsageError
from yolo_attn.matches import MatchRecord


@pytest.fixture
def fake_cfgs(tmp_path):
    out = []
    for name, attention in (("fake.yaml", None), ("fake-se.yaml", "se")):
        d = {"fake_engine": True, "width": 16, **({"attention": attention} if attention else {})}
        (tmp_path / name).write_text(yaml.safe_dump(d))
        out.append(tmp_path / name)
    return out


def cli(command, argv):
    return run_cli(importlib.import_module(f"yolo_attn.cli.{command}").main, [str(a) for a in argv])


def test_files_and_models_are_recognised_as_the_fake_engines(fake_cfgs):
    with registered() as fake:
        assert engines.of(fake_cfgs[1]) is fake
        assert engines.of(FakeDetector({"fake_engine": True})) is fake
        assert engines.of("yolov5s-cbam.yaml").name == "yolov5"  # the others still answer for theirs
    assert engines.of(fake_cfgs[1]) is None or engines.of(fake_cfgs[1]).name != "fake"
    assert "fake" not in engines.names()


def test_train_val_and_heatmaps_through_the_commands(fake_cfgs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with registered():
        assert cli("train", ["--cfg", fake_cfgs[1], "--epochs", 3, "--project", tmp_path / "runs",
                             "--name", "se"]) == 0
        run = tmp_path / "runs" / "se"
        summary = json.loads((run / "summary.json").read_text())
        assert summary["epochs"] == 3 and 0 <= summary["mAP50"] <= 1
        assert engines.of(run / "weights" / "best.pt").name == "fake"

        matches = tmp_path / "matches.npz"
        assert cli("val", ["--weights", run / "weights" / "best.pt", "--save-matches", matches,
                           "--project", tmp_path / "val", "--name", "se"]) == 0
        record = MatchRecord.load(matches)
        assert record.n_images == 12
        val = json.loads((tmp_path / "val" / "se" / "summary.json").read_text())
        assert val["mAP50"] == summary["mAP50"]  # the same model on the same images

        image = tmp_path / "square.png"
        from fake_engine import synthetic_images
        import cv2

        cv2.imwrite(str(image), (synthetic_images(1, seed=2)[0][0].permute(1, 2, 0).numpy()[..., ::-1] * 255))
        assert cli("heatmap", ["--weights", run / "weights" / "best.pt", "--source", image, "--out",
                               tmp_path / "heat", "--conf", "0.01"]) == 0
        entry = json.loads((tmp_path / "heat" / "square.json").read_text())
        assert entry["layers"] == ["model.1"]  # the SE row, the one the head reads
        assert entry["detections"] and all((tmp_path / "heat" / d["png"]).is_file() for d in entry["detections"])


def test_a_command_the_engine_lacks_says_so(fake_cfgs, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with registered():
        assert cli("detect", ["--weights", fake_cfgs[0], "--source", tmp_path]) == 2
    assert "the fake engine does not support" in capsys.readouterr().err


@pytest.mark.slow
def test_the_sweep_trains_validates_and_reports_a_third_engine(fake_cfgs, tmp_path, monkeypatch):
    from yolo_attn.cli import ablate

    monkeypatch.chdir(tmp_path)

    def in_process(module, argv, log, env=None):
        return run_cli(importlib.import_module(module).main, [str(a) for a in argv])

    with registered():
        code = ablate.main(["--cfgs", *map(str, fake_cfgs), "--seeds", "2", "--out", str(tmp_path / "sweep"),
                            "--quick-bench", "--bench-imgsz", "64", "--bench-rounds", "1"], launcher=in_process)
    assert code == 0
    table = json.loads((tmp_path / "sweep" / "ablation.json").read_text())
    assert table["meta"]["engine"] == "fake"
    rows = {r["model"]: r for r in table["rows"]}
    assert set(rows) == {"fake", "fake-se"}
    assert rows["fake-se"]["params"] > rows["fake"]["params"]  # the cost columns measured the fake models
    manifest = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert manifest["engine"] == "fake"


def test_the_engine_contract_refuses_what_an_engine_leaves_out():
    class Bare(engines.Engine):
        name = "bare"

    with pytest.raises(UsageError, match="the bare engine does not support heatmaps"):
        Bare().heatmap_head(None)
    with pytest.raises(TypeError):
        engines.register(FakeEngine)  # the class, not an instance
