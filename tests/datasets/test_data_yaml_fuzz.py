"""Seeded fuzz of the data-YAML checks (``checks.prepare``): every mutation of a valid data YAML, as text or as
values, either passes or raises DatasetError with a message; none hangs or raises anything else."""
import copy
import random
import time

import pytest
import yaml

from yolo_attn.datasets import checks, shapes
from yolo_attn.errors import DatasetError

VALUES = [None, "", ".", "..", "/", "/nonexistent", "images/train", "images/val", "images/nowhere", "labels/train",
          "a\x00b", "x" * 5000, "*", "**", "~", 0, -1, 1e308, float("nan"), True, [], ["images/train"],
          ["images/train", "images/missing"], {}, {"a": 1}, {0: "circle"}, {-1: "x"}, ["circle"] * 3, "red",
          "circle, square", "https://example.com/x.zip", "bash -c 'touch x'", "ＣＢＡＭ"]
KEYS = ["path", "train", "val", "test", "names", "nc", "download"]
TEXT_EDITS = ["!!python/object/apply:os.system ['touch MARKER']", "{", "]", "a: [", "- -", "names: *x",
              "x: &a [*a]", "\t", "%YAML 9.9", "---\n---", "\x00", "\ufeff", "a: b: c", "? a\n: b"]


def _mutated_text(base, rng):
    d = copy.deepcopy(base)
    for _ in range(rng.randint(1, 3)):
        key = rng.choice(KEYS)
        if rng.random() < 0.15:
            d.pop(key, None)
        else:
            d[key] = rng.choice(VALUES)
    text = yaml.safe_dump(d, allow_unicode=True)
    if rng.random() < 0.3:
        lines = text.splitlines()
        lines.insert(rng.randrange(len(lines) + 1), rng.choice(TEXT_EDITS))
        text = "\n".join(lines)
    return text


@pytest.mark.slow
def test_fuzz_mutated_data_yamls_pass_or_give_a_dataset_error(tmp_path):
    root = shapes.generate(tmp_path / "ds", train=4, val=2, size=32, seed=1).parent
    base = yaml.safe_load((root / "shapes.yaml").read_text())
    rng = random.Random(20261128)
    outcomes, deadline = {"passed": 0, "refused": 0}, time.perf_counter() + 8
    case = 0
    while time.perf_counter() < deadline or sum(outcomes.values()) < 60:
        text = _mutated_text(base, rng)
        path = root / f"fuzz{case}.yaml"
        case += 1
        try:
            path.write_text(text, encoding="utf-8", errors="surrogatepass")
        except ValueError:
            continue
        start = time.perf_counter()
        try:
            checks.prepare(path, save_dir=tmp_path / "runs" / f"r{case}")
            outcomes["passed"] += 1
        except DatasetError as e:
            assert str(e).strip()
            outcomes["refused"] += 1
        except Exception as e:  # noqa: BLE001
            pytest.fail(f"{type(e).__name__}: {e} for the data YAML:\n{text}")
        assert time.perf_counter() - start < 10, f"took over 10 s:\n{text}"
    assert not (tmp_path / "MARKER").exists() and not (root / "MARKER").exists()
    assert outcomes["refused"] > 20 and outcomes["passed"] > 0, outcomes
