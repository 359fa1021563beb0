"""The sweep planner and runner with a fake trainer: what is trained, resumed, validated or reused given the state
of the sweep folder; an interrupted or extended sweep trains nothing twice; failures are recorded, not fatal."""
from pathlib import Path

import pytest

from sweep_helpers import FakeCommands
from yolo_attn.ablation import sweep
from yolo_attn.ablation.sweep import TRAIN, VAL, Sweep, plan, runs_for

CFGS = [Path("/cfgs/yolov5s.yaml"), Path("/cfgs/yolov5s-cbam.yaml")]


def _sweep(tmp_path, fake, cfgs=CFGS, seeds=(0, 1), clock=None, log=None):
    runs = runs_for(cfgs, list(seeds), tmp_path)
    extra = {"clock": clock} if clock else {}
    return Sweep(runs, ["--epochs", "6"], ["--data", "d.yaml"], tmp_path / "logs", launcher=fake,
                 log=log or (lambda *_: None), **extra), runs


def test_runs_are_every_cfg_with_every_seed_seed_by_seed(tmp_path):
    runs = runs_for(CFGS, [0, 1, 2], tmp_path)
    assert [r.name for r in runs] == ["yolov5s-seed0", "yolov5s-cbam-seed0", "yolov5s-seed1", "yolov5s-cbam-seed1",
                                      "yolov5s-seed2", "yolov5s-cbam-seed2"]
    assert runs[1].folder == tmp_path / "runs" / "yolov5s-cbam-seed0" and runs[1].cfg == CFGS[1]


def test_plan_reads_what_each_run_folder_holds(tmp_path):
    fake = FakeCommands()
    job, runs = _sweep(tmp_path, fake)
    finished, validate, resume, fresh = runs
    fake(TRAIN, job.train_argv(finished), tmp_path / "l")
    fake(VAL, job.val_argv(finished), tmp_path / "l")
    fake(TRAIN, job.train_argv(validate), tmp_path / "l")
    resume.last_pt.parent.mkdir(parents=True)
    resume.last_pt.write_bytes(b"")
    fresh.folder.mkdir(parents=True)  # a folder without a checkpoint: nothing to continue from
    assert list(plan(runs).values()) == ["finished", "validate", "resume", "train"]
    finished.matches.unlink()  # a summary without its match record is not finished
    assert sweep.state(finished) == "validate"


@pytest.mark.parametrize("options_file", ["opt.yaml", "args.yaml"])  # yolov5, ultralytics
def test_a_run_stopped_in_trainings_final_validation_is_validated_not_resumed(tmp_path, options_file):
    """After the last epoch yolov5 and ultralytics strip last.pt (no optimizer: it cannot be resumed), then validate
    best.pt; a stop there leaves every epoch in results.csv and no summary.json."""
    fake = FakeCommands(options_file=options_file)
    job, runs = _sweep(tmp_path, fake, cfgs=CFGS[:1], seeds=[0])
    run = runs[0]
    fake(TRAIN, job.train_argv(run), tmp_path / "l")  # options: 6 epochs
    run.train_summary.unlink()
    header = "epoch,train/box_loss\n"
    (run.folder / "results.csv").write_text(header + "".join(f"{e},0.1\n" for e in range(5)))
    assert sweep.state(run) == "resume"
    (run.folder / "results.csv").write_text(header + "".join(f"{e},0.1\n" for e in range(6)))
    assert sweep.state(run) == "validate"
    fake.calls.clear()
    assert job.execute() == {}
    assert fake.launched() == [("yolov5s-seed0", VAL)]
    assert fake.calls[0][2][:2] == ["--weights", str(run.folder / "weights" / "best.pt")]


def test_each_run_is_trained_then_validated_with_the_shared_flags(tmp_path):
    fake = FakeCommands()
    job, runs = _sweep(tmp_path, fake)
    assert job.execute() == {}
    assert fake.launched() == [(r.name, m) for r in runs for m in (TRAIN, VAL)]
    name, _, argv = fake.calls[2]  # yolov5s-cbam seed 0
    assert argv == ["--cfg", str(CFGS[1]), "--epochs", "6", "--seed", "0", "--project", str(tmp_path / "runs"),
                    "--name", "yolov5s-cbam-seed0", "--exist-ok"]
    _, _, argv = fake.calls[3]
    run = runs[1]
    assert argv == ["--weights", str(run.folder / "weights" / "best.pt"), "--data", "d.yaml", "--project",
                    str(run.folder), "--name", "val", "--exist-ok", "--save-matches", str(run.matches)]
    assert all(sweep.state(r) == "finished" for r in runs)


def test_an_interrupted_sweep_trains_nothing_twice(tmp_path):
    fake = FakeCommands(interrupt=("yolov5s-seed1", TRAIN))  # Ctrl-C during the third run's training
    job, runs = _sweep(tmp_path, fake)
    with pytest.raises(KeyboardInterrupt):
        job.execute()
    assert [sweep.state(r) for r in runs] == ["finished", "finished", "resume", "train"]
    first = list(fake.calls)
    fake.calls.clear()
    job, runs = _sweep(tmp_path, fake)
    assert job.execute() == {}
    assert fake.launched() == [("yolov5s-seed1", TRAIN), ("yolov5s-seed1", VAL), ("yolov5s-cbam-seed1", TRAIN),
                               ("yolov5s-cbam-seed1", VAL)]
    assert fake.calls[0][2] == ["--resume", str(runs[2].last_pt)]  # continued from its checkpoint
    trained_from_scratch = [c[0] for c in first + fake.calls if c[1] == TRAIN and "--resume" not in c[2]]
    assert sorted(trained_from_scratch) == sorted(r.name for r in runs)  # each run started once


def test_more_seeds_or_variants_later_train_only_what_is_missing(tmp_path):
    fake = FakeCommands()
    _sweep(tmp_path, fake, cfgs=CFGS[:1], seeds=[0, 1])[0].execute()
    fake.calls.clear()
    more = CFGS + [Path("/cfgs/yolov5s-se.yaml")]
    _sweep(tmp_path, fake, cfgs=more, seeds=[0, 1, 2])[0].execute()
    assert sorted(name for name, module in fake.launched(TRAIN)) == sorted(
        ["yolov5s-cbam-seed0", "yolov5s-cbam-seed1", "yolov5s-cbam-seed2", "yolov5s-se-seed0", "yolov5s-se-seed1",
         "yolov5s-se-seed2", "yolov5s-seed2"])


def test_a_trained_run_without_validation_is_only_validated(tmp_path):
    fake = FakeCommands(fail={("yolov5s-seed0", VAL): 1})
    job, runs = _sweep(tmp_path, fake, cfgs=CFGS[:1], seeds=[0])
    failures = job.execute()
    assert failures[runs[0]].stage == "validation" and failures[runs[0]].code == 1
    fake.fail.clear()
    fake.calls.clear()
    assert _sweep(tmp_path, fake, cfgs=CFGS[:1], seeds=[0])[0].execute() == {}
    assert fake.launched() == [("yolov5s-seed0", VAL)]


def test_a_failed_run_is_recorded_and_the_sweep_goes_on(tmp_path):
    printed = []
    fake = FakeCommands(fail={("yolov5s-cbam-seed0", TRAIN): 2})
    job, runs = _sweep(tmp_path, fake, log=printed.append)
    failures = job.execute()
    assert list(failures) == [runs[1]]
    assert failures[runs[1]].describe() == (f"yolov5s-cbam-seed0: training failed (exit 2); log "
                                            f"{tmp_path / 'logs' / 'yolov5s-cbam-seed0.log'}")
    assert [sweep.state(r) for r in runs] == ["finished", "train", "finished", "finished"]
    assert ("yolov5s-cbam-seed0", VAL) not in fake.launched()  # nothing to validate
    assert any("FAILED in training (exit 2)" in line for line in printed)


def test_a_validation_that_leaves_no_record_is_a_failure(tmp_path):
    class NoRecord(FakeCommands):
        def _validate(self, folder, argv):
            return 0

    job, runs = _sweep(tmp_path, NoRecord(), cfgs=CFGS[:1], seeds=[0])
    assert job.execute()[runs[0]].stage == "validation"


def test_progress_lines_and_the_eta_come_from_measured_run_times(tmp_path):
    printed, ticks = [], iter(range(0, 10_000, 150))  # every run takes 150 s on this clock
    fake = FakeCommands()
    job, runs = _sweep(tmp_path, fake, clock=lambda: next(ticks), log=printed.append)
    job.execute()
    assert printed[0] == "sweep: 4 runs: 0 finished (reused), 0 to validate, 0 to resume, 4 to train"
    done = [line for line in printed if ": done in " in line]
    assert done[0].startswith("[1/4] yolov5s seed 0: done in 2m30s: mAP50 0.")
    assert done[0].endswith("3 run(s) left, ETA 7m30s (2m30s per run measured)")
    assert done[-1].endswith("all runs done")
    printed.clear()
    runs[3].val_summary.unlink()
    _sweep(tmp_path, fake, log=printed.append)[0].execute()
    assert printed[1] == "sweep: ETA about 1m40s from the finished runs' training times"  # their summary.json: 100 s
