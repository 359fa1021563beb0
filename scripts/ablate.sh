#!/usr/bin/env bash
# yolo-attn ablate: every variant x every seed trained and validated alike, paired bootstrap vs the baseline; see `scripts/ablate.sh --help`.
exec "$(dirname "${BASH_SOURCE[0]}")/_run.sh" yolo_attn.cli.ablate "$@"
