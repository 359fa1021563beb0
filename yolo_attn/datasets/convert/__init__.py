"""Convert datasets on disk in their original formats (Pascal VOC XML, COCO JSON) to yolov5's layout, offline.

Both converters write ``OUT/images/<split>/``, ``OUT/labels/<split>/*.txt`` (one ``class cx cy w h`` row per box,
normalised to 0-1) and ``OUT/data.yaml``. The output is built in a hidden staging folder next to OUT
(``.OUT-converting-XXXXXXXX``) and renamed into place at the end, with a ``COMPLETE.json`` marker: an interrupted
conversion never leaves a folder that looks finished, and Ctrl-C leaves OUT as it was. An input inside OUT is
refused (``--overwrite`` would replace it).

The staging folder holds ``CONVERTING.json`` (pid, host, start time) while it is built. A conversion that was killed
(so could not remove its staging folder) leaves it behind; the next conversion to the same OUT removes such folders
when their process no longer runs on this host, and says which it removed and which it kept and why. It also
removes ``.OUT-old-XXXXXXXX``, an earlier OUT that a stopped conversion had replaced but not yet deleted, once OUT
is complete.

The shared pieces live here: staging/atomic publish, placing images (hard link, symlink or copy), box clipping and
writing label files. The format-specific parts are in :mod:`.voc` and :mod:`.coco`.
"""
import json
import os
import re
import shutil
import signal
import socket
import tempfile
import threading
from collections import Counter
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import yaml

from yolo_attn.errors import UsageError

MARKER = "COMPLETE.json"
IN_PROGRESS = "CONVERTING.json"
IMAGE_MODES = ("link", "symlink", "copy")


class Interrupted(KeyboardInterrupt):
    """Ctrl-C once OUT had been replaced: OUT is complete, only removing the conversion it replaced was cut short."""


@contextmanager
def staged_output(out, overwrite=False, sources=(), log=print):
    """Yield a hidden temporary folder next to ``out``; on success it replaces ``out`` in one rename.

    ``out`` may not exist yet, may be an empty folder, or (with ``overwrite``) a previous conversion (it has our
    marker). Any other existing path is refused: a folder we did not write is never deleted. So are ``sources``
    (the input files and folders) inside ``out``. On any error or interrupt the temporary folder is removed, and
    ``out`` is left as it was.
    """
    out = Path(out).expanduser().absolute()
    _check_out(out, overwrite)
    _check_sources(out, sources)
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(out, log)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-converting-", dir=out.parent))
    try:
        _write_in_progress(tmp)
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)  # mkdtemp makes it private; the dataset folder gets the usual permissions
        yield tmp
        if not (tmp / MARKER).is_file():
            raise RuntimeError("conversion finished without writing its completion marker")
        (tmp / IN_PROGRESS).unlink()
        _publish(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _check_out(out, overwrite):
    if out.exists() or out.is_symlink():
        if not out.is_dir() or out.is_symlink():
            raise UsageError(f"{out} exists and is not a plain folder (a file or a link); choose another output path.")
        if (out / MARKER).is_file():
            if not overwrite:
                raise UsageError(f"{out} already holds a converted dataset ({MARKER} is there). Pass --overwrite to "
                                 f"replace it, or choose another output folder.")
        elif any(out.iterdir()):
            raise UsageError(f"{out} exists and is not empty (and is not a conversion made by yolo-attn: no {MARKER}); "
                             f"it is left untouched. Choose a new or empty output folder.")


def _check_sources(out, sources):
    real_out = out.resolve()
    for source in sources:
        real = Path(source).expanduser().resolve()
        if real == real_out or real_out in real.parents:
            raise UsageError(f"{real} is inside OUT ({out}), which this conversion replaces: its images would be "
                             f"lost or become links to themselves. Convert from the original files, or write to "
                             f"another OUT.")


def _publish(tmp, out):
    """Rename ``tmp`` to ``out``; an earlier conversion at ``out`` is moved aside first and deleted last."""
    old = None
    with _sigint_held() as caught:
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}-old-", dir=out.parent))
            old.rmdir()
            out.rename(old)
        try:
            tmp.rename(out)
        except BaseException:
            if old is not None:
                old.rename(out)  # put the earlier conversion back
            raise
    try:
        if caught:
            raise KeyboardInterrupt
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except KeyboardInterrupt:
        left = f"; the conversion it replaced is partly left in {old} (the next conversion to this OUT removes it)" \
            if old is not None and old.exists() else ""
        raise Interrupted(f"interrupted after {out} was complete: it holds the new conversion{left}.") from None


@contextmanager
def _sigint_held():
    """Hold Ctrl-C back while the block runs (the renames that publish OUT); yields a list that records it."""
    caught = []
    previous = signal.getsignal(signal.SIGINT)
    if previous is None or threading.current_thread() is not threading.main_thread():
        yield caught  # no Python handler to restore, or not the thread that receives signals
        return
    signal.signal(signal.SIGINT, lambda *_: caught.append(True))
    try:
        yield caught
    finally:
        signal.signal(signal.SIGINT, previous)


# ---------------------------------------------------------------------------------------------------------------
# leftovers of killed conversions


def _write_in_progress(tmp):
    meta = dict(pid=os.getpid(), host=socket.gethostname(), started=datetime.now().isoformat(timespec="seconds"),
                process_start=_process_start(os.getpid()))
    (tmp / IN_PROGRESS).write_text(json.dumps(meta) + "\n", encoding="utf-8")


def _process_start(pid):
    """When process ``pid`` started, in clock ticks since boot (Linux), to tell it from a later one with its pid."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _running(pid, process_start):
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # no such process (a pid beyond any there can be, too)
        return False
    except PermissionError:  # another user's process: it exists
        pass
    now = _process_start(pid)
    return process_start is None or now is None or now == process_start


def _remove_leftovers(out, log):
    """Remove the staging folders of stopped conversions to ``out`` (and replaced OUTs they left); say what was
    removed in one line, and why any folder of ours was kept."""
    pattern = re.compile(re.escape(f".{out.name}-") + r"(converting|old)-[a-z0-9_]{8}")  # mkdtemp's 8 characters
    removed = []
    for folder in sorted(out.parent.iterdir()) if out.parent.is_dir() else ():
        kind = pattern.fullmatch(folder.name)
        if kind is None or folder.is_symlink() or not folder.is_dir():
            continue
        why_gone, why_kept = _staging_state(folder, out) if kind[1] == "converting" else _replaced_state(folder, out)
        if why_kept:
            log(f"kept {folder}: {why_kept}")
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(f"{folder} ({why_gone})")
    if removed:
        log(f"removed {len(removed)} leftover folder(s) of stopped conversions: {'; '.join(removed)}")


def _staging_state(folder, out):
    """``(why it can go, why it is kept)`` for a staging folder; one of them is None."""
    try:
        meta = json.loads((folder / IN_PROGRESS).read_text(encoding="utf-8"))
        pid, host = meta["pid"], meta["host"]
        if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
            raise ValueError(pid)
    except (OSError, ValueError, TypeError, KeyError):
        return None, (f"no readable {IN_PROGRESS} (made by an older yolo-attn, or a conversion just starting); "
                      f"delete it yourself if no conversion to {out} is running")
    if host != socket.gethostname():
        return None, (f"started on {host}, where this process cannot tell whether it still runs; delete it "
                      f"yourself once no conversion to {out} is running there")
    if _running(pid, meta.get("process_start")):
        return None, f"its conversion (pid {pid}) is still running (started {meta.get('started')})"
    return f"pid {pid} no longer runs", None


def _replaced_state(folder, out):
    if (out / MARKER).is_file():
        return f"an earlier conversion to {out}, already replaced", None
    return None, f"an earlier conversion, and {out} is not complete: rename it to {out} to get it back"


class ImagePlacer:
    """Put source images into the output: hard link (falling back to a copy across file systems), symlink or copy."""

    def __init__(self, mode="link"):
        if mode not in IMAGE_MODES:
            raise UsageError(f"--images takes one of {', '.join(IMAGE_MODES)}, got {mode!r}")
        self.mode = mode
        self.counts = Counter()

    def place(self, src, dst):
        src, dst = Path(src), Path(dst)
        if self.mode == "link":
            try:
                os.link(src, dst)
                self.counts["hard-linked"] += 1
                return
            except OSError:  # another file system, or links not permitted: copy instead
                pass
        elif self.mode == "symlink":
            os.symlink(src.resolve(), dst)
            self.counts["symlinked"] += 1
            return
        shutil.copy2(src, dst)
        self.counts["copied"] += 1

    def describe(self):
        text = ", ".join(f"{n} {k}" for k, n in self.counts.items()) or "no images"
        if self.mode == "link" and self.counts["copied"]:
            text += " (hard links were not possible: another file system? --images symlink avoids the copies)"
        return text


def label_row(cls, cx, cy, w, h):
    return f"{cls} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}"


def clipped_box(x1, y1, x2, y2, width, height):
    """Normalised ``(cx, cy, w, h)`` of the box with corners (x1, y1), (x2, y2) (pixels from the image's top-left
    corner), the corners clipped to the image first, and whether they had to be; ``(None, False)`` when no area is
    left inside the image."""
    cx1, cy1, cx2, cy2 = max(0.0, x1), max(0.0, y1), min(float(width), x2), min(float(height), y2)
    if cx2 <= cx1 or cy2 <= cy1:
        return None, False
    clipped = (cx1, cy1, cx2, cy2) != (x1, y1, x2, y2)
    return ((cx1 + cx2) / 2 / width, (cy1 + cy2) / 2 / height, (cx2 - cx1) / width, (cy2 - cy1) / height), clipped


def write_data_yaml(root, out, comment, train, val, names, test=None, extra=None):
    """``data.yaml`` with ``path:`` set to the final output folder (absolute, so yolov5 alone reads it too)."""
    data = {"path": str(Path(out).expanduser().absolute()), "train": _one_or_list(train), "val": _one_or_list(val)}
    if test:
        data["test"] = _one_or_list(test)
    data["names"] = dict(enumerate(names))
    data.update(extra or {})
    text = "".join(f"# {line}\n" for line in comment.splitlines()) + yaml.safe_dump(data, sort_keys=False,
                                                                                      allow_unicode=True)
    (Path(root) / "data.yaml").write_text(text, encoding="utf-8")


def _one_or_list(splits):
    entries = [f"images/{s}" for s in splits]
    return entries[0] if len(entries) == 1 else entries


def write_marker(root, **meta):
    (Path(root) / MARKER).write_text(json.dumps(meta, indent=2, default=str) + "\n", encoding="utf-8")


def safe_split_name(name, what):
    if not name or not all(c.isalnum() or c in "._-" for c in name) or name.startswith("."):
        raise UsageError(f"{what}: {name!r} is not usable as a split name (letters, digits, '.', '_', '-').")
    return name


def first_missing(paths, limit=5):
    """A short listing of missing files for an error message."""
    lines = [f"  {p}" for p in paths[:limit]]
    if len(paths) > limit:
        lines.append(f"  ... and {len(paths) - limit} more")
    return "\n".join(lines)

