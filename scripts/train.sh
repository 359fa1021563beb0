#!/usr/bin/env bash
# yolo-attn train: see `scripts/train.sh --help` and docs/training.md.
exec "$(dirname "${BASH_SOURCE[0]}")/_run.sh" yolo_attn.cli.train "$@"
