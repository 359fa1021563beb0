import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def run_cli(tmp_path):
    """Run ``python -m yolo_attn.cli.<command> args`` in a fresh process, in tmp_path; return the result."""

    def run(command, *args, timeout=600):
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        return subprocess.run([sys.executable, "-m", f"yolo_attn.cli.{command}", *map(str, args)], cwd=tmp_path,
                              capture_output=True, text=True, timeout=timeout, env=env)

    return run
