"""Heatmaps of ultralytics' anchor-free ``Detect`` head (YOLOv5u, YOLOv8, YOLO11, YOLO12, YOLO26).

No objectness; per anchor point a box branch of 4 × reg_max logits (a distribution over distances to the four
sides, decoded by DFL: the expectation of the softmax over 0..reg_max-1, in stride units) and a class branch of
``nc`` logits. In eval mode it returns ``(y, {"boxes", "scores", "feats"})``, ``y`` = (b, 4 + nc, A): xywh in input
pixels and class probabilities, the anchors of the levels concatenated in Detect's order. A detection kept by
ultralytics' NMS is column ``i`` of ``y`` (``return_idxs``), and row ``i`` of the raw predictions
``l = cat(boxes, scores)`` (b, A, 4·reg_max + nc):

=========  ===========================================================================================
target     scalar
=========  ===========================================================================================
class      probability of the detected class c: sigmoid(l[4·reg_max + c])
box        the four DFL distances (expected bin of each side's softmax) divided by reg_max - 1: each in
           [0, 1], scale-free, summed as yolov5's box target sums its four sigmoid outputs
all        class + box
=========  ===========================================================================================

With ``reg_max`` 1 (YOLO26) there is no distribution: each side's distance (in stride units) is the raw output
itself, and ``box`` is the sum of the four.

YOLO26 (``end2end: True``) carries two branches, the one-to-many one (``cv2``/``cv3``) and the one-to-one one
(``one2one_cv2``/``one2one_cv3``), and its eval output's raw part is ``{"one2many": ..., "one2one": ...}``.
The heatmap explains the branch the model infers with, as ultralytics' predictor does: by default (``nms=None``,
ultralytics 8.4.190) the one-to-many branch and NMS; with the end-to-end branch selected (``model.end2end =
True``: ultralytics' ``nms=False``) the one-to-one branch and no NMS: ``Detect.postprocess`` keeps the ``max_det``
best (anchor, class) pairs by score (``get_topk_index``, which also returns each one's anchor index), and
ultralytics' ``non_max_suppression(..., end2end=True)`` then drops those under ``conf`` (and other classes). Here
the same two steps run on the decoded one-to-one predictions (xyxy, ``Detect._inference``), each kept row checked
against Detect's own output.
"""
import torch
from torch import nn

from yolo_attn.engines.heatmap_head import HeatmapHead
from yolo_attn.errors import UsageError


class AnchorFreeHead(HeatmapHead):
    targets = ("class", "box", "all")

    def __init__(self, detect):
        self.reg_max, self.nc = int(detect.reg_max), int(detect.nc)
        self.detect = detect
        self.end2end = bool(getattr(detect, "end2end", False))  # the one-to-one branch, no NMS (module docstring)

    def split(self, out):
        """(decoded predictions, raw rows per level [(b, A_l, 4·reg_max + nc)]) of Detect's eval output, for the
        branch the model infers with; decoded: Detect's ``y`` (b, 4 + nc, A), xywh, or for the end-to-end branch
        its predictions before the top-k (b, 4 + nc, A), xyxy."""
        y, raw = out
        if "one2one" in raw:
            raw = raw["one2one" if self.end2end else "one2many"]
        if self.end2end:
            self._final = y  # Detect's own (b, max_det, 6), for the check in nms()
            y = self.detect._inference(raw)
        rows = torch.cat((raw["boxes"], raw["scores"]), 1).transpose(1, 2)
        sizes = [f.shape[2] * f.shape[3] for f in raw["feats"]]
        return y, list(rows.split(sizes, 1))

    def nms(self, y, conf, iou, classes, max_det):
        """ultralytics' own NMS on ``y`` (the end-to-end branch: its top-k and confidence filter); per image an
        (n, 7) tensor: x1, y1, x2, y2, conf, cls, row (the anchor index), each row checked against the detection it
        claims to be."""
        from ultralytics.utils.nms import non_max_suppression
        from ultralytics.utils.ops import xywh2xyxy

        if self.end2end:
            return self._end2end(y, conf, classes, max_det)

        out, keep = non_max_suppression(y, conf, iou, classes=classes, max_det=max_det, nc=self.nc,
                                        return_idxs=True)
        result = []
        for yi, det, rows in zip(y, out, keep):
            rows = rows.long().reshape(-1)
            kept = yi[:, rows].T
            score = kept[:, 4:].gather(1, det[:, 5:6].long())[:, 0]
            if len(det) and not (torch.allclose(xywh2xyxy(kept[:, :4]), det[:, :4], rtol=1e-5, atol=1e-3)
                                 and torch.allclose(score, det[:, 4], rtol=1e-4, atol=1e-6)):
                raise RuntimeError("internal error: a detection's anchor index does not match it (ultralytics NMS "
                                   "changed?)")
            result.append(torch.cat([det[:, :6], rows[:, None].to(det.dtype)], 1))
        return result

    def _end2end(self, y, conf, classes, max_det):
        """``Detect.postprocess`` (top-k over anchors and classes, with each pick's anchor) and ultralytics'
        end-to-end filter, on the decoded one-to-one predictions ``y`` (b, 4 + nc, A)."""
        from ultralytics.utils.nms import non_max_suppression

        boxes, scores = y.transpose(1, 2).split((4, self.nc), -1)
        score, label, anchor = self.detect.get_topk_index(scores, max(max_det, 300))  # as its predictor asks
        top = torch.cat([self.detect._gather(boxes, anchor), score, label], -1)  # (b, k, 6) as postprocess makes
        final = getattr(self, "_final", None)
        if final is not None and final.shape == top.shape and not torch.allclose(final, top, rtol=1e-5, atol=1e-3):
            raise RuntimeError("internal error: the end-to-end detections differ from Detect's own (ultralytics' "
                               "postprocess changed?)")
        out, keep = non_max_suppression(top, conf, 0.0, classes=classes, max_det=max_det, end2end=True,
                                        return_idxs=True)
        return [torch.cat([det[:, :6], a[k][:, None].to(det.dtype)], 1) for det, a, k in zip(out, anchor, keep)]

    def target_value(self, logits, cls, kind):
        if kind not in self.targets:
            raise ValueError(f"unknown target {kind!r}; choose one of {', '.join(self.targets)}")
        logits = logits if logits.dim() == 2 else logits[None]
        cls = torch.as_tensor(cls, device=logits.device).long().reshape(-1)
        r = self.reg_max
        parts = []
        if kind in ("class", "all"):
            parts.append(logits.gather(1, (4 * r + cls)[:, None])[:, 0].sigmoid())
        if kind in ("box", "all") and r == 1:  # no DFL: the four distances themselves
            parts.append(logits[:, :4].sum(1))
        elif kind in ("box", "all"):
            bins = torch.arange(r, device=logits.device, dtype=logits.dtype)
            sides = logits[:, :4 * r].reshape(-1, 4, r).softmax(2) @ bins
            parts.append(sides.sum(1) / (r - 1))
        return sum(parts)

    def target_hint(self, target):
        return " (the anchor-free head of ultralytics models has no objectness)" if target == "conf" else ""


def heatmap_head(model, source="the model"):
    """The adapter of an ultralytics detection model's ``Detect`` (one-to-many, or end-to-end when selected);
    UsageError for other heads."""
    from ultralytics.nn.modules.head import Detect

    rows = getattr(model, "model", None)
    if not isinstance(rows, nn.Sequential) or not len(rows):
        raise UsageError(f"{source} is not a detection model (its last layer must be Detect)")
    detect = rows[-1]
    if type(detect) is not Detect:
        raise UsageError(f"heatmaps explain detection models; this model's head is {type(detect).__name__}")
    return AnchorFreeHead(detect)
