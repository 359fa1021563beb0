"""The per-image match record of an ultralytics validation run (see ``yolo_attn.matches`` for what a record is).

ultralytics' ``DetectionValidator.update_metrics`` appends, for every image of a batch, one entry to
``metrics.stats``: ``tp`` (``n_pred x 10`` booleans from its ``match_predictions``), ``conf``, ``pred_cls`` and
``target_cls``, exactly what its ``ap_per_class`` later concatenates. ``MatchCollector.validator()`` is a subclass
of the validator (ultralytics' own extension point: ``model.val(validator=...)``) that calls the original and
then copies the entries just appended, with each image's full path from the batch (``im_file``). The record is
therefore the validator's statistics entry for entry; its ``ap_rule`` is ultralytics' (tested against the mAP
ultralytics reports). ultralytics is imported when the validator class is made (the offline environment must be
set before that).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from yolo_attn.matches import AP_ZERO_AFTER_LAST, ImageMatches, MatchRecord


class MatchCollector:
    """Collects one ultralytics validation's per-image matches.

    Usage::

        collector = MatchCollector()
        YOLO(weights).val(data=..., validator=collector.validator())
        collector.record().save("run/matches.npz")
    """

    def __init__(self) -> None:
        self._images: list[ImageMatches] = []

    def validator(self) -> type:
        """ultralytics' ``DetectionValidator``, recording into this collector (emptied when a validation starts)."""
        from ultralytics.models.yolo.detect import DetectionValidator

        collector = self

        class MatchRecordingValidator(DetectionValidator):
            def init_metrics(self, model: Any) -> None:
                super().init_metrics(model)
                collector.reset()

            def update_metrics(self, preds: Any, batch: dict) -> None:
                first = len(self.metrics.stats["tp"])
                super().update_metrics(preds, batch)
                collector.add(self.metrics.stats, first, batch["im_file"])

        return MatchRecordingValidator

    def reset(self) -> None:
        self._images = []

    def add(self, stats: dict, first: int, im_files: Sequence[str]) -> None:
        """The entries ``stats[key][first:]`` (one per image of the batch, in batch order) with their images."""
        appended = len(stats["tp"]) - first
        if appended != len(im_files):
            raise RuntimeError(f"ultralytics appended {appended} statistics entries for a batch of {len(im_files)} "
                               "images: its validator no longer keeps one entry per image "
                               "(see yolo_attn/engines/ultralytics/matches.py)")
        for k, path in enumerate(im_files):
            i = first + k
            self._images.append(ImageMatches(str(Path(path)), stats["tp"][i], stats["conf"][i], stats["pred_cls"][i],
                                             stats["target_cls"][i]))

    def record(self) -> MatchRecord:
        """The images of the last validation, in validation order."""
        if not self._images:
            raise ValueError("no validation images were recorded: was the collector's validator given to val()?")
        return MatchRecord.from_images(self._images, ap_rule=AP_ZERO_AFTER_LAST)
