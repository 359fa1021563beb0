"""The torchrun launcher's checks (``train.sh --nproc-per-node N``): mistakes stop before anything starts, with one
message naming the fix and exit code 2."""
import socket
import sys

import pytest
import torch

from yolo_attn.cli import train
from yolo_attn.engines.yolov5.commands import launch
from yolo_attn.cli.pipeline import run_cli
from yolo_attn.datasets import shapes
from yolo_attn.errors import UsageError


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return str(shapes.generate(tmp_path_factory.mktemp("ds") / "shapes", train=4, val=2, size=64))


def refused(capsys, monkeypatch, tmp_path, *argv):
    monkeypatch.chdir(tmp_path)
    code = run_cli(train.main, list(argv))
    err = capsys.readouterr().err
    assert code == 2, err
    assert not (tmp_path / "runs").exists()  # nothing started
    return err


BASE = ["--cfg", "yolov5s-se.yaml", "--epochs", "1", "--imgsz", "64", "--workers", "0"]


@pytest.mark.parametrize("extra, message", [
    (["--image-weights"], "--image-weights does not work with several processes"),
    (["--evolve", "2"], "--evolve does not work with several processes"),
    (["--batch-size", "5"], "--batch-size 5 is the total over all 2 processes and must be a multiple of 2"),
    (["--batch-size", "-1"], "AutoBatch"),
    (["--nnodes", "2"], "--nnodes > 1 needs --master-addr"),
    (["--nnodes", "2", "--node-rank", "2", "--master-addr", "10.0.0.1"], "--node-rank must be in 0..1"),
])
def test_ddp_option_mistakes(capsys, monkeypatch, tmp_path, data, extra, message):
    err = refused(capsys, monkeypatch, tmp_path, "--nproc-per-node", "2", "--device", "cpu", "--data", data, *BASE,
                  *(["--batch-size", "4"] if "--batch-size" not in extra else []), *extra)
    assert message in err


def test_more_processes_than_gpus(capsys, monkeypatch, tmp_path, data):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    err = refused(capsys, monkeypatch, tmp_path, "--nproc-per-node", "2", "--data", data, *BASE, "--batch-size", "4")
    assert "--nproc-per-node 2 but there are only 1 CUDA device(s) on this node" in err
    assert "--device cpu" in err


def test_cuda_device_without_cuda(capsys, monkeypatch, tmp_path, data):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    err = refused(capsys, monkeypatch, tmp_path, "--nproc-per-node", "2", "--device", "0,1", "--data", data, *BASE,
                  "--batch-size", "4")
    assert "--device 0,1: no CUDA device is available here" in err


def test_port_in_use(capsys, monkeypatch, tmp_path, data):
    with socket.socket() as taken:
        taken.bind(("", 0))
        taken.listen()
        port = taken.getsockname()[1]
        err = refused(capsys, monkeypatch, tmp_path, "--nproc-per-node", "2", "--device", "cpu", "--master-port",
                      str(port), "--data", data, *BASE, "--batch-size", "4")
    assert f"--master-port {port} is in use on this machine" in err


def test_import_of_a_missing_module(capsys, monkeypatch, tmp_path):
    err = refused(capsys, monkeypatch, tmp_path, "--import", "no_such_layers_module", *BASE)
    assert "--import no_such_layers_module: cannot import it" in err


def test_import_runs_the_module(monkeypatch, tmp_path):
    (tmp_path / "my_layers_probe.py").write_text("LOADED = True\n")
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    launch.import_modules(["my_layers_probe"])
    assert sys.modules.pop("my_layers_probe").LOADED


@pytest.mark.parametrize("device, available, count, nproc, ok", [
    ("cpu", True, 8, 16, "cpu"), ("", False, 0, 4, "cpu"), ("", True, 4, 4, "cuda"), ("0,1", True, 8, 2, "cuda"),
    ("0,1", True, 8, 3, None), ("", True, 2, 3, None), ("3", True, 2, 1, "cuda")])
def test_check_devices(device, available, count, nproc, ok):
    if ok is None:
        with pytest.raises(UsageError, match="one process per GPU"):
            launch.check_devices(nproc, device, available, count)
    else:
        assert launch.check_devices(nproc, device, available, count) == ok


def test_rank_argv_drops_only_the_launch_options():
    argv = ["--nproc-per-node", "2", "--cfg", "x.yaml", "--nnodes=2", "--master-addr", "a", "--node-rank", "1",
            "--master-port=5", "--import", "m", "--epochs", "3"]
    assert launch.rank_argv(argv) == ["--cfg", "x.yaml", "--import", "m", "--epochs", "3"]


def test_torchrun_arguments():
    opt = train.parser().parse(["--nproc-per-node", "2", "--cfg", "x"])[0]
    assert launch.torchrun_args(opt, ["--nproc-per-node", "2", "--cfg", "x"]) == [
        "--nproc-per-node", "2", "--nnodes", "1", "--standalone", "-m", "yolo_attn.cli.train", "--cfg", "x"]
    opt = train.parser().parse(["--nproc-per-node", "4", "--nnodes", "2", "--node-rank", "1", "--master-addr",
                                "10.1.1.1"])[0]
    assert launch.torchrun_args(opt, []) == ["--nproc-per-node", "4", "--nnodes", "2", "--node-rank", "1",
                                             "--master-addr", "10.1.1.1", "--master-port", "29500", "-m",
                                             "yolo_attn.cli.train"]


# ------------------------------------------------------------------ DDP flags a careless user or a script may give
DDP_FLAG_TABLE = [
    (["--master-port", "70000"], "--master-port must be a TCP port, 1 to 65535, got 70000"),
    (["--master-port", "-1"], "--master-port must be a TCP port"),
    (["--master-port", str(2 ** 70)], "--master-port must be a TCP port"),
    (["--ddp-timeout", str(10 ** 30)], "--ddp-timeout must be a number of seconds from 1 to 604800"),
    (["--ddp-timeout", "0"], "--ddp-timeout must be"),
    (["--nproc-per-node", "100000"], "--nproc-per-node 100000 CPU processes, but this machine gives this run"),
    (["--nproc-per-node", "0"], "--nproc-per-node must be at least 1"),
    (["--master-addr", "192.0.2.1"], "--master-addr 192.0.2.1 is not an address of this machine"),
    (["--master-addr", "no-such-host.invalid"], "is not an address of this machine"),
    (["--nnodes", str(2 ** 70), "--master-addr", "10.0.0.1"], "--batch-size 4 is the total over all"),
]


@pytest.mark.parametrize("extra, message", DDP_FLAG_TABLE, ids=[" ".join(e)[:40] for e, _ in DDP_FLAG_TABLE])
def test_ddp_flags_refused_within_seconds(capsys, monkeypatch, tmp_path, data, extra, message):
    """Each is refused before anything starts (exit 2, one message, no traceback), within seconds; no file is
    written outside tmp_path (the run folder is not even made)."""
    import time

    argv = ["--device", "cpu", "--data", data, *BASE, "--batch-size", "4", *extra]
    if "--nproc-per-node" not in extra:
        argv = ["--nproc-per-node", "2", *argv]
    start = time.monotonic()
    err = refused(capsys, monkeypatch, tmp_path, *argv)
    assert time.monotonic() - start < 15
    assert message in err and "Traceback" not in err, err


def test_this_machine():
    assert launch.is_this_machine("127.0.0.1") and launch.is_this_machine("localhost")
    assert not launch.is_this_machine("192.0.2.1")  # TEST-NET-1: never a local address


def test_a_huge_timeout_is_refused_on_the_rank_side_too():
    with pytest.raises(UsageError, match="--ddp-timeout"):
        launch.check_timeout(10 ** 30)
