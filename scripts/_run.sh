#!/usr/bin/env bash
# Shared launcher: bootstrap the environment, then run a yolo-attn command module with the given args.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup.sh"
module="$1"; shift
exec "$ROOT/.venv/bin/python" -m "$module" "$@"
