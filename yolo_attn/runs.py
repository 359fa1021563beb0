"""The steps every engine's train/val/detect/export takes around the engine's own tool: the weights and data it is
given, the run folder, what it was trained with, the closing summary, the identity-start model YAML.

Engine-neutral: it imports no engine; what differs (the model dict, the identity rows) is asked of the ``Engine``
object the caller passes in.
"""
import argparse
import json
import os
import re
import tempfile
from pathlib import Path

import yaml

from yolo_attn import paths
from yolo_attn.errors import BadParameter, UsageError

_OFFICIAL = re.compile(r"^yolov5[nsmlx]6?(-seg|-cls)?\.pt$")


def resolve_weights(weights):
    """A weights path that exists, resolved; a bare official name (yolov5s.pt) that is not on disk goes to yolov5,
    which downloads it where there is a network; anything else is a UsageError, never a download attempt."""
    path = Path(weights).expanduser()
    if path.is_file():
        return str(path.resolve())
    if not _OFFICIAL.match(str(weights)):
        raise UsageError(f"weights {weights} not found (looked at {path.resolve()})")
    if paths.online():
        return weights  # yolov5 fetches official weights (e.g. yolov5s.pt) from its GitHub releases
    raise UsageError(
        f"weights {weights!r} not found at {path.resolve()}, and this machine is offline, so yolov5 cannot download "
        f"them from its GitHub releases. Download the file on a networked machine and pass its path, or train from "
        f"scratch without --weights.")


def resolve_data(data):
    """The data YAML yolov5 should read for ``--data`` (a path, a name in data/, ``coco``/``voc``), checked; None:
    the embedded shapes dataset, generated on first use."""
    from yolo_attn.datasets import checks, shapes

    if data is None:
        return shapes.ensure(paths.EMBEDDED_DATASET)
    path = paths.resolve_data(data)
    return checks.prepare(path, is_yolov5_builtin=paths.is_yolov5_data(path))


def run_folder(project, name, exist_ok=False):
    """The run folder ``project/name`` (``name2``, ``name3``, ... when taken, as yolov5 numbers them)."""
    path = Path(project) / name
    if path.exists() and not exist_ok:
        stem, suffix = (path.with_suffix(""), path.suffix) if path.is_file() else (path, "")
        path = next(Path(f"{stem}{n}{suffix}") for n in range(2, 10 ** 9) if not os.path.exists(f"{stem}{n}{suffix}"))
    return path


def matches_path(path, inputs=None):
    """``--save-matches PATH`` as an absolute file path (None when not given); a folder, or one of the command's
    ``inputs`` (``{flag: path}``, e.g. its --weights), is refused."""
    if not path:
        return None
    path = Path(path).expanduser().resolve()
    refuse_overwrite("--save-matches", path, inputs or {})
    if path.is_dir():
        raise BadParameter("save_matches", f"{{name}} {path}: a folder; give a file name such as {path}/matches.npz")
    return path


def same_path(a, b):
    """Whether two paths name the same file or folder (through links, ``..``, a second hard link)."""
    try:
        if os.path.exists(a) and os.path.exists(b):
            return os.path.samefile(a, b)
        return os.path.realpath(a) == os.path.realpath(b)
    except (OSError, ValueError, TypeError):
        return False


def confined(path, *folders):
    """Whether ``path`` (resolved through links) is one of ``folders`` or inside one: the rule for every path a run
    folder from elsewhere records (it may name any file)."""
    try:
        real = Path(os.path.realpath(path))
        return any(real == Path(os.path.realpath(f)) or Path(os.path.realpath(f)) in real.parents for f in folders)
    except (OSError, ValueError, TypeError):
        return False


def refuse_overwrite(flag, output, inputs):
    """No output flag may overwrite an input: a UsageError when ``output`` is (the same file as) one of ``inputs``
    (``{flag: path}`` of the command's inputs, or (flag, path) pairs)."""
    if not output:
        return
    for name, given in (inputs.items() if isinstance(inputs, dict) else inputs):
        if given and same_path(output, given):
            raise UsageError(f"{flag} {output} would overwrite the input {name} {given}: give another path")


def training_options(checkpoint):
    """The options a checkpoint was trained with (its ``opt``), as a dict."""
    opt = checkpoint.get("opt") or {}
    return vars(opt) if isinstance(opt, argparse.Namespace) else dict(opt)


def write_summary(results, save_dir, **extra):
    """Print the closing line ``mAP50 <x> mAP50-95 <y>`` and write it as summary.json in the run folder."""
    precision, recall, map50, map5095 = (float(x) for x in results[:4])
    summary = {"mAP50": round(map50, 4), "mAP50-95": round(map5095, 4), "precision": round(precision, 4),
               "recall": round(recall, 4), **extra}
    path = Path(save_dir) / "summary.json"
    paths.write_atomically(path, json.dumps(summary, indent=2, default=str) + "\n")
    print(f"\nResults saved to {save_dir} (summary: {path})")
    print(f"mAP50 {map50:.4f} mAP50-95 {map5095:.4f}")
    return summary


def check_source(source):
    """A detection source (image, folder, glob, video, stream) checked before an engine opens it."""
    if source.isnumeric() or source.lower().startswith(("screen", "rtsp://", "rtmp://", "http://", "https://")):
        return source  # webcam, screen, stream or URL: the engine opens it
    path = Path(source).expanduser()
    if path.exists() or any(c in source for c in "*?["):  # a glob: the engine expands it (and says if nothing matches)
        return str(path.resolve()) if path.exists() else source
    raise UsageError(f"--source {source}: not found (looked at {path.resolve()}). Give an image, a video, a "
                     f"folder, a quoted glob such as 'images/*.jpg', or a webcam index.")


def with_identity_start(engine, cfg, ckpt, weights, folder=None):
    """The model YAML ``cfg`` with its attention rows absent from the checkpoint starting as the identity: a copy
    that lists them under ``identity_start:``, written into the run ``folder`` (a temporary folder when the engine
    makes its run folder itself); the user's file is left as it is. ``cfg`` itself when there are none."""
    d = engine.model_dict(cfg)
    rows = engine.identity_rows((ckpt.get("ema") or ckpt["model"]).float().state_dict(), d)
    if not rows:
        return cfg
    print(f"yolo-attn: attention rows {rows} are new to {Path(weights).name}; they start as the identity "
          f"(--attention-init default to use the modules' own initialisation)")
    d["identity_start"] = rows
    copy = Path(folder or tempfile.mkdtemp(prefix="yolo-attn-cfg-")) / Path(str(cfg)).name
    copy.parent.mkdir(parents=True, exist_ok=True)
    paths.write_atomically(copy, yaml.safe_dump(d, sort_keys=False))
    return copy
