#!/usr/bin/env bash
# yolo-attn bench: the ablation table (params, GFLOPs, latency, training step, memory, mAP); see `scripts/bench.sh --help`.
exec "$(dirname "${BASH_SOURCE[0]}")/_run.sh" yolo_attn.cli.bench "$@"
