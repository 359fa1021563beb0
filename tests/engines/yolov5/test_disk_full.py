"""A checkpoint save that runs out of disk space: one message (which file, how much space, nothing overwritten) instead
of torch's traceback; simulated by a file that fills up, and for real on a 1 MB tmpfs where one can be mounted."""
import errno
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch

import yolo_attn  # noqa: F401  (patches yolov5)
from yolo_attn.engines.yolov5.disk_full import DiskFull
from yolo_attn.errors import UsageError


class FillsUp:
    """A file object that takes ``room`` bytes, then fails as a full disk does."""

    def __init__(self, f, room):
        self._f, self._room = f, room

    def write(self, data):
        if len(data) > self._room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self._room -= len(data)
        return self._f.write(data)

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()


def checkpoint(n):
    return {"epoch": 3, "model": torch.nn.Linear(n, 10), "optimizer": {"state": {0: torch.zeros(n)}}}


def test_a_full_disk_is_one_clear_message_and_overwrites_nothing(tmp_path, monkeypatch):
    import yolov5.train as train

    last = tmp_path / "run" / "weights" / "last.pt"
    last.parent.mkdir(parents=True)
    train.torch.save(checkpoint(10), last)
    before = last.read_bytes()
    fdopen = os.fdopen
    monkeypatch.setattr(os, "fdopen", lambda fd, *a, **k: FillsUp(fdopen(fd, *a, **k), room=4096))
    with pytest.raises(UsageError) as e:
        train.torch.save(checkpoint(100_000), last)  # 4.4 MB of tensors
    message = str(e.value)
    assert isinstance(e.value, DiskFull) and e.value.__cause__ is None and e.value.__suppress_context__
    assert re.search(rf"no space left on the disk of {re.escape(str(last.parent))} to save last.pt: \d+\.\d MB free, "
                     rf"the checkpoint needs about 4\.4 MB", message), message
    assert f"{last} was not changed (the copy saved before is intact)" in message
    assert f"continue the run with: yolo-attn train --resume {tmp_path / 'run'}" in message
    assert last.read_bytes() == before
    assert sorted(p.name for p in last.parent.iterdir()) == ["last.pt"]  # no partial file left


def test_other_write_errors_are_left_as_they_are(tmp_path, monkeypatch):
    import yolov5.train as train

    fdopen = os.fdopen

    class Broken(FillsUp):
        def write(self, data):
            raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fdopen", lambda fd, *a, **k: Broken(fdopen(fd, *a, **k), room=0))
    with pytest.raises((OSError, RuntimeError)) as e:
        train.torch.save(checkpoint(10), tmp_path / "best.pt")
    assert not isinstance(e.value, UsageError)


REAL = """
    import os, sys, torch
    import yolo_attn, yolov5.train as train
    from yolo_attn.errors import UsageError
    folder = sys.argv[1]
    os.makedirs(f"{folder}/run/weights")
    last = f"{folder}/run/weights/last.pt"
    train.torch.save({"model": torch.nn.Linear(200, 100)}, last)  # 80 kB
    before = open(last, "rb").read()
    try:
        train.torch.save({"model": torch.nn.Linear(2000, 1000)}, last)  # 8 MB: does not fit
    except UsageError as e:
        print("MESSAGE", e)
    print("INTACT", open(last, "rb").read() == before, sorted(os.listdir(f"{folder}/run/weights")))
"""


def _tmpfs_available():
    if shutil.which("unshare") is None:
        return False
    r = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt"], capture_output=True)
    return r.returncode == 0


@pytest.mark.skipif(not _tmpfs_available(), reason="no user namespace to mount a tmpfs in")
@pytest.mark.slow
def test_on_a_real_full_tmpfs(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    script = (f"mount -t tmpfs -o size=1m tmpfs {mount} && exec {sys.executable} -c "
              f"{shlex.quote(textwrap.dedent(REAL))} {mount}")
    r = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, OMP_NUM_THREADS="1"))
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    message = next(line for line in r.stdout.splitlines() if line.startswith("MESSAGE "))
    assert "no space left on the disk of" in message and "the checkpoint needs about 8.0 MB" in message, message
    assert "last.pt was not changed (the copy saved before is intact)" in message
    assert "INTACT True ['last.pt']" in r.stdout, out[-3000:]
