"""mAP from per-image matches, its fast bootstrap, and the paired bootstrap of variant minus baseline.

What is resampled
-----------------
The validation images. One bootstrap resample draws ``n`` image indices with replacement from the ``n``
validation images; its mAP is the one yolov5's ``ap_per_class`` gives on that multiset of images: every
prediction and every target of an image counts as often as the image was drawn (its integer *weight*), APs are
averaged over the classes that have at least one target in the resample. Predictions and matches are never
recomputed: an image's matches (``correct``) do not depend on which other images are in the set.

Pairing
-------
Every resample (the same indices) is applied to both models and to every seed's record. Some images are hard
and some easy, and which of them a finite set happens to contain moves every model's mAP up or down together;
in the difference ``mean over seeds(variant) - mean over seeds(baseline)`` computed on the *same* resample this
image-difficulty variance cancels, leaving the uncertainty of the difference itself. Independent resamples per
model would add it instead and give intervals several times too wide. Seeds are not resampled (there are few):
the interval is the image-sampling uncertainty of the seed-averaged difference; the spread over seeds is
reported beside it as mean ± std per model.

The fast weighted mAP
---------------------
``ap_per_class`` ranks all predictions by ``np.argsort(-conf)``. ``WeightedMAP`` does that sort once per record,
on the same array (so equal confidences keep exactly yolov5's order on the full set; in a resample an image
drawn ``w`` times contributes ``w`` copies of each prediction at its place in that order). A resample is then a
vector of image weights, and for each class and IoU threshold only these are needed:

- ``t``: the weighted cumulative true positives at each true-positive prediction, and ``c``: the weighted number
  of the class's predictions ranked at or above it (from per-segment sums of the weights, segments being the
  runs of predictions between consecutive true positives);
- the precision there, ``t / c``, and its suffix maximum (yolov5's precision envelope): on the expanded list
  the envelope at any point equals the best precision of a true positive at or after it, because a false
  positive never has a higher precision than the true positive that ends its run;
- the weighted target and prediction counts of the class.

yolov5's 101-point ``np.interp(x, mrec, mpre)`` is then evaluated in closed form: for a grid point ``x`` with
``k`` unit true positives of recall ``<= x`` (recall ``m / (n_l + eps)`` as yolov5 rounds it), the value is the
envelope at the ``k+1``-th unit true positive when ``k < T``; at ``x == recall_T`` it is the last point's
precision ``T / n_pred``; beyond it, the straight line to yolov5's sentinel ``(1, 0)``, computed with
``np.interp``'s own formula; at ``x == 1`` the sentinel's 0. Every division and comparison uses the same
integers and float64 operations as yolov5, so all-ones weights reproduce ``map_scores`` to the last bit (tested;
against yolov5's own ``ap_per_class`` the tests allow 1e-12 and find equality), and a resample costs work
proportional to the number of predictions ranked above each class's last true positive, vectorised over a
chunk of resamples.

ultralytics' rule (records with ``ap_rule == "ultralytics"``) differs only after the last point: its
``compute_ap`` adds ``(recall_T, 0)`` before the sentinel ``(1, 0)``, so ``np.interp`` gives 0 at every grid point
``x >= recall_T`` (at ``x == recall_T`` it takes the last of the equal abscissae). The points below ``recall_T``,
the ranking and the averaging over classes are the same; the tests compare both rules with the engines' own
``ap_per_class``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Sequence

import numpy as np

from yolo_attn.matches import AP_LINE_TO_END, AP_RULES, AP_ZERO_AFTER_LAST, MatchRecord, check_aligned

EPS = 1e-16  # ap_per_class's eps in the recall denominator
RECALL_GRID = np.linspace(0, 1, 101)  # compute_ap's 101-point (COCO) interpolation
VERDICTS = ("better", "within noise", "worse")


class MapScores(NamedTuple):
    """mAP50 and mAP50-95 as yolov5 reports them (means over the classes present in the targets)."""

    map50: float | np.ndarray
    map50_95: float | np.ndarray


# ---------------------------------------------------------------------------------------------------------------
# (a) the reference: yolov5's ap_per_class / compute_ap, restated on numpy alone


def compute_ap(recall: np.ndarray, precision: np.ndarray, rule: str = AP_LINE_TO_END) -> float:
    """The engine's ``compute_ap``: sentinels, precision envelope, 101-point interpolated area."""
    if rule not in AP_RULES:
        raise ValueError(f"rule must be one of {', '.join(AP_RULES)}, got {rule!r}")
    if rule == AP_ZERO_AFTER_LAST:
        mrec = np.concatenate(([0.0], recall, [recall[-1] if len(recall) else 1.0], [1.0]))
        mpre = np.concatenate(([1.0], precision, [0.0], [0.0]))
    else:
        mrec = np.concatenate(([0.0], recall, [1.0]))
        mpre = np.concatenate(([1.0], precision, [0.0]))
    mpre = np.flip(np.maximum.accumulate(np.flip(mpre)))
    return float(np.trapezoid(np.interp(RECALL_GRID, mrec, mpre), RECALL_GRID))


def ap_per_class(tp: np.ndarray, conf: np.ndarray, pred_cls: np.ndarray, target_cls: np.ndarray,
                 rule: str = AP_LINE_TO_END) -> tuple[np.ndarray, np.ndarray]:
    """The engine's ``ap_per_class`` reduced to what mAP needs: ``(classes present in the targets, AP[class, iou])``."""
    order = np.argsort(-conf)
    tp, pred_cls = tp[order], pred_cls[order]
    classes, nt = np.unique(target_cls, return_counts=True)
    ap = np.zeros((classes.shape[0], tp.shape[1]))
    for ci, c in enumerate(classes):
        i = pred_cls == c
        if i.sum() == 0 or nt[ci] == 0:
            continue
        fpc = (1 - tp[i]).cumsum(0)
        tpc = tp[i].cumsum(0)
        recall = tpc / (nt[ci] + EPS)
        precision = tpc / (tpc + fpc)
        for j in range(tp.shape[1]):
            ap[ci, j] = compute_ap(recall[:, j], precision[:, j], rule)
    return classes, ap


def map_scores(record: MatchRecord) -> MapScores:
    """mAP50 and mAP50-95 of a record on its full image set, as its engine's validation computes them (0 without
    any TP)."""
    if not record.correct.any():  # val.run's guard: no true positive at all -> metrics stay 0 (ultralytics: 0 too)
        return MapScores(0.0, 0.0)
    _, ap = ap_per_class(*record.stats(), rule=record.ap_rule)
    return MapScores(float(ap[:, 0].mean()), float(ap.mean(1).mean()))


# ---------------------------------------------------------------------------------------------------------------
# (b) the weighted version, for many resamples at once


@dataclass(frozen=True)
class _Column:
    """One class at one IoU threshold: its true positives in ranking order."""

    tp_image: np.ndarray  # image of each true positive
    tp_row: np.ndarray  # its row in the class's table of "weighted count ranked above"


@dataclass(frozen=True)
class _ClassPlan:
    """What a resample needs of one class (present in the targets)."""

    entry_image: np.ndarray  # image of each prediction ranked above the class's last true positive (any IoU)
    seg_starts: np.ndarray  # first entry of each segment that ends at a true positive (np.add.reduceat starts)
    lead_zero: bool  # the top-ranked prediction is a true positive: nothing is ranked above the first one
    n_rows: int  # number of predictions that are a true positive at some IoU threshold
    columns: tuple[_Column, ...]


def _plan_class(correct: np.ndarray, image: np.ndarray) -> _ClassPlan:
    """Precompute one class from its predictions in ranking order (``correct``: n x n_iou, ``image``: n)."""
    need = np.flatnonzero(correct.any(1))  # positions whose "count ranked above" is needed
    if need.size == 0:
        empty = np.zeros(0, np.int64)
        return _ClassPlan(empty, empty, False, 0, tuple(_Column(empty, empty) for _ in range(correct.shape[1])))
    lead_zero = bool(need[0] == 0)
    starts = need[:-1] if lead_zero else np.concatenate(([0], need[:-1]))
    columns = []
    for j in range(correct.shape[1]):
        pos = np.flatnonzero(correct[:, j])
        columns.append(_Column(image[pos], np.searchsorted(need, pos)))
    return _ClassPlan(image[:need[-1]], starts, lead_zero, need.size, tuple(columns))


def _counts_by_image(cls: np.ndarray, image: np.ndarray, classes: np.ndarray, n_images: int) -> np.ndarray:
    """(n_images x n_classes) float64 counts of the elements of each (image, class); other classes dropped."""
    col = np.searchsorted(classes, cls)
    keep = (col < classes.size) & (classes[np.minimum(col, classes.size - 1)] == cls)
    counts = np.zeros((n_images, classes.size))
    np.add.at(counts, (image[keep], col[keep]), 1.0)
    return counts


class WeightedMAP:
    """mAP50 and mAP50-95 of one record under integer image weights (bootstrap resamples), fast.

    Build once per record (one sort); call with a ``(n_resamples, n_images)`` array of non-negative integer
    weights. All-ones weights give ``map_scores(record)`` exactly."""

    def __init__(self, record: MatchRecord, chunk: int = 128) -> None:
        self.n_images = record.n_images
        self.chunk = chunk
        self.rule = record.ap_rule
        self.classes = np.unique(record.target_cls)
        order = np.argsort(-record.conf)  # ap_per_class's ranking, ties included
        pcls, image, correct = record.pred_cls[order], record.pred_image[order], record.correct[order]
        by_class = np.argsort(pcls, kind="stable")  # group by class, keep the ranking within a class
        pcls, image, correct = pcls[by_class], image[by_class], correct[by_class]
        bounds = np.searchsorted(pcls, np.concatenate((self.classes, [np.iinfo(np.int64).max])))
        self.plans = [_plan_class(correct[a:b], image[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
        # all classes' segments in one list, so that one gather and one reduceat per resample sum them all
        n_entries = np.cumsum([0] + [p.entry_image.size for p in self.plans])
        n_segs = np.cumsum([0] + [p.seg_starts.size for p in self.plans])
        self.entry_image = np.concatenate([p.entry_image for p in self.plans] + [np.zeros(0, np.int64)])
        self.seg_starts = np.concatenate([p.seg_starts + n for p, n in zip(self.plans, n_entries)]
                                         + [np.zeros(0, np.int64)])
        self.seg_slices = [slice(a, b) for a, b in zip(n_segs[:-1], n_segs[1:])]
        self.n_iou = record.correct.shape[1]
        self.target_counts = _counts_by_image(record.target_cls, record.target_image, self.classes, self.n_images)
        self.pred_counts = _counts_by_image(record.pred_cls, record.pred_image, self.classes, self.n_images)

    def __call__(self, weights: np.ndarray) -> MapScores:
        """``MapScores`` of arrays (one value per row of ``weights``)."""
        weights = np.asarray(weights)
        if weights.ndim != 2 or weights.shape[1] != self.n_images:
            raise ValueError(f"weights must have shape (n_resamples, {self.n_images}), got {weights.shape}")
        if not np.issubdtype(weights.dtype, np.integer) or (weights.size and weights.min() < 0):
            raise ValueError("weights must be non-negative integers (how often each image is drawn)")
        # the largest weighted count a resample can reach must fit the integer type of the cumulative sums
        bound = int(weights.sum(1).max(initial=0)) * int(self.pred_counts.sum(1).max(initial=0))
        dtype = np.int32 if bound < 2 ** 31 else np.int64
        out = [self._chunk(np.ascontiguousarray(weights[s:s + self.chunk], dtype=dtype))
               for s in range(0, weights.shape[0], self.chunk)]
        return MapScores(np.concatenate([o[0] for o in out] or [np.zeros(0)]),
                         np.concatenate([o[1] for o in out] or [np.zeros(0)]))

    def _chunk(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Scores for one chunk of resamples; ``w`` is (n_chunk x n_images)."""
        n_l = w @ self.target_counts  # (n_chunk x n_classes), whole numbers
        n_p = w @ self.pred_counts
        ap = np.zeros((w.shape[0], self.classes.size, self.n_iou))
        seg = self._segment_sums(w)
        for ci, plan in enumerate(self.plans):
            above = _ranked_above(plan, seg[:, self.seg_slices[ci]])
            for j, column in enumerate(plan.columns):
                ap[:, ci, j] = _column_ap(column, above, w, n_l[:, ci], n_p[:, ci], self.rule)
        present = n_l > 0  # yolov5 averages over the classes present in the targets
        n_present = np.maximum(present.sum(1), 1)
        map50 = (ap[:, :, 0] * present).sum(1) / n_present
        map50_95 = (ap.mean(2) * present).sum(1) / n_present
        return map50, map50_95

    def _segment_sums(self, w: np.ndarray) -> np.ndarray:
        """(n_chunk x n_segments) weighted prediction counts of every segment, one resample at a time: a 1-D
        gather and reduceat per resample avoid a chunk-sized (n_chunk x ~n_pred) temporary."""
        seg = np.empty((w.shape[0], self.seg_starts.size), w.dtype)
        if self.seg_starts.size:
            for b in range(w.shape[0]):
                seg[b] = np.add.reduceat(w[b].take(self.entry_image), self.seg_starts)
        return seg


def _ranked_above(plan: _ClassPlan, seg: np.ndarray) -> np.ndarray:
    """(n_chunk x n_rows): weighted number of the class's predictions ranked strictly above each row, from the
    class's segment sums ``seg`` (n_chunk x n_segments)."""
    above = np.cumsum(seg, axis=1)
    if plan.lead_zero:
        above = np.concatenate((np.zeros((seg.shape[0], 1), seg.dtype), above), axis=1)
    return above


def _column_ap(column: _Column, above: np.ndarray, w: np.ndarray, n_l: np.ndarray, n_p: np.ndarray,
               rule: str = AP_LINE_TO_END) -> np.ndarray:
    """AP of one class at one IoU threshold for each resample of the chunk (the engine's compute_ap, closed
    form)."""
    n_chunk, n_tp = w.shape[0], column.tp_image.size
    tw = np.take(w, column.tp_image, axis=1)  # (n_chunk x n_tp) weights of the true positives
    t = np.cumsum(tw, axis=1)
    upto = np.take(above, column.tp_row, axis=1)
    upto += tw  # weighted predictions ranked at or above, this one's copies included
    # A weight-0 (absent) prediction keeps its predecessor's t with a count ranked above at least as large: its
    # value never exceeds the previous present true positive's precision, so it cannot raise the envelope at a
    # present one, and it is never looked up. Only where nothing present is ranked above it is it 0/0 = NaN;
    # fmax keeps such NaNs out of the envelope.
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = t / upto
    envelope_rev = np.fmax.accumulate(precision[:, ::-1], axis=1) if n_tp else precision  # suffix max, reversed
    total = t[:, -1] if n_tp else np.zeros(n_chunk, w.dtype)
    denom = (n_l + EPS)[:, None]
    x = RECALL_GRID[None, :]
    k = _units_at_or_below(x, denom, total[:, None])
    inside = k < total[:, None]
    values = _envelope_at_unit(t, envelope_rev, k + 1, inside)
    if rule == AP_ZERO_AFTER_LAST:  # from the last point's recall on: 0
        values = np.where(inside, values, 0.0)
        return np.where(n_p > 0, np.trapezoid(values, RECALL_GRID, axis=-1), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r_end = total[:, None] / denom  # recall of the last point
        p_end = (total / n_p)[:, None]  # precision of the last point: T / n_pred
        slope = (0.0 - p_end) / (1.0 - r_end)  # np.interp's segment to the sentinel (1, 0)
        tail = np.where(x == 1.0, 0.0, np.where(x == r_end, p_end, slope * (x - r_end) + p_end))
    values = np.where(inside, values, tail)
    ap = np.trapezoid(values, RECALL_GRID, axis=-1)
    return np.where(n_p > 0, ap, 0.0)  # no prediction of the class in the resample: AP 0 (yolov5 skips it)


def _units_at_or_below(x: np.ndarray, denom: np.ndarray, total: np.ndarray) -> np.ndarray:
    """How many of the unit true positives m = 1..T have recall ``m / denom <= x`` (yolov5's float64 recall)."""
    k = np.clip(np.floor(x * denom), 0, total).astype(np.int64)
    k += (k + 1 <= total) & ((k + 1) / denom <= x)  # floor(x * denom) is off by at most one
    k -= (k >= 1) & (k / denom > x)
    return k


def _envelope_at_unit(t: np.ndarray, envelope_rev: np.ndarray, unit: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Row-wise: the envelope at the true positive that holds the ``unit``-th weighted true positive.

    ``t`` (n_chunk x n_tp) is non-decreasing along each row, ``envelope_rev`` is the envelope in reverse order;
    ``unit`` (n_chunk x n_x) is looked up only where ``valid`` (elsewhere 0 is returned). One global
    searchsorted: the rows are shifted apart by an offset larger than any count."""
    n_chunk, n_tp = t.shape
    if n_tp == 0:
        return np.zeros(unit.shape)
    offset = np.arange(n_chunk, dtype=np.int64)[:, None] * (int(t[:, -1].max()) + 1)
    query = np.where(valid, unit, 0) + offset
    pos = np.searchsorted((t + offset).ravel(), query.ravel(), side="left").reshape(unit.shape)
    pos -= np.arange(n_chunk)[:, None] * n_tp  # first true positive whose cumulative count reaches ``unit``
    return np.where(valid, np.take_along_axis(envelope_rev, np.clip(n_tp - 1 - pos, 0, n_tp - 1), axis=1), 0.0)


# ---------------------------------------------------------------------------------------------------------------
# (c) the paired bootstrap


def resample_indices(n_images: int, n_resamples: int, seed: int) -> np.ndarray:
    """(n_resamples x n_images) image indices drawn with replacement (numpy's default generator, ``seed``)."""
    return np.random.default_rng(seed).integers(0, n_images, size=(n_resamples, n_images), dtype=np.int64)


def indices_to_weights(indices: np.ndarray, n_images: int) -> np.ndarray:
    """How many times each image is drawn in each resample: (n_resamples x n_images)."""
    n = indices.shape[0]
    flat = (indices + np.arange(n)[:, None] * n_images).ravel()
    return np.bincount(flat, minlength=n * n_images).reshape(n, n_images)


@dataclass(frozen=True, eq=False)
class MetricComparison:
    """One metric, variant (b) vs baseline (a): seeds' spread, point estimate, interval, verdict."""

    metric: str
    baseline_per_seed: tuple[float, ...]  # on the full validation set
    variant_per_seed: tuple[float, ...]
    difference: float  # mean over seeds of the variant minus mean over seeds of the baseline, full set
    low: float  # percentile interval of the resampled differences
    high: float
    verdict: str  # better (interval above 0) / within noise (contains 0) / worse (below 0)
    resampled: np.ndarray  # the difference on each resample

    @property
    def baseline_mean_std(self) -> tuple[float, float]:
        return _mean_std(self.baseline_per_seed)

    @property
    def variant_mean_std(self) -> tuple[float, float]:
        return _mean_std(self.variant_per_seed)


@dataclass(frozen=True, eq=False)
class PairedBootstrap:
    """The result of ``paired_bootstrap``: both metrics and what was drawn."""

    map50: MetricComparison
    map50_95: MetricComparison
    n_resamples: int
    ci: float
    seed: int
    indices: np.ndarray  # (n_resamples x n_images): the images of each resample, shared by all models and seeds


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; NaN for a single seed: the spread is unknown)."""
    v = np.asarray(values, dtype=float)
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else float("nan")


def verdict(low: float, high: float) -> str:
    """better if the interval lies above 0, worse if below, else within noise."""
    return "better" if low > 0 else "worse" if high < 0 else "within noise"


def _compare(metric: str, a_full: list[float], b_full: list[float], a_boot: np.ndarray, b_boot: np.ndarray,
             ci: float) -> MetricComparison:
    diffs = b_boot.mean(0) - a_boot.mean(0)
    low, high = np.quantile(diffs, [(1 - ci) / 2, (1 + ci) / 2])
    return MetricComparison(metric, tuple(a_full), tuple(b_full), float(np.mean(b_full) - np.mean(a_full)),
                            float(low), float(high), verdict(float(low), float(high)), diffs)


def paired_bootstrap(records_a_by_seed: Sequence[MatchRecord], records_b_by_seed: Sequence[MatchRecord],
                     n_resamples: int = 1000, ci: float = 0.95, seed: int = 0) -> PairedBootstrap:
    """Variant (b) minus baseline (a), each averaged over its seeds, with a paired percentile bootstrap interval.

    Every record must cover the same validation images in the same order (``check_aligned``). The same
    ``n_resamples`` draws of the images (seeded by ``seed``) are applied to every record."""
    if not records_a_by_seed or not records_b_by_seed:
        raise ValueError("need at least one record (seed) per model")
    if not 0 < ci < 1:
        raise ValueError(f"ci must be in (0, 1), got {ci}")
    check_aligned([*records_a_by_seed, *records_b_by_seed])
    n_images = records_a_by_seed[0].n_images
    indices = resample_indices(n_images, n_resamples, seed)
    weights = indices_to_weights(indices, n_images)
    full = {m: [map_scores(r) for r in recs] for m, recs in (("a", records_a_by_seed), ("b", records_b_by_seed))}
    boot = {m: [WeightedMAP(r)(weights) for r in recs] for m, recs in (("a", records_a_by_seed),
                                                                        ("b", records_b_by_seed))}
    results = [_compare(name, [s[i] for s in full["a"]], [s[i] for s in full["b"]],
                        np.stack([s[i] for s in boot["a"]]), np.stack([s[i] for s in boot["b"]]), ci)
               for i, name in enumerate(("mAP50", "mAP50-95"))]
    return PairedBootstrap(results[0], results[1], n_resamples, ci, seed, indices)
