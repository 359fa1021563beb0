"""Tampered sweep state files (#22 item 5): structure-aware mutations of a real sweep's sweep.json, summary.json and
matches.npz end in a message naming the file (exit 2) or a clean run, never a traceback, within seconds, and write
nothing outside the sweep folder."""
import json
import shutil
import time

import numpy as np
import pytest

from sweep_helpers import FakeCommands
from test_ablate_cli import _argv, _run, setup  # noqa: F401  (the fixture)

RUN = "runs/tiny-yolov5s-seed0"


@pytest.fixture(scope="module")
def template(setup, tmp_path_factory):  # noqa: F811
    out = tmp_path_factory.mktemp("sweep") / "out"
    assert _run(_argv(setup, out), FakeCommands({"tiny-yolov5s": 0.5, "tiny-yolov5s-se": 0.9})) == 0
    return out


def _json(value):
    return lambda p: p.write_text(value if isinstance(value, str) else json.dumps(value))


def _manifest(edit):
    def mutate(p):
        d = json.loads(p.read_text())
        edit(d)
        p.write_text(json.dumps(d))
    return mutate


def _npz(edit):
    def mutate(p):
        with np.load(p, allow_pickle=False) as f:
            arrays = dict(f)
        edit(arrays)
        np.savez(p, **arrays)
    return mutate


MUTATIONS = {
    "sweep.json": [_json([]), _json("{"), _json('"text"'), _json("[" * 100000), lambda p: p.write_bytes(b"\xff\xfe"),
                   _manifest(lambda d: d.update(engine=3)), _manifest(lambda d: d.update(train_args="--epochs 1")),
                   _manifest(lambda d: d.update(train_args=[1, 2])), _manifest(lambda d: d.pop("train_args")),
                   _manifest(lambda d: d.update(cfgs=[])), _manifest(lambda d: d.update(cfgs={"a": 3})),
                   _manifest(lambda d: d.update(train_args=["--epochs", "x"])),
                   _manifest(lambda d: d.update(engine="nope"))],
    f"{RUN}/val/summary.json": [_json([]), _json([1, 2]), _json("nan"), _json("{"), _json({"mAP50": "x"}),
                                _json({"coco_stats": [1]}), _json({"coco_stats": {"AP": "x"}})],
    f"{RUN}/summary.json": [_json([]), _json({"weights": 5}), _json({"weights": "/etc/passwd"}),
                            _json({"seconds": "x"})],
    f"{RUN}/val/matches.npz": [_npz(lambda a: a.pop("conf")), _npz(lambda a: a.pop("paths")),
                               _npz(lambda a: a.pop("format_version", None)),
                               _npz(lambda a: a.update(format_version=np.array(["x"]))),
                               _npz(lambda a: a.update(conf=np.zeros(3))),
                               _npz(lambda a: a.update(correct=np.array(["a"]))),
                               _npz(lambda a: a.update(pred_image=np.full_like(a["pred_image"], 10 ** 6))),
                               lambda p: p.write_bytes(p.read_bytes()[:100]), lambda p: p.write_text("not a zip")],
}
CASES = [(f, k) for f, ms in MUTATIONS.items() for k in range(len(ms))]


def _snapshot(folder):
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("file,k", CASES, ids=[f"{f.split('/')[-1]}-{k}" for f, k in CASES])
def test_a_tampered_state_file(setup, template, tmp_path, capsys, file, k):  # noqa: F811
    out = tmp_path / "out"
    shutil.copytree(template, out)
    MUTATIONS[file][k](out / file)
    outside = _snapshot(setup[0])
    start = time.monotonic()
    code = _run(_argv(setup, out), FakeCommands({"tiny-yolov5s": 0.5, "tiny-yolov5s-se": 0.9}))
    err = capsys.readouterr().err
    assert time.monotonic() - start < 30
    assert "Traceback" not in err
    assert code in (0, 1, 2)
    if code == 2:  # a message that names the file, its run or the sweep folder
        assert "yolo-attn: error:" in err and any(s in err for s in (file.split("/")[-1], "tiny-yolov5s-seed0",
                                                                     f"{out} holds")), err
    assert _snapshot(setup[0]) == outside  # the dataset and the model YAMLs: untouched
