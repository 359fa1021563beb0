"""``--jobs N``: several runs at a time with a fake trainer. Runs that finish out of order or fail leave the same
state, failure list and table as one at a time; each run's commands get their slot's environment (threads, or one
GPU as --device 0); a --jobs the machine cannot run is refused before anything starts."""
import threading
from pathlib import Path

import pytest

from sweep_helpers import FakeCommands
from yolo_attn import threads
from yolo_attn.ablation import sweep
from yolo_attn.ablation.sweep import TRAIN, VAL, Slot, Sweep, machine_slots, runs_for
from yolo_attn.errors import BadParameter

CFGS = [Path("/cfgs/yolov5s.yaml"), Path("/cfgs/yolov5s-cbam.yaml")]
TWO_CPU_SLOTS = machine_slots(2, None, cores=2, gpus=[])


class Ordered(FakeCommands):
    """Holds ``hold``'s training until ``until``'s validation has finished (or a timeout: the test then fails), and
    records the most commands running at once."""

    def __init__(self, hold, until, **kw):
        super().__init__(**kw)
        self.hold, self.done, self.running, self.most = hold, threading.Event(), 0, 0
        self.until, self.lock = until, threading.Lock()

    def __call__(self, module, argv, log, env=None):
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            name = self._folder(module, list(map(str, argv))).name
            if (name, module) == (self.hold, TRAIN):
                assert self.done.wait(10), f"{self.until} never finished while {self.hold} waited"
            code = super().__call__(module, argv, log, env)
            if (name, module) == (self.until, VAL):
                self.done.set()
            return code
        finally:
            with self.lock:
                self.running -= 1


def _sweep(tmp_path, fake, slots, printed=None, seeds=(0, 1)):
    runs = runs_for(CFGS, list(seeds), tmp_path)
    return Sweep(runs, ["--epochs", "6"], ["--data", "d.yaml"], tmp_path / "logs", launcher=fake,
                 log=(printed.append if printed is not None else (lambda *_: None)), slots=slots), runs


def test_runs_finishing_out_of_order_leave_every_run_finished(tmp_path):
    printed = []
    fake = Ordered(hold="yolov5s-seed0", until="yolov5s-cbam-seed1")  # the first run ends after the last one
    job, runs = _sweep(tmp_path, fake, TWO_CPU_SLOTS, printed)
    assert job.execute() == {}
    assert fake.most == 2  # two at a time
    assert all(sweep.state(r) == "finished" for r in runs)
    done = [line for line in printed if ": done in " in line]
    assert len(done) == 4 and done[-1].startswith("[1/4] yolov5s seed 0") and done[-1].endswith("all runs done")
    assert [d.split("; ")[-1].split(",")[0] for d in done[:3]] == ["3 run(s) left", "2 run(s) left", "1 run(s) left"]
    for run in runs:  # each run's log holds its own commands only
        text = (tmp_path / "logs" / f"{run.name}.log").read_text()
        assert text.count(TRAIN) == 1 and text.count(VAL) == 1 and run.name in text


def test_a_failure_among_concurrent_runs_is_listed_in_sweep_order(tmp_path):
    fails = {("yolov5s-cbam-seed0", TRAIN): 3, ("yolov5s-cbam-seed1", VAL): 1}
    fake = Ordered(hold="yolov5s-cbam-seed0", until="yolov5s-cbam-seed1", fail=fails)  # the later failure first
    printed = []
    job, runs = _sweep(tmp_path, fake, TWO_CPU_SLOTS, printed)
    failures = job.execute()
    assert list(failures) == [runs[1], runs[3]]
    assert (failures[runs[1]].stage, failures[runs[1]].code) == ("training", 3)
    assert (failures[runs[3]].stage, failures[runs[3]].code) == ("validation", 1)
    assert [sweep.state(r) for r in runs] == ["finished", "train", "finished", "validate"]
    assert sum("FAILED" in line for line in printed) == 2
    assert ("yolov5s-cbam-seed0", VAL) not in fake.launched()


def test_an_interrupt_in_one_run_starts_no_further_run_and_is_raised(tmp_path):
    fake = FakeCommands(interrupt=("yolov5s-cbam-seed0", TRAIN))
    job, runs = _sweep(tmp_path, fake, TWO_CPU_SLOTS)
    with pytest.raises(KeyboardInterrupt):
        job.execute()
    assert sweep.state(runs[1]) == "resume" and sweep.state(runs[3]) in ("train", "finished")
    fake.calls.clear()
    assert _sweep(tmp_path, fake, TWO_CPU_SLOTS)[0].execute() == {}
    assert all(sweep.state(r) == "finished" for r in runs)


def test_each_command_gets_its_slots_threads(tmp_path):
    fake = FakeCommands()
    job, runs = _sweep(tmp_path, fake, TWO_CPU_SLOTS)
    job.execute()
    one_thread = {"YOLO_ATTN_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    assert len(fake.envs) == 8 and all(env == one_thread for env in fake.envs.values())
    assert all("--device" not in argv for _, _, argv in fake.calls)


def test_each_run_on_a_gpu_machine_gets_its_own_gpu_as_device_0(tmp_path):
    slots = machine_slots(None, None, cores=16, gpus=["0", "1", "2", "3"])
    assert [s.env for s in slots] == [{"CUDA_VISIBLE_DEVICES": g} for g in "0123"]
    fake = FakeCommands()
    job, runs = _sweep(tmp_path, fake, slots, seeds=(0, 1, 2))
    assert job.execute() == {}
    for name, module, argv in fake.calls:
        assert argv[-2:] == ["--device", "0"]
        assert fake.envs[(name, module)]["CUDA_VISIBLE_DEVICES"] in "0123"
    for run in runs:  # training and validation of a run on the same GPU
        assert fake.envs[(run.name, TRAIN)] == fake.envs[(run.name, VAL)]
    assert len({e["CUDA_VISIBLE_DEVICES"] for e in fake.envs.values()}) == 4


def test_a_resumed_run_keeps_its_own_options(tmp_path):
    fake = FakeCommands()
    slots = machine_slots(2, None, cores=8, gpus=["5", "7"])
    job, runs = _sweep(tmp_path, fake, slots, seeds=(0,))
    runs[0].last_pt.parent.mkdir(parents=True)
    runs[0].last_pt.write_bytes(b"")
    (runs[0].folder / "opt.yaml").write_text("epochs: 6\nimgsz: 160\n")
    job.execute()
    resumed = [argv for name, m, argv in fake.calls if name == "yolov5s-seed0" and m == TRAIN][0]
    assert resumed == ["--resume", str(runs[0].last_pt)]
    assert fake.envs[("yolov5s-seed0", TRAIN)]["CUDA_VISIBLE_DEVICES"] in ("5", "7")


@pytest.mark.parametrize("jobs, cores, threads_, shares", [
    (None, 2, None, [2]), (2, 2, None, [1, 1]), (None, 8, None, [2, 2, 2, 2]), (3, 8, None, [3, 3, 2]),
    (1, 2, 1, [1]), (2, 4, 1, [1, 1])])
def test_cpu_threads_are_shared_out(jobs, cores, threads_, shares):
    slots = machine_slots(jobs, None, cores, gpus=[], threads=threads_)
    assert [int(s.env["OMP_NUM_THREADS"]) for s in slots] == shares
    assert all(s.env["YOLO_ATTN_THREADS"] == s.env["MKL_NUM_THREADS"] == s.env["OMP_NUM_THREADS"] for s in slots)


def test_device_cpu_on_a_gpu_machine_shares_cores_and_a_pinned_device_runs_one_at_a_time():
    assert [s.env["OMP_NUM_THREADS"] for s in machine_slots(2, "cpu", 4, ["0", "1"])] == ["2", "2"]
    assert machine_slots(None, "1", 4, ["0", "1"]) == [Slot(name="device 1")]


@pytest.mark.parametrize("jobs, device, cores, gpus, says", [
    (0, None, 2, [], "--jobs 0: give the number of runs at a time, at least 1"),
    (-2, None, 2, [], "--jobs -2: give the number of runs at a time, at least 1"),
    (3, None, 2, [], "--jobs 3: this machine has 2 CPU core(s), and a run needs at least one: give --jobs 2"),
    (5, None, 32, ["0", "1", "2", "3"], "--jobs 5: this machine has 4 visible GPU(s) (0,1,2,3), one run per GPU"),
    (2, "0", 8, ["0", "1"], "--jobs 2 with --device 0: every run would share that device")])
def test_a_jobs_the_machine_cannot_run_is_refused(jobs, device, cores, gpus, says):
    with pytest.raises(BadParameter) as e:
        machine_slots(jobs, device, cores, gpus)
    assert e.value.as_flag().startswith(says)


def test_a_commands_thread_count(monkeypatch):
    monkeypatch.delenv(threads.ENV, raising=False)
    monkeypatch.setattr(threads, "USER_OMP", None)
    assert threads.wanted() == threads.cores()  # every core unless told otherwise
    monkeypatch.setattr(threads, "USER_OMP", "1")  # as the user set it (not yolov5's change after import)
    assert threads.wanted() == 1
    monkeypatch.setenv(threads.ENV, "3")  # a sweep's share wins over OMP_NUM_THREADS
    assert threads.wanted() == 3 and threads.wanted(2) == 2  # --threads wins over both
    with pytest.raises(BadParameter, match="give a number of CPU threads, at least 1"):
        threads.wanted(0)
    import torch

    before = torch.get_num_threads()
    with threads.using(2) as n:
        assert n == torch.get_num_threads() == 2
    assert torch.get_num_threads() == before
