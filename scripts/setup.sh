#!/usr/bin/env bash
# Idempotent bootstrap: creates .venv and installs yolo-attn (editable) with its test extras, at the versions the test
# suite passed with (scripts/constraints.txt). YOLO_ATTN_LATEST=1 installs the newest versions pyproject.toml allows.
# Re-runs are instant unless pyproject.toml, the constraints or that choice changed. Interpreter: PYTHON=python3.X.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
STAMP="$VENV/.yolo-attn-installed"
LOCK="$ROOT/scripts/constraints.txt"
if [[ "${YOLO_ATTN_LATEST:-0}" == 1 ]]; then
    CONSTRAINTS=()
    MODE=latest
else
    CONSTRAINTS=(-c "$LOCK")
    MODE=locked
fi
WANT="$(cat "$ROOT/pyproject.toml" "$LOCK" | sha256sum | cut -d' ' -f1) $MODE"

# The venv must import this checkout's package: an editable install made from another clone re-points it there.
installed_here() {
    (cd / && "$VENV/bin/python" -c "import sys, yolo_attn; sys.exit(yolo_attn.__file__ != sys.argv[1])" \
        "$ROOT/yolo_attn/__init__.py") 2>/dev/null
}
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]] && installed_here; then
    exit 0
fi
echo "yolo-attn setup: installing into $VENV ($MODE versions; first run takes a few minutes: torch, torchvision, yolov5)..." >&2
if [[ ! -x "$VENV/bin/python" ]]; then
    "${PYTHON:-python3}" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip >&2
"$VENV/bin/python" -m pip install --quiet -e "$ROOT[test]" "${CONSTRAINTS[@]}" >&2
installed_here || { echo "yolo-attn setup: .venv does not import $ROOT/yolo_attn after installing" >&2; exit 1; }
"$VENV/bin/python" -c "import yolo_attn, torchvision.ops; print('yolo-attn setup: ok', yolo_attn.__version__)" >&2
echo "$WANT" > "$STAMP"
