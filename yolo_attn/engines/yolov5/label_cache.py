"""yolov5's label cache, kept out of the dataset folder and free of pickle.

yolov5 (``LoadImagesAndLabels``) checks every image and label once and keeps the result in ``labels/<split>.cache``,
next to the user's data: each run writes into the dataset folder, and the next run reads the file back with
``np.load(allow_pickle=True)``, i.e. unpickles it, so a ``.cache`` file shipped with a downloaded dataset runs code.

Here the cache is a NumPy ``.npz`` of plain arrays (file names, boxes, image sizes, segment points and a JSON text of
the counts and messages), read with ``allow_pickle=False``: a tampered file can hold wrong numbers, never code. It lives
in yolo-attn's cache folder (``yolo_attn.paths.cache_dir()/labels``, e.g. ``~/.cache/yolo-attn/labels``; safe to
delete), one file per dataset state, named by a sha256 of every image path with its size and modification time and of
every label file's *content* (yolov5's own key is only the total size and the names, so an edited label of the same
length kept the old boxes). Nothing is read from or written to the dataset folder; where the cache folder cannot be
written, the labels are checked again on every run.
"""
import hashlib
import json
import os
from itertools import repeat
from multiprocessing.pool import Pool
from pathlib import Path

import numpy as np

from yolo_attn import paths

FORMAT = 1  # of the .npz below; part of the key


def _file_state(path, content):
    try:
        if content:
            return hashlib.sha256(Path(path).read_bytes()).digest()
        st = os.stat(path)
        return f"{st.st_size}:{st.st_mtime_ns}".encode()
    except OSError:
        return b"missing"


def cache_file(im_files, label_files, version):
    """Where the cache of exactly these images and labels (as they are now on disk) is kept."""
    h = hashlib.sha256(f"yolo-attn label cache {FORMAT}, yolov5 cache {version}\n".encode())
    for im, lb in zip(im_files, label_files):
        h.update(f"{im}\0{lb}\0".encode("utf-8", "surrogateescape"))
        h.update(_file_state(im, content=False) + b"\0" + _file_state(lb, content=True) + b"\n")
    return paths.cache_dir() / "labels" / f"{h.hexdigest()}.npz"


def _arrays(x):
    files = [k for k in x if k not in ("hash", "results", "msgs", "version")]
    labels = [np.asarray(x[f][0], np.float32).reshape(-1, 5) for f in files]
    segments = [[np.asarray(s, np.float32).reshape(-1, 2) for s in x[f][2]] for f in files]
    points = [s for segs in segments for s in segs]
    return dict(
        files=np.array(files, dtype=str), shapes=np.array([x[f][1] for f in files], np.int64).reshape(-1, 2),
        labels=np.concatenate(labels) if labels else np.zeros((0, 5), np.float32),
        label_counts=np.array([len(lb) for lb in labels], np.int64),
        segment_counts=np.array([len(s) for s in segments], np.int64),
        point_counts=np.array([len(p) for p in points], np.int64),
        points=np.concatenate(points) if points else np.zeros((0, 2), np.float32),
        meta=np.array(json.dumps({"results": list(x["results"]), "msgs": x["msgs"], "version": x["version"]})))


def _split(array, counts):
    return np.split(array, np.cumsum(counts)[:-1]) if len(counts) else []


def _from_arrays(a, key):
    labels = _split(a["labels"], a["label_counts"])
    points = iter(_split(a["points"], a["point_counts"]))
    segments = [[next(points) for _ in range(n)] for n in a["segment_counts"]]
    if not (len(a["files"]) == len(a["shapes"]) == len(labels) == len(segments)):
        raise ValueError("inconsistent lengths")
    x = {str(f): [lb, tuple(int(v) for v in shape), segs]
         for f, shape, lb, segs in zip(a["files"], a["shapes"], labels, segments)}
    meta = json.loads(str(a["meta"]))
    x.update(hash=key, results=tuple(meta["results"]), msgs=list(meta["msgs"]), version=meta["version"])
    return x


def read(file):
    """The cached labels (yolov5's dict), or None when there is no usable cache file."""
    try:
        with np.load(file, allow_pickle=False) as a:
            return _from_arrays({k: a[k] for k in a.files}, file.stem)
    except (OSError, ValueError, KeyError, TypeError, StopIteration):
        return None


def write(file, x, log):
    """Save atomically (a reader never sees half a file); a cache folder that cannot be written is only a warning."""
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        with paths.atomic_file(file, "wb", prefix=f".{file.stem[:16]}.", suffix=".partial") as f:
            np.savez(f, **_arrays(x))
    except OSError as e:
        log.warning(f"yolo-attn: label cache not saved ({e}); the labels are checked again next time")
        return
    log.info(f"yolo-attn: label cache saved to {file}")


def check_labels(dataset, path, prefix):
    """yolov5's ``cache_labels`` loop (verify_image_label on every image, in a pool unless workers=0), without the
    saving: the dict yolov5 expects."""
    from yolov5.utils import dataloaders as dl

    x, (nm, nf, ne, nc), msgs = {}, (0, 0, 0, 0), []
    desc = f"{prefix}Scanning {path.parent / path.stem}..."
    jobs = zip(dataset.im_files, dataset.label_files, repeat(prefix))
    pool = Pool(dl.NUM_THREADS) if dataset.workers != 0 else None
    try:
        results = pool.imap(dl.verify_image_label, jobs) if pool else map(dl.verify_image_label, jobs)
        pbar = dl.tqdm(results, desc=desc, total=len(dataset.im_files), bar_format=dl.TQDM_BAR_FORMAT)
        for im_file, lb, shape, segments, nm_f, nf_f, ne_f, nc_f, msg in pbar:
            nm, nf, ne, nc = nm + nm_f, nf + nf_f, ne + ne_f, nc + nc_f
            if im_file:
                x[im_file] = [lb, shape, segments]
            if msg:
                msgs.append(msg)
            pbar.desc = f"{desc} {nf} images, {nm + ne} backgrounds, {nc} corrupt"
        pbar.close()
    finally:
        if pool:
            pool.close()
    if msgs:
        dl.LOGGER.info("\n".join(msgs))
    if nf == 0:
        dl.LOGGER.warning(f"{prefix}WARNING ⚠️ No labels found in {path.parent / path.stem}. {dl.HELP_URL}")
    x.update(results=(nf, nm, ne, nc, len(dataset.im_files)), msgs=msgs, version=dataset.cache_version)
    return x


def cache_labels(self, path=Path("./labels.cache"), prefix=""):
    """``LoadImagesAndLabels.cache_labels`` with the cache described above; ``path`` (yolov5's cache file in the
    dataset folder) only names the labels folder in messages."""
    from yolov5.utils.dataloaders import LOGGER

    file = cache_file(self.im_files, self.label_files, self.cache_version)
    x = read(file)
    if x is not None:
        nf, nm, ne, nc, n = x["results"]
        LOGGER.info(f"{prefix}labels of {n} images from the cache {file}: {nf} labelled, {nm + ne} backgrounds, "
                    f"{nc} corrupt")
        if x["msgs"]:
            LOGGER.info("\n".join(x["msgs"]))
        return x
    x = check_labels(self, Path(path), prefix)
    write(file, x, LOGGER)
    x["hash"] = file.stem
    return x


def no_pickle_load(np_load):
    """``np.load`` for yolov5's data loaders: never unpickles (its label cache, its .npy image caches)."""

    def load(file, mmap_mode=None, allow_pickle=False, *args, **kwargs):
        return np_load(file, mmap_mode, False, *args, **kwargs)

    return load
