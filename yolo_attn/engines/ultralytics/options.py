"""ultralytics' settings from a command line: ``key=value`` (ultralytics' own CLI style), ``--key value``,
``--flag`` and the yolov5 spellings our scripts accept (``--batch-size``, ``--img``, ``--noval``, ...).

Values are read as YAML scalars or lists (``16``, ``0.5``, ``true``, ``[640, 480]``); nothing is evaluated. Every
key must be one of ultralytics' settings (``ultralytics.cfg.DEFAULT_CFG_DICT``) and every value passes ultralytics'
own type check (``check_cfg``); a mistake is a UsageError naming the flag.
"""
import os
from pathlib import Path

import yaml

from yolo_attn.errors import UsageError

# yolov5 flag -> ultralytics key, or (key, value) for a flag without value
ALIASES = {"batch_size": "batch", "img": "imgsz", "img_size": "imgsz", "conf_thres": "conf", "iou_thres": "iou",
           "noval": ("val", False), "noplots": ("plots", False), "nosave": ("save", False),
           "save_txt": ("save_txt", True), "save_conf": ("save_conf", True), "exist_ok": ("exist_ok", True),
           "dynamic": ("dynamic", True), "half": ("half", True), "simplify": ("simplify", True),
           "cos_lr": ("cos_lr", True), "rect": ("rect", True), "single_cls": ("single_cls", True)}
REFUSED = {
    "hyp": "ultralytics takes hyper-parameters as settings: give them as key=value (lr0=0.002 mosaic=0.5 ...)",
    "model": "give the model with --cfg (a YAML) or --weights (a checkpoint)",
    "mode": "the command sets it", "task": "the command sets it (detection)",
    **{k: "the ultralytics engine trains on several GPUs with its own DDP: give the devices, --device 0,1 "
          "(--nproc-per-node and the other torchrun options are for yolov5 models)"
       for k in ("nproc_per_node", "nnodes", "node_rank", "master_addr", "master_port")},
}
# The training command's settings on the embedded dataset (without --data), chosen by measurement on a 2-core CPU
# (docs/measurements.md, "The ultralytics engine on the embedded dataset"); any setting given overrides them.
EMBEDDED_DEFAULTS = {"epochs": 15, "imgsz": 160, "batch": 16, "val": False}
# The environment the ultralytics commands run in (read by ultralytics when it is imported): no DNS probes, version
# checks, analytics or pip installs. A value the user set is kept.
OFFLINE_ENV = {"YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "false"}


def offline_environment():
    """Set ``OFFLINE_ENV`` (unless already set); call before ultralytics is imported."""
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)


def _value(text):
    if text.lower() in ("none", "null"):
        return None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _key(name, keys):
    import difflib

    key = name.lstrip("-").replace("-", "_")
    if key in REFUSED:
        raise UsageError(f"{name}: {REFUSED[key]}")
    alias = ALIASES.get(key, key)
    target = alias[0] if isinstance(alias, tuple) else alias
    if target not in keys:
        close = difflib.get_close_matches(key, list(keys) + list(ALIASES), n=1)
        raise UsageError(f"{name}: not an ultralytics setting.{f' Did you mean {close[0]}?' if close else ''} "
                         f"Settings: https://docs.ultralytics.com/usage/cfg/ (as key=value or --key value)")
    return alias


def parse_settings(tokens):
    """{ultralytics key: value} from the command-line ``tokens`` (what our own parser did not take)."""
    from ultralytics.cfg import DEFAULT_CFG_DICT, check_cfg

    out, i, tokens = {}, 0, list(tokens)
    while i < len(tokens):
        token = tokens[i]
        if not token.startswith("--") and "=" in token:
            name, text = token.split("=", 1)
        elif token.startswith("--"):
            name, eq, text = token.partition("=")
            if not eq:
                takes_value = i + 1 < len(tokens) and not tokens[i + 1].startswith("--") and "=" not in tokens[i + 1]
                text = tokens[i + 1] if takes_value else None
                i += takes_value
        else:
            raise UsageError(f"unexpected argument {token!r}: give settings as key=value or --key value")
        alias = _key(name, DEFAULT_CFG_DICT)
        if isinstance(alias, tuple):
            key, value = alias if text is None else (alias[0], _value(text))
        else:
            key, value = alias, True if text is None else _value(text)
        out[key] = value
        i += 1
    try:
        check_cfg(out, hard=True)
    except (TypeError, ValueError) as e:
        raise UsageError(f"ultralytics setting: {e}") from None
    if out.get("project"):
        out["project"] = str(Path(out["project"]).expanduser().resolve())
    return out
