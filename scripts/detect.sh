#!/usr/bin/env bash
# yolo-attn detect (yolov5 detect.py with the yolo-attn layers): see yolo_attn/cli/detect.py and docs/export.md.
exec "$(dirname "${BASH_SOURCE[0]}")/_run.sh" yolo_attn.cli.detect "$@"
