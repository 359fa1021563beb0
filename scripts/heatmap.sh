#!/usr/bin/env bash
# yolo-attn heatmaps per detection: see `scripts/heatmap.sh --help` and yolo_attn/cli/heatmap.py.
exec "$(dirname "${BASH_SOURCE[0]}")/_run.sh" yolo_attn.cli.heatmap "$@"
