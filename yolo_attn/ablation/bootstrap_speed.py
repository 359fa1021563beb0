"""Speed of the paired bootstrap: 1,000 resamples of a COCO-val-sized record, 2 models x 1 seed, on one CPU core.

    OMP_NUM_THREADS=1 python -m yolo_attn.ablation.bootstrap_speed [--resamples 1000] [--images 5000]
                                                                    [--min-preds 100] [--max-preds 300] [--seed 0]

Goal: "1,000 resamples of a 5,000-image COCO val in under a minute on one CPU core".

The records are synthetic but shaped like a yolov5 validation of COCO val2017 at ``--conf-thres 0.001``:
5,000 images, 80 classes, targets per image from a negative binomial with COCO's mean (7.36, ~36.8k targets in
all; person ~30 % of them, the other classes with a long tail), and 100-300 predictions per image (uniform; yolov5
keeps up to ``max_det=300``), ~1.0 M per model. About 85 % of the targets are found by one same-class prediction
whose IoU decides at which of the 10 thresholds it is a true positive (Beta(8, 2): 98 % correct at IoU 0.50,
70 % at 0.75, 7 % at 0.95); 15 % of these true positives have a confidence below 0.05 (weakly detected objects,
as at conf 0.001), so most false positives rank above some class's last true positive, the costly case. The
other predictions are false positives with confidences concentrated near 0. A second model is the same
generator with a different seed and a slightly higher detection rate. The figures give mAP50 ~0.57 and
mAP50-95 ~0.34, like a small YOLO on COCO.

The timed part is ``paired_bootstrap(...)`` end to end (both records' one-off sort and preparation, the full-set
mAP, the resamples); the process is pinned to one CPU (``os.sched_setaffinity``), and the CPU time is printed
beside the wall time. Run it alone on a quiet machine.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from yolo_attn.ablation.bootstrap import paired_bootstrap
from yolo_attn.matches import MatchRecord

GOAL_SECONDS = 60.0
COCO_TARGETS_PER_IMAGE = 36781 / 5000  # instances in COCO val2017 / images
LOW_CONF_TP = 0.15  # share of the found objects whose true positive has a confidence below 0.05


def class_probabilities(n_classes: int) -> np.ndarray:
    """Class frequencies like COCO's: one class (person) ~30 %, the rest a power-law tail."""
    tail = 1.0 / np.arange(1, n_classes) ** 0.8
    return np.concatenate(([0.3], 0.7 * tail / tail.sum())) if n_classes > 1 else np.ones(1)


def synthetic_record(rng: np.random.Generator, n_images: int = 5000, n_classes: int = 80,
                     preds_per_image: tuple[int, int] = (100, 300), detect_rate: float = 0.85) -> MatchRecord:
    """A record shaped like yolov5's validation of COCO val2017 at conf 0.001 (see the module docstring)."""
    n_t = rng.negative_binomial(1.5, 1.5 / (1.5 + COCO_TARGETS_PER_IMAGE), n_images)
    target_image = np.repeat(np.arange(n_images), n_t)
    target_cls = rng.choice(n_classes, size=target_image.size, p=class_probabilities(n_classes))
    found = rng.random(target_image.size) < detect_rate
    iou = rng.beta(8, 2, found.sum())
    tp_image, tp_cls = target_image[found], target_cls[found]
    tp_conf = np.clip(rng.beta(2, 2, iou.size) * 0.6 + 0.4 * iou - 0.1, 0.001, 1.0)
    weak = rng.random(iou.size) < LOW_CONF_TP  # weakly detected objects: true positives near conf 0.001
    tp_conf[weak] = 0.001 + 0.05 * rng.beta(1, 3, weak.sum())
    n_pred = np.maximum(rng.integers(preds_per_image[0], preds_per_image[1] + 1, n_images),
                        np.bincount(tp_image, minlength=n_images))
    n_fp = n_pred - np.bincount(tp_image, minlength=n_images)
    fp_image = np.repeat(np.arange(n_images), n_fp)
    fp_cls = rng.choice(n_classes, size=fp_image.size, p=class_probabilities(n_classes))
    fp_conf = 0.001 + 0.999 * rng.beta(0.4, 6, fp_image.size)
    image = np.concatenate((tp_image, fp_image))
    correct = np.zeros((image.size, 10), bool)
    correct[:iou.size] = iou[:, None] >= np.linspace(0.5, 0.95, 10)[None, :]
    order = np.lexsort((rng.random(image.size), image))  # by image, shuffled within an image
    return MatchRecord(paths=np.array([f"images/val2017/{i:012d}.jpg" for i in range(n_images)]),
                       correct=correct[order],
                       conf=np.concatenate((tp_conf, fp_conf)).astype(np.float32)[order],
                       pred_cls=np.concatenate((tp_cls, fp_cls)).astype(np.int64)[order],
                       pred_image=image[order].astype(np.int64),
                       target_cls=target_cls.astype(np.int64), target_image=target_image.astype(np.int64))


def pin_to_one_cpu() -> str:
    """Restrict this process to one CPU (Linux); returns what was done."""
    if not hasattr(os, "sched_setaffinity"):
        return "not pinned (no sched_setaffinity here)"
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return f"pinned to CPU {cpu}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--classes", type=int, default=80)
    parser.add_argument("--min-preds", type=int, default=100)
    parser.add_argument("--max-preds", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    pinned = pin_to_one_cpu()
    shape = dict(n_images=args.images, n_classes=args.classes, preds_per_image=(args.min_preds, args.max_preds))
    baseline = synthetic_record(np.random.default_rng(args.seed), **shape)
    variant = synthetic_record(np.random.default_rng(args.seed + 1), detect_rate=0.86, **shape)
    print(f"records: {args.images} images, {args.classes} classes, {baseline.target_cls.size} targets, "
          f"{baseline.conf.size} / {variant.conf.size} predictions (baseline / variant, "
          f"{args.min_preds}-{args.max_preds} per image); {pinned}; "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    wall, cpu = time.perf_counter(), time.process_time()
    result = paired_bootstrap([baseline], [variant], n_resamples=args.resamples, seed=args.seed)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    for m in (result.map50, result.map50_95):
        print(f"{m.metric}: baseline {m.baseline_per_seed[0]:.4f} variant {m.variant_per_seed[0]:.4f} "
              f"difference {m.difference:+.4f} [{m.low:+.4f}, {m.high:+.4f}] -> {m.verdict}")
    print(f"{args.resamples} paired resamples, 2 models x 1 seed: {wall:.1f} s wall, {cpu:.1f} s CPU")
    measured = args.resamples >= 1000 and args.images >= 5000
    met = measured and wall < GOAL_SECONDS
    print(f"goal (1,000 resamples of a 5,000-image COCO val in under {GOAL_SECONDS:.0f} s on one CPU core): "
          f"{('met' if met else 'NOT met') if measured else 'not measured (fewer resamples or images)'}")
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
