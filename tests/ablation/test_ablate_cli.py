"""scripts/ablate.sh (yolo_attn.cli.ablate) with a fake trainer and the bench's --quick measurements: the table and
its files, reuse on a second call, exit codes, and bad input refused before anything is trained."""
import json

import pytest
import yaml

from sweep_helpers import FakeCommands
from yolo_attn import paths
from yolo_attn.ablation.sweep import TRAIN
from yolo_attn.cli import ablate
from yolo_attn.cli.pipeline import run_cli
from yolo_attn.datasets import shapes


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("ablate")
    data = shapes.generate(root / "ds", train=4, val=4, size=64, seed=3)
    for name in ("yolov5s", "yolov5s-se"):
        cfg = yaml.safe_load((paths.MODEL_YAMLS / f"{name}.yaml").read_text())
        cfg["width_multiple"] = 0.125
        (root / f"tiny-{name}.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return root, data


def _argv(setup, out, *extra):
    root, data = setup
    return ["--cfgs", str(root / "tiny-yolov5s.yaml"), str(root / "tiny-yolov5s-se.yaml"), "--seeds", "2",
            "--data", str(data), "--out", str(out), "--quick-bench", "--epochs", "1", "--imgsz", "64", *extra]


def _run(argv, fake):
    return run_cli(lambda a: ablate.main(a, launcher=fake), argv)


def test_the_sweep_writes_its_table_and_a_second_call_trains_nothing(setup, tmp_path, capsys):
    fake = FakeCommands({"tiny-yolov5s": 0.5, "tiny-yolov5s-se": 0.9})
    assert _run(_argv(setup, tmp_path), fake) == 0
    assert len(fake.launched(TRAIN)) == 4
    for name in ("ablation.md", "ablation.csv", "ablation.json", "ablation.png"):
        assert (tmp_path / name).stat().st_size > 0
    doc = json.loads((tmp_path / "ablation.json").read_text())
    se = doc["rows"][1]
    assert (se["model"], se["attention"], se["seeds"], se["verdict_mAP50-95"]) == ("tiny-yolov5s-se", "SE×3", 2,
                                                                                    "better")
    assert se["params"] > doc["rows"][0]["params"] > 0 and se["gflops"] > 0 and se["cpu_ratio"] > 0
    assert doc["meta"]["cost"]["quick"] and doc["meta"]["cost"]["nc"] == 4
    assert doc["meta"]["train_args"] == ["--data", str(setup[1]), "--epochs", "1", "--imgsz", "64"]
    printed = capsys.readouterr().out
    assert "| `tiny-yolov5s-se` | SE×3 |" in printed and "sweep: 4 runs: 0 finished" in printed
    fake.calls.clear()
    assert _run(_argv(setup, tmp_path), fake) == 0
    assert fake.calls == []
    assert "sweep: 4 runs: 4 finished (reused)" in capsys.readouterr().out
    assert json.loads((tmp_path / "ablation.json").read_text())["rows"][1]["d_mAP50-95"] == se["d_mAP50-95"]


def test_a_failed_run_is_named_and_the_exit_code_is_1(setup, tmp_path):
    fake = FakeCommands(fail={("tiny-yolov5s-se-seed1", TRAIN): 1})
    assert _run(_argv(setup, tmp_path), fake) == 1
    md = (tmp_path / "ablation.md").read_text()
    assert "| 1 of 2 (seed 1 failed) |" in md and "tiny-yolov5s-se: seed 1: training failed (exit 1)" in md


def test_ctrl_c_stops_with_130_and_the_same_command_continues(setup, tmp_path, capsys):
    fake = FakeCommands(interrupt=("tiny-yolov5s-seed1", TRAIN))
    assert _run(_argv(setup, tmp_path), fake) == 130
    assert "interrupted with 2 of 4 runs finished; run the same command again" in capsys.readouterr().err
    fake.calls.clear()
    assert _run(_argv(setup, tmp_path), fake) == 0
    assert [c[2][0] for c in fake.calls if c[1] == TRAIN] == ["--resume", "--cfg"]


def test_runs_trained_at_different_sizes_are_refused(setup, tmp_path, capsys):
    fake = FakeCommands(imgsz={"tiny-yolov5s-se-seed1": 320})
    assert _run(_argv(setup, tmp_path), fake) == 2
    err = capsys.readouterr().err
    assert "differ in the training option 'imgsz'" in err and "320: tiny-yolov5s-se-seed1" in err
    assert not (tmp_path / "ablation.md").exists()


def test_other_training_flags_in_the_same_folder_are_refused_before_training(setup, tmp_path, capsys):
    fake = FakeCommands()
    assert _run(_argv(setup, tmp_path), fake) == 0
    fake.calls.clear()
    assert _run(_argv(setup, tmp_path)[:-1] + ["96"], fake) == 2
    assert fake.calls == []
    err = capsys.readouterr().err
    assert "differs in imgsz" in err and "--imgsz 64" in err and "another --out" in err
    assert _run(_argv(setup, tmp_path, "--batch-size", "8"), fake) == 2  # (16 is the default: the same options)
    assert "differs in batch_size" in capsys.readouterr().err
    reordered = _argv(setup, tmp_path)[:-4] + ["--imgsz", "64", "--epochs", "1"]  # the same options
    assert _run(reordered, fake) == 0 and fake.calls == []


def test_a_cfg_edited_after_its_runs_is_refused(setup, tmp_path, capsys):
    root = tmp_path / "cfgs"
    root.mkdir()
    for name in ("tiny-yolov5s.yaml", "tiny-yolov5s-se.yaml"):
        (root / name).write_text((setup[0] / name).read_text())
    argv = _argv((root, setup[1]), tmp_path / "out")
    fake = FakeCommands()
    assert _run(argv, fake) == 0
    cfg = yaml.safe_load((root / "tiny-yolov5s-se.yaml").read_text())
    cfg["width_multiple"] = 0.25
    (root / "tiny-yolov5s-se.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    fake.calls.clear()
    assert _run(argv, fake) == 2 and fake.calls == []
    assert "tiny-yolov5s-se.yaml changed since its runs in" in capsys.readouterr().err


@pytest.mark.parametrize("extra, message", [
    (["--baseline", "yolov5s-cbam.yaml"], "--baseline yolov5s-cbam.yaml: not among --cfgs"),
    (["--seed", "3"], "--seed: the sweep sets it for every run; use --seeds N"),
    (["--name=x"], "--name: the sweep sets it for every run; use --out DIR"),
    (["--resamples", "100"], "--resamples must be at least 1000"),
    (["--ci", "95"], "--ci must be between 0 and 1"),
    (["--seeds", "0"], "--seeds must be at least 1"),
    (["--bench-imgsz", "100"], "--bench-imgsz 100: give a multiple of 32"),
    (["--cfgs", "no-such.yaml"], "model cfg 'no-such.yaml' not found"),
])
def test_bad_input_exits_2_before_anything_is_trained(setup, tmp_path, capsys, extra, message):
    fake = FakeCommands()
    assert _run(_argv(setup, tmp_path, *extra), fake) == 2
    assert message in capsys.readouterr().err
    assert fake.calls == [] and not (tmp_path / "sweep.json").exists()


def test_two_cfgs_with_one_name_are_refused(setup, tmp_path, capsys):
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "tiny-yolov5s.yaml").write_text((setup[0] / "tiny-yolov5s-se.yaml").read_text())
    argv = _argv(setup, tmp_path / "out")
    argv[2] = str(other / "tiny-yolov5s.yaml")
    assert _run(argv, FakeCommands()) == 2
    assert "two model YAMLs named tiny-yolov5s.yaml" in capsys.readouterr().err


def test_yamls_of_two_engines_in_one_sweep_are_refused(setup, tmp_path, capsys):
    argv = _argv(setup, tmp_path / "out")
    argv[2] = str(paths.MODEL_YAMLS / "ultralytics" / "yolo11n-cbam.yaml")
    fake = FakeCommands()
    assert _run(argv, fake) == 2
    err = capsys.readouterr().err
    assert "the model YAMLs are for different engines (ultralytics: yolo11n-cbam.yaml; yolov5: tiny-yolov5s.yaml)" \
        in err and "run one sweep per engine" in err
    assert not fake.launched(TRAIN) and not (tmp_path / "out").exists()


def _ultralytics_argv(setup, out, *extra, epochs=1):
    return ["--cfgs", "yolo11n.yaml", "yolo11n-se.yaml", "--seeds", "2", "--data", str(setup[1]), "--out", str(out),
            "--quick-bench", f"epochs={epochs}", "--imgsz", "64", "device=cpu", *extra]


def test_an_ultralytics_sweep_trains_validates_and_compares_through_ultralytics(setup, tmp_path, capsys):
    fake = FakeCommands({"yolo11n": 0.5, "yolo11n-se": 0.9}, options_file="args.yaml")
    assert _run(_ultralytics_argv(setup, tmp_path), fake) == 0
    train = fake.argvs(TRAIN)
    assert len(train) == 4
    assert train[0][:2] == ["--cfg", str(paths.MODEL_YAMLS / "ultralytics" / "yolo11n.yaml")]
    assert "epochs=1" in train[0] and "device=cpu" in train[0]
    val = fake.argvs("yolo_attn.cli.val")[0]
    assert val[val.index("--data") + 1] == str(setup[1]) and "device=cpu" in val and "--save-matches" in val
    doc = json.loads((tmp_path / "ablation.json").read_text())
    assert doc["meta"]["engine"] == "ultralytics" and doc["meta"]["baseline"] == "yolo11n"
    se = doc["rows"][1]
    assert (se["model"], se["attention"], se["verdict_mAP50-95"]) == ("yolo11n-se", "SE×3", "better")
    assert se["params"] > doc["rows"][0]["params"] > 0 and se["gflops"] > 0 and se["cpu_ratio"] > 0
    assert json.loads((tmp_path / "sweep.json").read_text())["engine"] == "ultralytics"
    assert "mAP50, mAP50-95: the ultralytics engine's figures" in (tmp_path / "ablation.md").read_text()
    capsys.readouterr()

    assert _run(_argv(setup, tmp_path), fake) == 2  # yolov5 YAMLs into the ultralytics sweep's folder
    assert "holds a sweep of ultralytics models; these are yolov5 models" in capsys.readouterr().err
    assert _run(_ultralytics_argv(setup, tmp_path, epochs=2), fake) == 2
    assert "(differs in epochs)" in capsys.readouterr().err


def test_ultralytics_settings_right_after_the_cfgs_are_settings(setup, tmp_path):
    fake = FakeCommands(options_file="args.yaml")
    argv = ["--seeds", "1", "--data", str(setup[1]), "--out", str(tmp_path), "--quick-bench", "batch=4", "--cfgs",
            "yolo11n.yaml", "epochs=1", "yolo11n-se.yaml", "imgsz=64"]
    assert _run(argv, fake) == 0
    assert fake.argvs(TRAIN)[0][2:] == ["--data", str(setup[1]), "batch=4", "epochs=1", "imgsz=64", "--seed", "0",
                                        "--project", str(tmp_path / "runs"), "--name", "yolo11n-seed0", "--exist-ok"]
    assert _run(["--cfgs", "epochs=1", "--out", str(tmp_path / "o")], fake) == 2


def test_without_data_an_ultralytics_sweep_takes_its_engines_sweep_epochs(setup, tmp_path):
    from yolo_attn import engines

    fake = FakeCommands(options_file="args.yaml")
    argv = ["--cfgs", "yolo11n.yaml", "yolo11n-se.yaml", "--seeds", "1", "--out", str(tmp_path), "--quick-bench"]
    assert _run(argv, fake) == 0
    assert fake.argvs(TRAIN)[0][2:4] == ["--epochs", str(engines.get("ultralytics").sweep_epochs)]


@pytest.mark.parametrize("extra, message", [
    (["seed=3"], "seed: the sweep sets it for every run; use --seeds N"),
    (["--exist-ok"], "--exist-ok: the sweep sets it for every run; use --out DIR"),
    (["model=yolo11s.yaml"], "model: the sweep sets it for every run; use --cfgs"),
    (["no_such_setting=1"], "no_such_setting: not an ultralytics setting"),
    (["--cfgs", "yolov8s.yaml"], "--cfgs yolov8s.yaml: a model of the ultralytics package, not a file"),
])
def test_bad_ultralytics_input_exits_2_before_anything_is_trained(setup, tmp_path, capsys, extra, message):
    fake = FakeCommands(options_file="args.yaml")
    assert _run(_ultralytics_argv(setup, tmp_path, *extra), fake) == 2
    assert message in capsys.readouterr().err
    assert fake.calls == [] and not (tmp_path / "sweep.json").exists()


def test_an_unknown_training_flag_stops_at_once(setup, tmp_path):
    fake = FakeCommands()
    with pytest.raises(SystemExit) as e:
        _run(_argv(setup, tmp_path, "--no-such-flag"), fake)
    assert e.value.code == 2 and fake.calls == []


def test_val_save_matches_refuses_a_folder(tmp_path, capsys):
    from yolo_attn.cli import val

    assert run_cli(val.main, ["--weights", "best.pt", "--save-matches", str(tmp_path)]) == 2
    assert f"--save-matches {tmp_path}: a folder; give a file name such as" in capsys.readouterr().err


def _rows(folder):
    from yolo_attn.ablation import output

    cost = {"attention", *output.COST}  # measured anew by each call: latency
    return [{k: v for k, v in r.items() if k not in cost} for r in json.loads((folder / "ablation.json").read_text())["rows"]]


def test_jobs_2_writes_the_table_of_jobs_1(setup, tmp_path):
    fail = {("tiny-yolov5s-se-seed0", TRAIN): 1}
    one, two = FakeCommands({"tiny-yolov5s-se": 0.8}, fail=dict(fail)), FakeCommands({"tiny-yolov5s-se": 0.8}, fail=dict(fail))
    assert run_cli(lambda a: ablate.main(a, launcher=one, gpus=[], cores=2), _argv(setup, tmp_path / "1", "--jobs", "1")) == 1
    assert run_cli(lambda a: ablate.main(a, launcher=two, gpus=[], cores=2), _argv(setup, tmp_path / "2", "--jobs", "2")) == 1
    assert _rows(tmp_path / "1") == _rows(tmp_path / "2")
    md = [(tmp_path / n / "ablation.md").read_text().split("\n", 4)[-1] for n in "12"]
    assert "seed 0 failed" in md[0]
    assert {e["OMP_NUM_THREADS"] for e in one.envs.values()} == {"2"}
    assert {e["OMP_NUM_THREADS"] for e in two.envs.values()} == {"1"}


@pytest.mark.parametrize("jobs, says", [("0", "--jobs 0: give the number of runs at a time"),
                                        ("-1", "--jobs -1: give the number"),
                                        ("3", "--jobs 3: this machine has 2 CPU core(s)")])
def test_a_bad_jobs_is_refused_before_anything_starts(setup, tmp_path, capsys, jobs, says):
    fake = FakeCommands()
    assert run_cli(lambda a: ablate.main(a, launcher=fake, gpus=[], cores=2),
                   _argv(setup, tmp_path, "--jobs", jobs)) == 2
    assert says in capsys.readouterr().err and fake.calls == [] and not (tmp_path / "sweep.json").exists()


def test_threads_belong_to_the_sweep(setup, tmp_path, capsys):
    assert _run(_argv(setup, tmp_path, "--threads", "2"), FakeCommands()) == 2
    assert "--threads: the sweep sets it for every run; use --jobs N" in capsys.readouterr().err
