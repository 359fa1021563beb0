"""Shared steps of the ultralytics tools: the environment, the model and data paths, the run folder, the summary."""
import contextlib
import tempfile
from pathlib import Path

import yaml

from yolo_attn.engines.ultralytics.options import offline_environment, parse_settings
from yolo_attn.errors import UsageError
from yolo_attn.runs import resolve_data, resolve_weights, write_summary

SETTINGS_HELP = ("Every other flag is an ultralytics setting, as key=value or --key value (epochs=30, --imgsz 320, "
                 "--batch-size 8, --device 0, --noval, ...): https://docs.ultralytics.com/usage/cfg/")


@contextlib.contextmanager
def usage_errors():
    """ultralytics reports many input problems with assert (run_cli would call them yolov5's) or FileNotFoundError (a
    traceback): a UsageError naming ultralytics instead."""
    try:
        yield
    except AssertionError as e:
        if not str(e):
            raise
        raise UsageError(f"ultralytics stopped: {e}") from None
    except FileNotFoundError as e:  # ultralytics' own message names the file or folder
        raise UsageError(f"ultralytics: {e}") from None


def start(rest):
    """The ultralytics settings of the command line; sets the offline environment before ultralytics is imported
    (``import yolo_attn`` has installed the adapter)."""
    offline_environment()
    settings = parse_settings(rest)
    keep_thread_count()
    return settings


def keep_thread_count():
    """ultralytics' ``select_device`` sets torch's threads to its ``NUM_THREADS`` (cpu_count - 1) on the CPU: it
    sets the count this command chose instead (``yolo_attn.threads.using``, around the command)."""
    import torch
    from ultralytics.utils import torch_utils

    torch_utils.NUM_THREADS = torch.get_num_threads()


def checkpoint(weights):
    """An ultralytics checkpoint path, resolved and loaded restricted (refuses other files clearly)."""
    from yolo_attn.engines.ultralytics.checkpoint import torch_load

    path = resolve_weights(weights)
    if Path(path).suffix != ".pt":
        raise UsageError(f"--weights {weights}: give the PyTorch checkpoint training wrote (weights/best.pt)")
    return path, torch_load(path)


def data_yaml(data):
    """The data YAML ultralytics should read (checked; None: the embedded dataset). A ``download:`` section is left
    out (ultralytics would run it: a URL, a shell command or Python code from the file) in a copy; the user's file is
    not changed."""
    path = Path(resolve_data(data))
    d = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(d, dict) or "download" not in d:
        return str(path)
    d.pop("download")
    if not Path(str(d.get("path") or ".")).is_absolute():
        d["path"] = str((path.parent / str(d.get("path") or ".")).resolve())
    tmp = Path(tempfile.mkdtemp(prefix="yolo-attn-data-")) / path.name
    tmp.write_text(yaml.safe_dump(d, sort_keys=False), encoding="utf-8")
    return str(tmp)


def trained_settings(ckpt):
    args = ckpt.get("train_args")
    return dict(args) if isinstance(args, dict) else {}


def run_name(weights):
    w = Path(weights)
    return (w.parent.parent.name if w.parent.name == "weights" else w.stem) or "exp"


def metrics_summary(metrics, save_dir, **extra):
    """``write_summary`` from ultralytics' metrics dict (``metrics/precision(B)``, ... ``metrics/mAP50-95(B)``)."""
    keys = ("metrics/precision(B)", "metrics/recall(B)", "metrics/mAP50(B)", "metrics/mAP50-95(B)")
    missing = [k for k in keys if k not in metrics]
    if missing:
        raise SystemExit(f"ultralytics reported no {', '.join(missing)}; see the log above")
    return write_summary([metrics[k] for k in keys], save_dir, engine="ultralytics", **extra)
