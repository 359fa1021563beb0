"""yolov5's per-image match record (``yolo_attn.matches``): a callback that redoes val's matching.

yolov5 does not hand ``correct`` to any callback (``on_val_image_end`` gets the predictions but neither the labels
nor ``correct``, and is skipped for images without predictions), so the collector recomputes it for every image of
the batch from the same tensors, with yolov5's own functions, exactly as ``val.run`` does: ``scale_boxes`` of the
predictions and of ``xywh2xyxy(labels)`` to the original image size, then ``process_batch``. The record therefore
equals val's ``stats`` entry for entry (tested against the mAP that ``val.run`` returns). torch and yolov5 are
imported inside the callback.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from yolo_attn.matches import ImageMatches, MatchRecord


class ValMatchCollector:
    """A yolov5 callback that records a validation run's per-image matches as a ``MatchRecord``.

    Usage::

        collector = ValMatchCollector()
        callbacks = Callbacks(); collector.register(callbacks)
        yolov5.val.run(..., callbacks=callbacks)
        collector.record().save("run/matches.npz")

    On ``on_val_batch_end(batch_i, im, targets, paths, shapes, preds)`` (called once per batch with the tensors
    ``val.run`` used: ``targets`` already in pixels of the letterboxed batch, ``preds`` after NMS and after
    ``--single-cls`` relabelling), it redoes val's per-image matching with yolov5's own ``process_batch``.
    ``on_val_start`` empties it, so one collector can follow repeated validations (e.g. every training epoch).
    """

    def __init__(self) -> None:
        self._images: list[ImageMatches] = []

    def register(self, callbacks: Any, name: str = "yolo_attn_matches") -> "ValMatchCollector":
        callbacks.register_action("on_val_start", name, self.reset)
        callbacks.register_action("on_val_batch_end", name, self)
        return self

    def reset(self, *args: Any) -> None:
        self._images = []

    def __call__(self, batch_i: int, im: Any, targets: Any, paths: Sequence[str], shapes: Sequence[Any],
                 preds: Sequence[Any]) -> None:
        import torch
        from yolov5.utils.general import scale_boxes, xywh2xyxy
        from yolov5.val import process_batch

        iouv = torch.linspace(0.5, 0.95, 10, device=targets.device)  # as val.run
        for si, pred in enumerate(preds):
            labels = targets[targets[:, 0] == si, 1:]
            correct = torch.zeros(pred.shape[0], iouv.numel(), dtype=torch.bool)
            if pred.shape[0] and labels.shape[0]:
                shape = shapes[si][0]
                predn = pred.clone()
                scale_boxes(im[si].shape[1:], predn[:, :4], shape, shapes[si][1])  # native-space pred
                tbox = xywh2xyxy(labels[:, 1:5])
                scale_boxes(im[si].shape[1:], tbox, shape, shapes[si][1])  # native-space labels
                correct = process_batch(predn, torch.cat((labels[:, 0:1], tbox), 1), iouv)
            self._images.append(ImageMatches(str(Path(paths[si])), correct.cpu().numpy(),
                                             pred[:, 4].cpu().numpy(), pred[:, 5].cpu().numpy(),
                                             labels[:, 0].cpu().numpy()))

    def record(self) -> MatchRecord:
        """The images seen since the last ``on_val_start``, in validation order."""
        if not self._images:
            raise ValueError("no validation images were recorded: was the collector registered before val.run?")
        return MatchRecord.from_images(self._images)
