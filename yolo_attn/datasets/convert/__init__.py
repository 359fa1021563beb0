"""Convert datasets on disk in their original formats (Pascal VOC XML, COCO JSON) to yolov5's layout, offline.

Both converters write ``OUT/images/<split>/``, ``OUT/labels/<split>/*.txt`` (one ``class cx cy w h`` row per box,
normalised to 0-1) and ``OUT/data.yaml``. The output is built in a hidden folder next to OUT and renamed into place
at the end, with a ``COMPLETE.json`` marker: an interrupted conversion never leaves a folder that looks finished.

The shared pieces live here: staging/atomic publish, placing images (hard link, symlink or copy) and writing
label files. The format-specific parts are in :mod:`.voc` and :mod:`.coco`.
"""
import json
import os
import shutil
import tempfile
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import yaml

from yolo_attn.errors import UsageError

MARKER = "COMPLETE.json"
IMAGE_MODES = ("link", "symlink", "copy")


@contextmanager
def staged_output(out, overwrite=False):
    """Yield a hidden temporary folder next to ``out``; on success it replaces ``out`` in one rename.

    ``out`` may not exist yet, may be an empty folder, or (with ``overwrite``) a previous conversion (it has our
    marker). Any other existing path is refused: a folder we did not write is never deleted. On any error the
    temporary folder is removed, and ``out`` is left as it was.
    """
    out = Path(out).expanduser().absolute()
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
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-converting-", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp makes it private; the dataset folder gets the usual permissions
    try:
        yield tmp
        if not (tmp / MARKER).is_file():
            raise RuntimeError("conversion finished without writing its completion marker")
        old = None
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}-old-", dir=out.parent))
            old.rmdir()
            out.rename(old)
        try:
            tmp.rename(out)
        except OSError:
            if old is not None:
                old.rename(out)  # put the earlier conversion back
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


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


def clip01(values):
    """Values clipped to [0, 1], and whether any had to be."""
    clipped = [min(1.0, max(0.0, v)) for v in values]
    return clipped, clipped != list(values)


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

