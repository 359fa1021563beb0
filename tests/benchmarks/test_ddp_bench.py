"""The DDP benchmark runs end to end on a tiny setting and prints its figures (their values are not asserted)."""
import re
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_ddp_benchmark_prints_step_times(tmp_path):
    r = subprocess.run([sys.executable, "-m", "yolo_attn.benchmarks.ddp", "--imgsz", "64", "--batch", "2", "--steps",
                        "1", "--skip-ram"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    assert re.search(r"step time: 1 process \d+ ms; 2 processes \(DDP, gloo\) \d+ ms \(\d+\.\d\dx\); "
                     r"synchronisation -?\d+ ms per step", out), out
