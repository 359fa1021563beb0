"""The statistics of multi-seed ablations: is a variant really better than the baseline, or is it seed noise?

- ``yolo_attn.matches`` (below the engines, re-exported here): the per-image record a validation run produces (for
  every image: which predictions are true positives at each IoU threshold 0.50:0.95, their confidences and classes,
  the target classes), saved to and loaded from ``.npz`` without pickle; each engine's validation fills one
  (``Engine.match_collector()``).
- ``bootstrap``: mAP50 and mAP50-95 from such a record (equal to its engine's ``ap_per_class``), a fast weighted
  version for bootstrap resamples of the images, and the paired bootstrap of variant minus baseline over seeds,
  with a percentile interval and a verdict (better / within noise / worse).
- ``sweep``, ``report``, ``output``: the runs of ``scripts/ablate.sh``, their comparison and its table;
  ``bootstrap_speed``: the bootstrap's timing on synthetic records.

Engine-neutral: numpy for the records and statistics; no engine is imported here.
"""
from yolo_attn.ablation.bootstrap import (MetricComparison, PairedBootstrap, WeightedMAP, map_scores,
                                          paired_bootstrap, resample_indices)
from yolo_attn.matches import MatchRecord, check_aligned

__all__ = ["MatchRecord", "check_aligned", "MetricComparison", "PairedBootstrap", "WeightedMAP",
           "map_scores", "paired_bootstrap", "resample_indices"]
