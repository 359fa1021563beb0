"""The statistics of multi-seed ablations: per-image match records, mAP equal to yolov5's and ultralytics' (each by
its own AP rule), the fast weighted bootstrap, and the paired bootstrap's interval and verdict on cases with a known
answer."""
import dataclasses

import numpy as np
import pytest
import torch

import yolo_attn  # noqa: F401  (patches yolov5 for today's numpy before its metrics are used)
from yolo_attn.ablation.bootstrap import (WeightedMAP, indices_to_weights, map_scores, paired_bootstrap,
                                          resample_indices)
from yolo_attn.ablation.bootstrap_speed import synthetic_record
from yolo_attn.engines.yolov5.matches import ValMatchCollector
from yolo_attn.matches import ImageMatches, MatchRecord, check_aligned


def _random_record(rng, n_images=40, n_classes=5, max_preds=20, max_targets=5, conf_levels=None, prefix="im",
                   conf_dtype=np.float32):
    """A record that obeys yolov5's matching (per image, class and IoU threshold: true positives <= targets) with
    arbitrary, also non-nested, true-positive patterns across thresholds. ``conf_levels`` rounds the confidences
    so that many are tied."""
    images = []
    for i in range(n_images):
        n_pred, n_tgt = rng.integers(0, max_preds + 1), rng.integers(0, max_targets + 1)
        tcls = rng.integers(0, n_classes, n_tgt).astype(np.float32)
        pcls = rng.integers(0, n_classes + 1, n_pred).astype(np.float32)  # class n_classes: never a target
        correct = np.zeros((n_pred, 10), bool)
        for c in np.unique(pcls):
            idx = np.flatnonzero(pcls == c)
            k = min(idx.size, int((tcls == c).sum()))
            for j in range(10):
                correct[rng.permutation(idx)[:rng.integers(0, k + 1)], j] = True
        conf = rng.random(n_pred)
        if conf_levels:
            conf = np.round(conf * conf_levels) / conf_levels
        images.append(ImageMatches(f"{prefix}{i}.jpg", correct, conf.astype(conf_dtype), pcls, tcls))
    return MatchRecord.from_images(images)


def _yolov5_map(tp, conf, pred_cls, target_cls):
    """mAP50, mAP50-95 as yolov5's val.run computes them, with yolov5's own ap_per_class."""
    from yolov5.utils.metrics import ap_per_class

    if not tp.any():
        return 0.0, 0.0
    ap = ap_per_class(tp, conf, pred_cls, target_cls, names={})[5]
    return ap[:, 0].mean(), ap.mean(1).mean()


def _ultralytics_map(tp, conf, pred_cls, target_cls):
    """mAP50, mAP50-95 as ultralytics' DetMetrics computes them (``Metric.map50``, ``Metric.map``), with its own
    ap_per_class."""
    from yolo_attn.engines.ultralytics.options import offline_environment

    offline_environment()
    from ultralytics.utils.metrics import ap_per_class

    ap = ap_per_class(tp, conf, pred_cls, target_cls, names={})[5]
    return (ap[:, 0].mean(), ap.mean(1).mean()) if len(ap) else (0.0, 0.0)


ENGINE_MAP = {"yolov5": _yolov5_map, "ultralytics": _ultralytics_map}


def _as(record, rule):
    return dataclasses.replace(record, ap_rule=rule)


def _all_ones(record):
    return WeightedMAP(record)(np.ones((1, record.n_images), np.int64))


def _scalars(scores):
    return float(scores.map50[0]), float(scores.map50_95[0])


RECORDS = {
    "distinct confidences": lambda rng: _random_record(rng),
    "many tied confidences": lambda rng: _random_record(rng, conf_levels=4),
    "few tied confidences": lambda rng: _random_record(rng, conf_levels=50),
    "float16 confidences (val --half)": lambda rng: _random_record(rng, max_preds=60, conf_dtype=np.float16),
    "sparse: classes without predictions, images without targets": lambda rng: _random_record(
        rng, n_classes=12, max_preds=4, max_targets=2),
    "COCO-shaped": lambda rng: synthetic_record(rng, n_images=300, n_classes=20, preds_per_image=(20, 60)),
}


@pytest.mark.parametrize("rule", ENGINE_MAP)
@pytest.mark.parametrize("kind", RECORDS)
def test_map_equals_the_engines_ap_per_class(kind, rule):
    rng = np.random.default_rng(len(kind))
    for _ in range(8):
        record = _as(RECORDS[kind](rng), rule)
        expected = ENGINE_MAP[rule](*record.stats())
        assert map_scores(record) == pytest.approx(expected, abs=1e-12, rel=0)
        assert _scalars(_all_ones(record)) == pytest.approx(expected, abs=1e-12, rel=0)


@pytest.mark.parametrize("rule", ENGINE_MAP)
def test_all_ones_weights_reproduce_the_reference_exactly(rule):
    rng = np.random.default_rng(1)
    for kind in RECORDS:
        record = _as(RECORDS[kind](rng), rule)
        assert _scalars(_all_ones(record)) == tuple(map_scores(record)), kind  # bit for bit


def test_edge_cases_match_yolov5():
    # one perfect detection: yolov5's 101-point AP is 0.995, not 1 (its sentinel (1, 0) sits on the last grid point)
    perfect = MatchRecord.from_images([ImageMatches("a.jpg", np.ones((1, 10), bool), np.float32([0.9]), [0], [0])])
    assert map_scores(perfect) == _yolov5_map(*perfect.stats()) == _scalars(_all_ones(perfect))
    assert map_scores(perfect) == pytest.approx((0.995, 0.995), abs=1e-15)
    # class 1 has a target but no prediction (AP 0, counted); class 2 is predicted but has no target (ignored);
    # an image with neither
    mixed = MatchRecord.from_images([
        ImageMatches("a.jpg", np.ones((1, 10), bool), np.float32([0.9]), [0], [0, 1]),
        ImageMatches("b.jpg", np.zeros((2, 10), bool), np.float32([0.95, 0.5]), [2, 2], []),
        ImageMatches("c.jpg", np.zeros((0, 10), bool), np.float32([]), [], [])])
    assert map_scores(mixed) == _yolov5_map(*mixed.stats()) == _scalars(_all_ones(mixed))
    assert map_scores(mixed) == pytest.approx((0.4975, 0.4975), abs=1e-15)
    no_tp = MatchRecord.from_images([ImageMatches("a.jpg", np.zeros((3, 10), bool), np.float32([.9, .8, .1]),
                                                  [0, 1, 0], [0])])
    assert map_scores(no_tp) == _scalars(_all_ones(no_tp)) == (0.0, 0.0)


def test_edge_cases_match_ultralytics():
    # ultralytics' precision drops to 0 at the last point's recall: one detection that finds 1 of 2 targets scores
    # 0.495 (grid points 0 .. 0.49 at precision 1, 0 from 0.5 on); yolov5's straight line from (0.5, 1) to (1, 0)
    # gives 0.75
    half = MatchRecord.from_images([ImageMatches("a.jpg", np.ones((1, 10), bool), np.float32([0.9]), [0], [0, 0])],
                                   ap_rule="ultralytics")
    assert map_scores(half) == _ultralytics_map(*half.stats()) == _scalars(_all_ones(half))
    assert map_scores(half) == pytest.approx((0.495, 0.495), abs=1e-15)
    assert map_scores(_as(half, "yolov5")) == _yolov5_map(*half.stats()) == pytest.approx((0.75, 0.75), abs=1e-15)
    perfect = MatchRecord.from_images([ImageMatches("a.jpg", np.ones((1, 10), bool), np.float32([0.9]), [0], [0])],
                                      ap_rule="ultralytics")
    assert map_scores(perfect) == _ultralytics_map(*perfect.stats()) == pytest.approx((0.995, 0.995), abs=1e-15)


def test_an_unknown_ap_rule_and_mixed_rules_are_refused():
    rng = np.random.default_rng(4)
    record = _random_record(rng, n_images=6)
    with pytest.raises(ValueError, match="ap_rule must be one of yolov5, ultralytics"):
        _as(record, "coco")
    with pytest.raises(ValueError, match="different engines' validation"):
        paired_bootstrap([record], [_as(record, "ultralytics")], n_resamples=5)


def _expanded_map(record, weights):
    """The engine's ap_per_class on the multiset of images (image i repeated weights[i] times), equal confidences
    ordered as on the full set (the documented meaning of a weighted resample)."""
    rank = np.empty(record.conf.size)
    rank[np.argsort(-record.conf)] = np.arange(record.conf.size)
    drawn = np.repeat(np.arange(record.n_images), weights)
    preds = np.concatenate([np.flatnonzero(record.pred_image == i) for i in drawn] + [np.zeros(0, int)])
    targets = np.concatenate([np.flatnonzero(record.target_image == i) for i in drawn] + [np.zeros(0, int)])
    if targets.size == 0:
        return 0.0, 0.0
    return ENGINE_MAP[record.ap_rule](record.correct[preds], -rank[preds], record.pred_cls[preds],
                                      record.target_cls[targets])


@pytest.mark.parametrize("rule", ENGINE_MAP)
@pytest.mark.parametrize("conf_levels", [None, 5])
def test_weighted_map_equals_the_engine_on_the_expanded_resample(conf_levels, rule):
    rng = np.random.default_rng(7)
    for _ in range(6):
        record = _as(_random_record(rng, n_images=25, conf_levels=conf_levels), rule)
        weights = indices_to_weights(resample_indices(record.n_images, 6, int(rng.integers(1000))), record.n_images)
        weights[0, :] = 0  # a resample without images (no targets): 0 as in val.run
        weights[1, ::2] = 0
        weights[2] = np.arange(record.n_images) % 4  # weights up to 3, absent images interleaved
        fast = WeightedMAP(record, chunk=4)(weights)  # chunks of 4 resamples: 6 rows span two chunks
        for b in range(weights.shape[0]):
            expected = _expanded_map(record, weights[b])
            assert (fast.map50[b], fast.map50_95[b]) == pytest.approx(expected, abs=1e-12, rel=0)


def test_identical_models_give_a_zero_width_interval():
    rng = np.random.default_rng(2)
    seeds = [_random_record(rng, n_images=60) for _ in range(2)]
    result = paired_bootstrap(seeds, seeds, n_resamples=200, seed=3)
    for m in (result.map50, result.map50_95):
        assert m.difference == 0 and m.low == 0 and m.high == 0 and m.verdict == "within noise"
        assert np.all(m.resampled == 0)


def _detector_pair(rng, n_images=80, extra_every=3):
    """A baseline and a variant with the same predictions, the variant finding more objects.

    Per image 1-4 targets of 3 classes; the baseline finds each with probability 0.6 by one prediction that is a
    true positive up to a random IoU threshold, and makes 0-5 false positives. The variant has all of that plus,
    in every ``extra_every``-th image, a confident exact box (true positive at every threshold) on each target the
    baseline missed."""
    base, more = [], []
    for i in range(n_images):
        tcls = rng.integers(0, 3, rng.integers(1, 5))
        found = rng.random(tcls.size) < 0.6
        n_fp = rng.integers(0, 6)
        reach = rng.integers(1, 11, found.sum())  # true positive at the first ``reach`` thresholds
        correct = np.concatenate((np.arange(10)[None] < reach[:, None], np.zeros((n_fp, 10), bool)))
        pcls = np.concatenate((tcls[found], rng.integers(0, 3, n_fp)))
        conf = rng.random(pcls.size).astype(np.float32)
        base.append(ImageMatches(f"im{i}.jpg", correct, conf, pcls, tcls))
        missed = tcls[~found] if i % extra_every == 0 else tcls[:0]
        more.append(ImageMatches(f"im{i}.jpg", np.concatenate((correct, np.ones((missed.size, 10), bool))),
                                 np.concatenate((conf, np.full(missed.size, 0.999, np.float32))),
                                 np.concatenate((pcls, missed)), tcls))
    return MatchRecord.from_images(base), MatchRecord.from_images(more)


def test_a_model_that_finds_more_objects_is_better():
    rng = np.random.default_rng(4)
    baseline, variant = zip(*[_detector_pair(rng) for _ in range(2)])  # two seeds each
    result = paired_bootstrap(baseline, variant, n_resamples=300, seed=0)
    for m in (result.map50, result.map50_95):
        assert m.difference > 0 and m.low > 0 and m.verdict == "better", m
        assert np.all(m.resampled > 0)  # extra true boxes at the top of the ranking raise every resample's AP
    reverse = paired_bootstrap(variant, baseline, n_resamples=300, seed=0)
    assert reverse.map50.high < 0 and reverse.map50.verdict == "worse"


def test_the_resamples_are_paired_and_reproducible(monkeypatch):
    rng = np.random.default_rng(5)
    a = [_random_record(rng, n_images=30) for _ in range(2)]
    b = [_random_record(rng, n_images=30) for _ in range(3)]
    seen = []
    call = WeightedMAP.__call__

    def spy(self, weights):
        seen.append(np.array(weights))
        return call(self, weights)

    monkeypatch.setattr(WeightedMAP, "__call__", spy)
    result = paired_bootstrap(a, b, n_resamples=50, seed=9)
    assert len(seen) == 5  # one evaluation per record: 2 baseline seeds + 3 variant seeds
    expected = indices_to_weights(result.indices, 30)
    assert all(np.array_equal(w, expected) for w in seen)
    assert np.array_equal(result.indices, resample_indices(30, 50, seed=9))
    assert expected.sum(1).tolist() == [30] * 50  # each resample draws n images
    again = paired_bootstrap(a, b, n_resamples=50, seed=9)
    assert np.array_equal(again.map50.resampled, result.map50.resampled)


def test_point_estimates_and_seed_spread():
    rng = np.random.default_rng(6)
    a = [_random_record(rng, n_images=30) for _ in range(3)]
    b = [_random_record(rng, n_images=30)]
    result = paired_bootstrap(a, b, n_resamples=20, seed=0)
    per_seed = [map_scores(r).map50 for r in a]
    assert result.map50.baseline_per_seed == tuple(per_seed)
    assert result.map50.baseline_mean_std == pytest.approx((np.mean(per_seed), np.std(per_seed, ddof=1)))
    assert result.map50.difference == pytest.approx(map_scores(b[0]).map50 - np.mean(per_seed))
    assert np.isnan(result.map50.variant_mean_std[1])  # one seed: spread unknown
    lo, hi = np.quantile(result.map50.resampled, [0.025, 0.975])
    assert (result.map50.low, result.map50.high) == pytest.approx((lo, hi), abs=1e-15)


def test_record_round_trip_without_pickle(tmp_path):
    rng = np.random.default_rng(8)
    record = _random_record(rng)
    half = MatchRecord.from_images([record.image(i)._replace(conf=record.image(i).conf.astype(np.float16))
                                    for i in range(record.n_images)])
    for r in (record, half):
        path = r.save(tmp_path / "run" / "matches.npz")
        loaded = MatchRecord.load(path)
        for name in ("paths", "correct", "conf", "pred_cls", "pred_image", "target_cls", "target_image"):
            assert np.array_equal(getattr(loaded, name), getattr(r, name)) and \
                   getattr(loaded, name).dtype == getattr(r, name).dtype, name
        with np.load(path, allow_pickle=False) as data:
            assert all(data[k].dtype != object for k in data.files)
    assert loaded.conf.dtype == np.float16 and loaded.ap_rule == "yolov5"
    assert map_scores(MatchRecord.load(record.save(tmp_path / "m.npz"))) == map_scores(record)
    assert MatchRecord.load(_as(record, "ultralytics").save(tmp_path / "u.npz")).ap_rule == "ultralytics"
    with open(tmp_path / "v1.npz", "wb") as f:  # format 1 (before ap_rule): yolov5's records
        np.savez(f, format_version=np.array(1), **{k: getattr(record, k) for k in ("paths", "correct", "conf",
                 "pred_cls", "pred_image", "target_cls", "target_image")})
    assert MatchRecord.load(tmp_path / "v1.npz").ap_rule == "yolov5"
    assert not list(tmp_path.glob(".*.tmp"))  # saved through a temporary file, none left
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(ValueError, match="not a match record"):
        MatchRecord.load(tmp_path / "other.npz")


def test_records_of_different_images_are_refused():
    rng = np.random.default_rng(9)
    a = _random_record(rng, n_images=10)
    other = _random_record(rng, n_images=10, prefix="other")
    fewer = MatchRecord.from_images([a.image(i) for i in range(9)])
    shuffled = MatchRecord.from_images([a.image(i) for i in [1, 0, *range(2, 10)]])
    with pytest.raises(ValueError, match="do not cover the same validation images.*only in record 0"):
        check_aligned([a, other])
    with pytest.raises(ValueError, match=r"10 vs 9 images.*im9.jpg"):
        paired_bootstrap([a], [fewer], n_resamples=5)
    with pytest.raises(ValueError, match="different order.*index 0: 'im0.jpg' vs 'im1.jpg'"):
        paired_bootstrap([a, shuffled], [a], n_resamples=5)
    check_aligned([a, MatchRecord.from_images([a.image(i) for i in range(10)])])  # same images, same order


def test_impossible_matches_are_refused():
    with pytest.raises(ValueError, match="2 true positives at one IoU threshold but 1 target"):
        MatchRecord.from_images([ImageMatches("a.jpg", np.ones((2, 10), bool), np.float32([.9, .8]), [0, 0], [0])])


# --- capture from a real yolov5 validation run ------------------------------------------------------------------

class _GridDetector(torch.nn.Module):
    """Stands in for a trained detector in ``val.run``: a fixed grid of candidate boxes (4 sizes, 8 px apart) with
    seeded random objectness and class scores, so that NMS keeps up to 300 boxes per image and some of them
    overlap the objects at some IoU thresholds. The first image of every batch gets no box above conf_thres."""

    def __init__(self, names):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.names, self.nc, self.calls = names, len(names), 0

    def forward(self, im, augment=False):
        bs, _, h, w = im.shape
        gen = torch.Generator().manual_seed(self.calls)
        self.calls += 1
        ys, xs = torch.meshgrid(torch.arange(4, h, 8.0), torch.arange(4, w, 8.0), indexing="ij")
        xy = torch.stack((xs.flatten(), ys.flatten()), 1)
        boxes = torch.cat([torch.cat((xy, torch.full_like(xy, s)), 1) for s in (12.0, 20.0, 32.0, 44.0)])
        scores = torch.rand(bs, boxes.shape[0], 1 + self.nc, generator=gen)
        out = torch.cat((boxes.expand(bs, -1, -1), scores), 2)
        out[0, :, 4] = 0
        return out


@pytest.mark.filterwarnings("ignore:'pin_memory' argument")
def test_collector_records_exactly_what_val_run_scores(tmp_path, monkeypatch, quiet_yolov5):
    import yolov5.val as yolov5_val
    from yolov5.utils.callbacks import Callbacks
    from yolov5.utils.dataloaders import create_dataloader

    from yolo_attn.datasets import shapes

    shapes.generate(tmp_path / "shapes", train=1, val=10, size=160)
    (tmp_path / "shapes" / "labels" / "val" / "val_00003.txt").write_text("")  # an image without targets
    loader = create_dataloader(str(tmp_path / "shapes" / "images" / "val"), 160, 4, 32, pad=0.5, rect=True,
                               workers=0)[0]
    seen_by_yolov5 = []
    ap_per_class = yolov5_val.ap_per_class
    monkeypatch.setattr(yolov5_val, "ap_per_class",
                        lambda *stats, **kw: seen_by_yolov5.append(stats) or ap_per_class(*stats, **kw))
    collector = ValMatchCollector().register(callbacks := Callbacks())
    for _ in range(2):  # a second run starts afresh (on_val_start)
        results = yolov5_val.run({"nc": 4, "names": dict(enumerate(shapes.NAMES))}, batch_size=4, imgsz=160,
                                 model=_GridDetector(dict(enumerate(shapes.NAMES))), dataloader=loader,
                                 save_dir=tmp_path, plots=False, callbacks=callbacks, half=False)[0]
    record = collector.record()
    assert record.n_images == 10 and sorted(record.paths) == sorted(str(p) for p in loader.dataset.im_files)
    assert np.sum(record.pred_image == 0) == 0 and record.target_cls.size > 0  # first image: no predictions
    tp, conf, pred_cls, target_cls = seen_by_yolov5[-1]  # val.run's own concatenated stats
    assert np.array_equal(tp, record.correct) and np.array_equal(conf, record.conf)
    assert np.array_equal(pred_cls, record.pred_cls) and np.array_equal(target_cls, record.target_cls)
    map50, map50_95 = results[2], results[3]
    assert 0 < map50_95 < map50 < 1  # enough true positives for the comparison to mean something
    assert map_scores(record) == pytest.approx((map50, map50_95), abs=1e-12, rel=0)
    assert _scalars(_all_ones(record)) == pytest.approx((map50, map50_95), abs=1e-12, rel=0)


def test_the_core_imports_neither_torch_nor_yolov5_at_module_level():
    import ast
    import inspect

    import yolo_attn.ablation as package
    from yolo_attn import matches
    from yolo_attn.ablation import bootstrap

    for module in (package, matches, bootstrap):
        for node in ast.parse(inspect.getsource(module)).body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                assert not any(n.split(".")[0] in ("torch", "yolov5") for n in names), (module.__name__, names)
