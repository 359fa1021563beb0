#!/usr/bin/env bash
# Heatmaps/second, vectorised vs one backward pass per detection: see yolo_attn/benchmarks/heatmap_speed.py.
exec "$(dirname "${BASH_SOURCE[0]}")/_run.sh" yolo_attn.benchmarks.heatmap_speed "$@"
