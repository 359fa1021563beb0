#!/usr/bin/env bash
# Write scripts/constraints.txt from the current .venv: run it after scripts/test.sh passed in that environment.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="$ROOT/.venv/bin/python"
LOCK="$ROOT/scripts/constraints.txt"
{
    echo "# The exact versions the test suite passed with ($("$PY" -c 'import platform; print("Python", platform.python_version(), platform.machine())'), $(date +%F))."
    echo "# scripts/setup.sh installs with these as pip constraints; YOLO_ATTN_LATEST=1 scripts/setup.sh installs the newest"
    echo "# versions pyproject.toml allows instead. Written by scripts/lock.sh; tests/test_dependencies.py checks it."
    "$PY" -m pip freeze --exclude-editable | grep -v '^#'
} > "$LOCK.new"
mv "$LOCK.new" "$LOCK"
echo "wrote $LOCK ($(grep -vc '^#' "$LOCK") packages)"
