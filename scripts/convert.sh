#!/usr/bin/env bash
# yolo-attn convert: see `scripts/convert.sh --help` and docs/datasets.md.
exec "$(dirname "${BASH_SOURCE[0]}")/_run.sh" yolo_attn.cli.convert "$@"
