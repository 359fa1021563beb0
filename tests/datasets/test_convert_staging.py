"""The staging folder both converters build OUT in: interrupted (Ctrl-C) and killed conversions, leftovers of
killed ones removed by the next run. Real signals to real conversion processes, slowed down by a wrapper."""
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from yolo_attn.datasets.convert import coco
from test_convert_coco import VAL_ANNOTATIONS, VAL_IMAGES, make_split

# The conversion process of the tests: `yolo-attn convert` with a long pause after each placed image (argv[1]
# "place") or before deleting the conversion it replaced ("replace"), so that a signal arrives at that point.
# SIGINT gets Python's usual handler even if the test runner was started with SIGINT ignored (as background jobs of
# a non-interactive shell are).
SLOW_CONVERT = textwrap.dedent("""
    import shutil, signal, sys, time
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from yolo_attn.datasets import convert

    place, rmtree = convert.ImagePlacer.place, shutil.rmtree

    def slow_place(self, src, dst):
        place(self, src, dst)
        time.sleep(60)

    def slow_rmtree(path, *args, **kwargs):
        if "-old-" in str(path):
            time.sleep(60)
        rmtree(path, *args, **kwargs)

    if sys.argv[1] == "place":
        convert.ImagePlacer.place = slow_place
    else:
        shutil.rmtree = slow_rmtree
    from yolo_attn.cli.convert import main
    from yolo_attn.cli.pipeline import run_cli
    sys.exit(run_cli(main, sys.argv[2:]))
""")


def quiet(*_):
    pass


@pytest.fixture
def val_split(tmp_path):
    return make_split(tmp_path / "src", "val2017", VAL_IMAGES, VAL_ANNOTATIONS)


def _staging(parent, name="coco"):
    return sorted(parent.glob(f".{name}-converting-*"))


def _converting(out):
    return any(s.glob("images/*/*") for s in _staging(out.parent))


def _start_slow_conversion(slow, ready, val_split, out, *extra):
    proc = subprocess.Popen([sys.executable, "-c", SLOW_CONVERT, slow, "coco", *map(str, val_split), str(out), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=out.parent)
    deadline = time.monotonic() + 240  # the start-up imports torch: slow on a busy machine
    while not ready(out):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the conversion did not start placing images: {proc.communicate()}")
        time.sleep(0.1)
    return proc


def test_ctrl_c_is_a_clean_exit_that_keeps_out_as_it_was(val_split, tmp_path):
    out = tmp_path / "coco"
    coco.convert([val_split], out, log=quiet)
    before = (out / "COMPLETE.json").read_text()
    proc = _start_slow_conversion("place", _converting, val_split, out, "--overwrite")
    try:
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr[-3000:]
    assert "interrupted; nothing was written to OUT" in stderr and "Traceback" not in stderr
    assert (out / "COMPLETE.json").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["coco", "src"]


def test_staging_of_a_killed_conversion_is_removed_by_the_next_run(val_split, tmp_path):
    out = tmp_path / "coco"
    proc = _start_slow_conversion("place", _converting, val_split, out)
    proc.kill()  # SIGKILL: no clean-up of its own possible
    proc.communicate(timeout=60)
    [stale] = _staging(tmp_path)
    marker = json.loads((stale / "CONVERTING.json").read_text())
    assert marker["pid"] == proc.pid and marker["started"]
    notes = []
    coco.convert([val_split], out, log=notes.append)
    assert not stale.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["coco", "src"]
    assert not (out / "CONVERTING.json").exists() and (out / "COMPLETE.json").is_file()
    assert [n for n in notes if n.startswith(("removed", "kept"))] == \
        [f"removed 1 leftover folder(s) of stopped conversions: {stale} (pid {proc.pid} no longer runs)"]


def _replacing(out):
    return any(out.parent.glob(f".{out.name}-old-*")) and (out / "COMPLETE.json").is_file()


def test_ctrl_c_after_out_was_replaced_says_so_and_the_next_run_tidies_up(val_split, tmp_path):
    out = tmp_path / "coco"
    coco.convert([val_split], out, log=quiet)
    proc = _start_slow_conversion("replace", _replacing, val_split, out, "--overwrite", "--images", "copy")
    try:
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    [old] = tmp_path.glob(".coco-old-*")
    assert proc.returncode == 130, stderr[-3000:]
    assert f"interrupted after {out} was complete: it holds the new conversion; the conversion it replaced is " \
           f"partly left in {old}" in stderr and "Traceback" not in stderr
    assert json.loads((out / "COMPLETE.json").read_text())["images"] == "4 copied"  # the new one
    notes = []
    coco.convert([val_split], out, overwrite=True, log=notes.append)
    assert f"removed 1 leftover folder(s) of stopped conversions: {old} (an earlier conversion to {out}, already " \
           f"replaced)" in notes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["coco", "src"]


def _fake_staging(parent, suffix, marker):
    folder = parent / f".coco-converting-{suffix}"
    (folder / "images").mkdir(parents=True)
    if marker is not None:
        (folder / "CONVERTING.json").write_text(json.dumps(marker))
    return folder


def test_only_our_staging_folders_of_dead_conversions_are_removed(val_split, tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = socket.gethostname()
    gone = _fake_staging(tmp_path, "dead1234", {"pid": dead.pid, "host": host, "started": "2024-01-01T00:00:00"})
    alive = _fake_staging(tmp_path, "live1234", {"pid": os.getpid(), "host": host, "started": "now"})
    elsewhere = _fake_staging(tmp_path, "host1234", {"pid": dead.pid, "host": "another-machine", "started": "x"})
    unmarked = _fake_staging(tmp_path, "nomark12", None)
    garbled = _fake_staging(tmp_path, "garbled1", None)
    (garbled / "CONVERTING.json").write_text("{not json")
    replaced = tmp_path / ".coco-old-abcd1234"  # OUT is not there: the only copy of an earlier conversion
    replaced.mkdir()
    others = [_fake_staging(tmp_path, "toolong123", None), tmp_path / ".other-converting-dead1234"]
    others[1].mkdir()
    (others[1] / "CONVERTING.json").write_text(json.dumps({"pid": dead.pid, "host": host, "started": "x"}))
    notes = []
    coco.convert([val_split], tmp_path / "coco", log=notes.append)
    assert not gone.exists()
    assert all(p.is_dir() for p in [alive, elsewhere, unmarked, garbled, replaced, *others])
    text = "\n".join(notes)
    assert f"removed 1 leftover folder(s) of stopped conversions: {gone} (pid {dead.pid} no longer runs)" in text
    assert f"kept {alive}: its conversion (pid {os.getpid()}) is still running" in text
    assert f"kept {elsewhere}: started on another-machine, where this process cannot tell whether it still " \
           f"runs" in text
    for folder in (unmarked, garbled):
        assert f"kept {folder}: no readable CONVERTING.json" in text
    assert f"kept {replaced}: an earlier conversion, and {tmp_path / 'coco'} is not complete: rename it to " \
           f"{tmp_path / 'coco'} to get it back" in text
    assert not any(str(p) in text for p in others)


def test_ctrl_c_is_held_back_while_out_is_renamed():
    from yolo_attn.datasets.convert import _sigint_held

    before = signal.getsignal(signal.SIGINT)
    try:
        with _sigint_held() as caught:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C was not held back")
    assert caught == [True] and signal.getsignal(signal.SIGINT) is before
