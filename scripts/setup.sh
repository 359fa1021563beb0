#!/usr/bin/env bash
# Idempotent bootstrap: creates .venv and installs yolo-attn (editable) with its test extras.
# Re-runs are instant unless pyproject.toml changed. Override the interpreter with PYTHON=python3.X.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
STAMP="$VENV/.yolo-attn-installed"
WANT="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)"

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]] && "$VENV/bin/python" -c "import yolo_attn" 2>/dev/null; then
    exit 0
fi
echo "yolo-attn setup: installing into $VENV (first run takes a few minutes: torch, torchvision, yolov5)..." >&2
if [[ ! -x "$VENV/bin/python" ]]; then
    "${PYTHON:-python3}" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip >&2
"$VENV/bin/python" -m pip install --quiet -e "$ROOT[test]" >&2
"$VENV/bin/python" -c "import yolo_attn, torchvision.ops; print('yolo-attn setup: ok', yolo_attn.__version__)" >&2
echo "$WANT" > "$STAMP"
