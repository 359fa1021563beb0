"""The command-line tools for the ultralytics engine (train, val, detect, export, bench): each command in
``yolo_attn.cli`` branches here when its --cfg/--weights is an ultralytics file (``yolo_attn.cli.engine``).

The same pipeline as the yolov5 tools (``cli.pipeline``: Parser, resolve_weights/resolve_data, write_summary,
run_cli); every flag the command does not take itself is an ultralytics setting (``key=value`` or ``--key value``,
``engines.ultralytics.options``). Runs are offline: no DNS probes, analytics, pip installs or downloads.
"""
from yolo_attn.engines.ultralytics.options import offline_environment

offline_environment()  # before any of these tools imports ultralytics (it reads the environment when imported)
