#!/usr/bin/env bash
# yolo-attn export (ONNX / TorchScript, checked against PyTorch): see yolo_attn/cli/export.py and docs/export.md.
exec "$(dirname "${BASH_SOURCE[0]}")/_run.sh" yolo_attn.cli.export "$@"
