#!/usr/bin/env bash
# GPU check: AMP training, yolov5 DDP (NCCL), fp16 latency and GPU memory in one report; see `scripts/gpu_check.sh --help`.
exec "$(dirname "${BASH_SOURCE[0]}")/_run.sh" yolo_attn.benchmarks.gpu_check "$@"
