"""The statistics of multi-seed ablations: is a variant really better than the baseline, or is it seed noise?

- ``matches``: the per-image record a yolov5 validation run produces (for every image: which predictions are
  true positives at each IoU threshold 0.50:0.95, their confidences and classes, the target classes), captured
  from ``yolov5.val.run`` by a callback, saved to and loaded from ``.npz`` without pickle.
- ``ultralytics_matches``: the same record from ultralytics' validation (a ``DetectionValidator`` subclass).
- ``bootstrap``: mAP50 and mAP50-95 from such a record (equal to its engine's ``ap_per_class``), a fast weighted
  version for bootstrap resamples of the images, and the paired bootstrap of variant minus baseline over seeds,
  with a percentile interval and a verdict (better / within noise / worse).

The core (records and statistics) needs numpy only: torch and yolov5 are imported inside the function that
recomputes yolov5's matches during a validation run, ultralytics when its validator class is made, never at module
level.
"""
from yolo_attn.ablation.bootstrap import (MetricComparison, PairedBootstrap, WeightedMAP, map_scores,
                                          paired_bootstrap, resample_indices)
from yolo_attn.ablation.matches import MatchRecord, ValMatchCollector, check_aligned

__all__ = ["MatchRecord", "ValMatchCollector", "check_aligned", "MetricComparison", "PairedBootstrap", "WeightedMAP",
           "map_scores", "paired_bootstrap", "resample_indices"]
