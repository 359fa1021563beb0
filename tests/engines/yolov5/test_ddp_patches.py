"""The DDP patches of yolov5 (engines/yolov5/ddp.py): yolov5's CUDA-only DDP branch on CPU, files written by rank 0
only, atomic --cache disk. End to end with real processes: tests/cli/test_ddp.py."""
import dis
import inspect
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import yolo_attn  # noqa: F401
from yolo_attn.engines import yolov5 as engine
from yolo_attn.engines.yolov5 import ddp

import yolov5.train as yolov5_train
import yolov5.utils.dataloaders as dataloaders

REPO = Path(__file__).resolve().parents[3]


def original(obj, name):
    engine.uninstall()
    try:
        return getattr(obj, name)
    finally:
        engine.install()


def _lines(f):
    return {i.positions.lineno for i in dis.get_instructions(f) if i.positions.lineno}


def test_recompiled_functions_keep_yolov5s_file_lines_and_globals():
    main = yolov5_train.main
    assert main.__wrapped__ is original(yolov5_train, "main")
    assert main.__code__.co_filename == main.__wrapped__.__code__.co_filename
    assert main.__code__.co_firstlineno == main.__wrapped__.__code__.co_firstlineno
    assert main.__globals__ is vars(yolov5_train)  # other patches' replacements (torch views, ...) still apply
    source = "".join(inspect.getsourcelines(main.__wrapped__)[0])
    after_edit = source[:source.index("# Train")].count("\n") + main.__code__.co_firstlineno + 1
    assert after_edit in _lines(main) and after_edit in _lines(main.__wrapped__)  # the edit kept the line count


def test_recompiled_refuses_source_it_was_not_written_for():
    def f():
        return 1

    with pytest.raises(RuntimeError, match="expected 'return 2' once .* found it 0 times"):
        ddp.recompiled(f, [("return 2", "return 3")])
    g = ddp.recompiled(f, [("return 1", "return 4")])
    assert g() == 4 and g.__wrapped__ is f


def test_train_opens_only_the_cuda_conditions_of_ddp_and_sync_bn():
    theirs = inspect.getsource(original(yolov5_train, "train"))
    mine = yolov5_train.train.__wrapped__.__yolo_attn_source__[0]  # inside noval's wrapper: both edits made
    changed = [(a, b) for a, b in zip(theirs.splitlines(), mine.splitlines()) if a.rstrip() != b.rstrip()]
    assert len(theirs.splitlines()) == len(mine.splitlines())
    assert [a.strip() for a, _ in changed] == [
        "if opt.sync_bn and cuda and RANK != -1:",
        "model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model).to(device)",
        "if cuda and RANK != -1:"]


MAIN_ON_CPU = """
import os, sys
import torch.distributed as dist
import yolo_attn
from yolo_attn.engines import yolov5 as engine
import yolov5.train as t
opt = t.parse_opt(True)
opt.device, opt.data, opt.cfg, opt.weights, opt.project = "cpu", sys.argv[1], sys.argv[2], "", sys.argv[3]
seen = {}
engine.uninstall()
real = t.train
t.train = lambda hyp, opt, device, callbacks: seen.update(device=str(device))
try:
    t.main(opt)
except AssertionError as e:
    print("yolov5:", e)
t.train = real
engine.install()
t.train = lambda hyp, opt, device, callbacks: seen.update(device=str(device), backend=dist.get_backend())
t.main(opt)
print("patched:", seen)
dist.destroy_process_group()
"""


@pytest.mark.slow
def test_ddp_branch_of_main_runs_on_cpu_with_gloo(tmp_path):
    from yolo_attn.datasets import shapes

    data = shapes.generate(tmp_path / "ds", train=2, val=2, size=64)
    env = dict(os.environ, LOCAL_RANK="0", RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT="0",
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    r = subprocess.run([sys.executable, "-c", MAIN_ON_CPU, str(data), str(REPO / "model_yamls" / "yolov5s.yaml"),
                        str(tmp_path / "runs")], cwd=tmp_path, capture_output=True, text=True, timeout=180, env=env)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    assert "yolov5: insufficient CUDA devices for DDP command" in out  # the original, on a CPU
    assert "patched: {'device': 'cpu', 'backend': 'gloo'}" in out


def test_rank0_run_files(tmp_path, monkeypatch):
    for rank, written in (("1", False), ("0", True), ("-1", True)):
        monkeypatch.setenv("RANK", rank)
        path = tmp_path / f"opt{rank}.yaml"
        yolov5_train.yaml_save(path, {"a": 1})
        assert path.is_file() == written
    monkeypatch.setenv("RANK", "1")
    original(yolov5_train, "yaml_save")(tmp_path / "theirs.yaml", {"a": 1})
    assert (tmp_path / "theirs.yaml").is_file()  # the symptom: every rank writes it


class _Images:
    def __init__(self, folder):
        self.im_files = [str(folder / "a.jpg")]
        self.npy_files = [folder / "a.npy"]
        cv2.imwrite(self.im_files[0], np.full((32, 48, 3), 77, np.uint8))


def _killed_while_writing(monkeypatch):
    import numpy.lib.format as fmt

    real = fmt.write_array

    def half_then_killed(fp, array, *args, **kwargs):
        fp.write(b"\x93NUMPY")
        raise KeyboardInterrupt

    monkeypatch.setattr(fmt, "write_array", half_then_killed)
    return lambda: monkeypatch.setattr(fmt, "write_array", real)


@pytest.mark.parametrize("which", ["yolov5", "patched"])
def test_atomic_disk_cache(tmp_path, monkeypatch, which):
    images = _Images(tmp_path)
    cache = (original(dataloaders.LoadImagesAndLabels, "cache_images_to_disk") if which == "yolov5"
             else dataloaders.LoadImagesAndLabels.cache_images_to_disk)
    restore = _killed_while_writing(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        cache(images, 0)
    restore()
    if which == "yolov5":
        assert images.npy_files[0].is_file()  # the symptom: a truncated .npy every later run skips and fails on
        with pytest.raises(Exception):
            np.load(images.npy_files[0])
        return
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jpg"]  # nothing half-written, no temporary file
    cache(images, 0)
    assert np.array_equal(np.load(images.npy_files[0]), cv2.imread(images.im_files[0]))


def test_sync_bn_conversion_is_batch1_safe_and_cpu_capable():
    from yolo_attn.modules import PooledBatchNorm2d
    from yolo_attn.modules.sync_bn import SyncBatchNorm, SyncPooledBatchNorm2d

    model = yolo_attn.create_attn("mscam", 16)
    converted = yolov5_train.yolo_attn_convert_sync_batchnorm(model)  # as train() calls it
    kinds = {type(m) for m in converted.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)}
    assert kinds == {SyncBatchNorm, SyncPooledBatchNorm2d}  # CPU model: no torch SyncBatchNorm (GPU only)
    assert all(isinstance(m, PooledBatchNorm2d) for m in converted.modules() if type(m) is SyncPooledBatchNorm2d)
    theirs = torch.nn.SyncBatchNorm.convert_sync_batchnorm(yolo_attn.create_attn("mscam", 16))  # others: unchanged
    assert {type(m) for m in theirs.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)} == {
        torch.nn.SyncBatchNorm}


def test_devices():
    assert ddp.cpu_run("cpu") and ddp.cpu_run(" CPU ")
    assert ddp.cpu_run("") == (not torch.cuda.is_available())
