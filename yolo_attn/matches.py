"""The per-image record of a yolov5 validation run: what a bootstrap over validation images resamples.

For every validated image, yolov5's ``val.run`` appends one ``stats`` entry ``(correct, conf, pcls, tcls)``:

- ``correct``: ``n_pred x 10`` booleans, whether each prediction is a true positive at IoU 0.50, 0.55, ..., 0.95
  (yolov5's ``process_batch``: greedy one-to-one matching of predictions to same-class labels by IoU);
- ``conf``, ``pcls``: each prediction's confidence and class;
- ``tcls``: the class of each target (label) of the image.

``ap_per_class`` then computes the APs from the concatenation of all entries. A ``MatchRecord`` keeps exactly
those entries, concatenated in image order, with the image index of every prediction and target and the
image's file path, so that the metrics can be recomputed on any multiset of images (a bootstrap resample) and
two models' records can be checked to cover the same images in the same order.

Capture: each engine's validation fills one (``Engine.match_collector()``: yolov5's in
``engines/yolov5/matches.py``, ultralytics' in ``engines/ultralytics/matches.py``). Records of ultralytics'
validation have the same entries (its ``metrics.stats``) but ultralytics computes AP with other end points of the
precision-recall curve: a record names its ``ap_rule``, and the metrics recomputed from it follow that rule
(``ablation.bootstrap``).

Numpy only: this module is engine-neutral, below the engines.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Protocol, Sequence

import numpy as np

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)  # yolov5's iouv: the columns of ``correct``
FORMAT_VERSION = 2  # 2 added ap_rule; a format-1 file is a yolov5 record
_ARRAYS = ("paths", "correct", "conf", "pred_cls", "pred_image", "target_cls", "target_image")
# How AP is computed from a class's precision-recall points (bootstrap.compute_ap): the engine whose validation
# made the record. yolov5: after the last point a straight line to (recall 1, precision 0); ultralytics (the
# pinned version; tests compare with its ap_per_class): precision 0 from the last point's recall on.
AP_LINE_TO_END, AP_ZERO_AFTER_LAST = "yolov5", "ultralytics"  # the rules' names, as records store them
AP_RULES = (AP_LINE_TO_END, AP_ZERO_AFTER_LAST)


class ImageMatches(NamedTuple):
    """One image's yolov5 ``stats`` entry, with the image's path."""

    path: str
    correct: np.ndarray  # (n_pred, n_iou) bool
    conf: np.ndarray  # (n_pred,) float
    pred_cls: np.ndarray  # (n_pred,) class ids
    target_cls: np.ndarray  # (n_targets,) class ids


def _class_ids(values: Any, what: str) -> np.ndarray:
    """Class ids as int64; yolov5 keeps them as floats, which must be whole numbers."""
    values = np.asarray(values).reshape(-1)
    ids = values.astype(np.int64)
    if not np.array_equal(ids, values):
        raise ValueError(f"{what} must hold whole class ids, got {values[ids != values][:3]}")
    return ids


def _image_index(counts: np.ndarray) -> np.ndarray:
    """For per-image counts, the image index of each concatenated element."""
    return np.repeat(np.arange(len(counts), dtype=np.int64), counts)


@dataclass(frozen=True, eq=False)
class MatchRecord:
    """All images' ``stats`` entries of one validation run, concatenated in image order.

    Predictions of image ``i`` are the rows where ``pred_image == i``, its targets those where
    ``target_image == i``; both index arrays are non-decreasing, so the concatenation order (which decides how
    ``np.argsort`` orders equal confidences in ``ap_per_class``) is the order of yolov5's ``stats``.
    ``conf`` keeps the dtype yolov5 gave it (float32, or float16 with ``--half``) for the same reason.
    """

    paths: np.ndarray  # (n_images,) str
    correct: np.ndarray  # (n_pred, n_iou) bool
    conf: np.ndarray  # (n_pred,) float
    pred_cls: np.ndarray  # (n_pred,) int64
    pred_image: np.ndarray  # (n_pred,) int64, non-decreasing
    target_cls: np.ndarray  # (n_targets,) int64
    target_image: np.ndarray  # (n_targets,) int64, non-decreasing
    ap_rule: str = AP_LINE_TO_END  # one of AP_RULES: the engine that validated

    def __post_init__(self) -> None:
        if self.ap_rule not in AP_RULES:
            raise ValueError(f"ap_rule must be one of {', '.join(AP_RULES)}, got {self.ap_rule!r}")
        n_pred, n_img = len(self.conf), len(self.paths)
        if self.correct.ndim != 2 or self.correct.shape[0] != n_pred or self.correct.dtype != bool:
            raise ValueError(f"correct must be a bool array of shape ({n_pred}, n_iou), got "
                             f"{self.correct.dtype} {self.correct.shape}")
        for name, n in (("pred_cls", n_pred), ("pred_image", n_pred), ("target_image", len(self.target_cls))):
            if getattr(self, name).shape != (n,):
                raise ValueError(f"{name} must have shape ({n},), got {getattr(self, name).shape}")
        for name in ("pred_image", "target_image"):
            index = getattr(self, name)
            if len(index) and (np.any(np.diff(index) < 0) or index[0] < 0 or index[-1] >= n_img):
                raise ValueError(f"{name} must be non-decreasing image indices in [0, {n_img})")
        for name in ("pred_cls", "target_cls"):
            if getattr(self, name).size and getattr(self, name).min() < 0:
                raise ValueError(f"{name} must hold class ids >= 0")
        self._check_one_to_one()

    def _check_one_to_one(self) -> None:
        """yolov5's ``process_batch`` matches each target at most once per IoU threshold: an image can never have
        more true positives of a class at one threshold than targets of that class. The bootstrap relies on it."""
        tp = self.correct.any(1)
        if not tp.any():
            return
        k = int(max(self.pred_cls.max(), self.target_cls.max(initial=0))) + 1
        keys, inverse = np.unique(self.pred_image[tp] * k + self.pred_cls[tp], return_inverse=True)
        n_tp = np.stack([np.bincount(inverse, weights=col, minlength=keys.size) for col in self.correct[tp].T], 1)
        t_keys, t_counts = np.unique(self.target_image * k + self.target_cls, return_counts=True)
        n_t = np.zeros(keys.size, np.int64)
        if t_keys.size:
            at = np.minimum(np.searchsorted(t_keys, keys), t_keys.size - 1)
            n_t = np.where(t_keys[at] == keys, t_counts[at], 0)
        bad = np.flatnonzero(n_tp.max(1) > n_t)
        if bad.size:
            image, cls = divmod(int(keys[bad[0]]), k)
            raise ValueError(f"image {self.paths[image]!r}, class {cls}: {int(n_tp[bad[0]].max())} true positives at "
                             f"one IoU threshold but {int(n_t[bad[0]])} target(s) of that class; yolov5 matches each "
                             f"target at most once per threshold")

    @property
    def n_images(self) -> int:
        return len(self.paths)

    @classmethod
    def from_images(cls, images: Sequence[ImageMatches], ap_rule: str = AP_LINE_TO_END) -> "MatchRecord":
        """Concatenate per-image entries (in the order given: keep the validation order)."""
        n_iou = images[0].correct.shape[1] if images and np.ndim(images[0].correct) == 2 else len(IOU_THRESHOLDS)
        correct = [np.asarray(im.correct, dtype=bool).reshape(-1, n_iou) for im in images]
        conf = [np.asarray(im.conf).reshape(-1) for im in images]
        return cls(paths=np.array([str(im.path) for im in images], dtype=str),
                   correct=np.concatenate(correct) if images else np.zeros((0, n_iou), bool),
                   conf=np.concatenate(conf) if images else np.zeros(0, np.float32),
                   pred_cls=_class_ids(np.concatenate([np.ravel(im.pred_cls) for im in images] or [[]]), "pred_cls"),
                   pred_image=_image_index(np.array([len(c) for c in conf], dtype=np.int64)),
                   target_cls=_class_ids(np.concatenate([np.ravel(im.target_cls) for im in images] or [[]]),
                                         "target_cls"),
                   target_image=_image_index(np.array([np.size(im.target_cls) for im in images], dtype=np.int64)),
                   ap_rule=ap_rule)

    def image(self, i: int) -> ImageMatches:
        """Image ``i``'s entry, as yolov5 made it."""
        p = self.pred_image == i
        t = self.target_image == i
        return ImageMatches(str(self.paths[i]), self.correct[p], self.conf[p], self.pred_cls[p], self.target_cls[t])

    def stats(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(tp, conf, pred_cls, target_cls)`` as ``val.run`` passes them to ``ap_per_class``."""
        return self.correct, self.conf, self.pred_cls, self.target_cls

    def save(self, path: str | Path) -> Path:
        """Write an ``.npz`` of plain arrays (no pickled objects; paths as a unicode array), through a temporary
        file in the same folder: a record on disk is always complete."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as f:  # a file object: numpy would append ".npz" to a path without it
                np.savez_compressed(f, format_version=np.array(FORMAT_VERSION), ap_rule=np.array(self.ap_rule),
                                    **{name: getattr(self, name) for name in _ARRAYS})
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "MatchRecord":
        """Read a record written by ``save`` (``allow_pickle=False``: loading never runs code)."""
        with np.load(path, allow_pickle=False) as data:
            version = int(data["format_version"]) if "format_version" in data else None
            if version not in (1, FORMAT_VERSION):
                raise ValueError(f"{path}: not a match record of format 1 or {FORMAT_VERSION} (format {version})")
            rule = str(data["ap_rule"]) if version >= 2 else AP_LINE_TO_END
            return cls(**{name: data[name] for name in _ARRAYS}, ap_rule=rule)


def check_aligned(records: Sequence[MatchRecord]) -> None:
    """Raise ``ValueError`` unless every record covers the same images (by file path) in the same order.

    A paired bootstrap draws images by index; the same index must mean the same image in every record."""
    if not records:
        raise ValueError("no match records given")
    ref = records[0].paths
    rules = sorted({r.ap_rule for r in records})
    if len(rules) > 1:
        raise ValueError(f"the match records come from different engines' validation ({', '.join(rules)}), which "
                         "compute AP differently; compare models validated by one engine")
    for k, record in enumerate(records[1:], start=1):
        if record.paths.shape == ref.shape and np.array_equal(record.paths, ref):
            continue
        only_ref = sorted(set(ref.tolist()) - set(record.paths.tolist()))
        only_this = sorted(set(record.paths.tolist()) - set(ref.tolist()))
        if only_ref or only_this:
            detail = (f"{len(only_ref)} image(s) only in record 0 (e.g. {only_ref[:3]}), "
                      f"{len(only_this)} only in record {k} (e.g. {only_this[:3]})")
        elif len(ref) != len(record.paths):
            detail = "the same image files, but repeated a different number of times"
        else:
            first = int(np.flatnonzero(ref != record.paths)[0])
            detail = (f"the same images in a different order (first difference at index {first}: "
                      f"{str(ref[first])!r} vs {str(record.paths[first])!r})")
        raise ValueError(f"match records 0 and {k} do not cover the same validation images "
                         f"({len(ref)} vs {len(record.paths)} images): {detail}. Validate every model on the same "
                         f"dataset split, with the same settings.")


class MatchCollector(Protocol):
    """What an engine's ``match_collector()`` returns: attached to one validation by that engine's val runner (the
    way to attach it is the engine's own), it gives the record of the images validated since the last start."""

    def reset(self) -> None:
        """Forget the images seen so far (called when a validation starts)."""

    def record(self) -> MatchRecord:
        """The images of the last validation, in validation order; ValueError when none was recorded."""
