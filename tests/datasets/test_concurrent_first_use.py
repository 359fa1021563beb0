"""First use by several processes at once (DDP ranks, or nodes sharing a folder): the embedded dataset is generated
once, under a file lock, and data-YAML preparation writes only per-process files."""
import multiprocessing
from pathlib import Path

import yaml

from yolo_attn.datasets import checks, shapes

PROCESSES = 3
PARAMS = dict(train=40, val=4, size=64)


def _ensure(root, barrier, results):
    calls = []
    generate = shapes.generate
    shapes.generate = lambda *args, **kwargs: calls.append(1) or generate(*args, **kwargs)
    barrier.wait()  # every process looks at the same moment: none has generated anything yet
    results.put((str(shapes.ensure(root, **PARAMS)), len(calls)))


def _prepare(data_yaml, barrier, results):
    barrier.wait()
    results.put(str(checks.prepare(data_yaml)))


def _run_together(target, arg):
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(PROCESSES), ctx.Queue()
    procs = [ctx.Process(target=target, args=(arg, barrier, results)) for _ in range(PROCESSES)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0] * PROCESSES
    return [results.get(timeout=5) for _ in procs]


def test_dataset_is_generated_once_by_concurrent_processes(tmp_path):
    root = tmp_path / "shapes"
    out = _run_together(_ensure, str(root))
    assert {path for path, _ in out} == {str(root / "shapes.yaml")}
    assert sorted(n for _, n in out) == [0] * (PROCESSES - 1) + [1]  # one generated, the others waited and used it
    assert len(list((root / "images" / "train").iterdir())) == PARAMS["train"]
    assert shapes.ensure(root, **PARAMS) == root / "shapes.yaml"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".shapes-")]  # no half-built folder left


def test_data_yaml_prepared_by_concurrent_processes(tmp_path):
    data = shapes.generate(tmp_path / "ds", train=4, val=2, size=64)
    user = tmp_path / "mine.yaml"
    text = yaml.safe_dump({"path": "ds", "train": "images/train", "val": "images/val", "names": {0: "a"}})
    user.write_text(text)
    out = _run_together(_prepare, str(user))
    assert len(set(out)) == PROCESSES  # each process its own resolved copy: nothing shared to race on
    for path in out:
        assert yaml.safe_load(Path(path).read_text())["path"] == str(data.parent)
    assert user.read_text() == text
