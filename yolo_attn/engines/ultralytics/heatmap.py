"""Heatmaps of ultralytics' anchor-free ``Detect`` head (YOLOv5u, YOLOv8, YOLO11).

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
"""
import torch
from torch import nn

from yolo_attn.engines.heatmap_head import HeatmapHead
from yolo_attn.errors import UsageError


class AnchorFreeHead(HeatmapHead):
    targets = ("class", "box", "all")

    def __init__(self, detect):
        self.reg_max, self.nc = int(detect.reg_max), int(detect.nc)

    def split(self, out):
        """(y, raw rows per level [(b, A_l, 4·reg_max + nc)]) of Detect's eval output."""
        y, raw = out
        rows = torch.cat((raw["boxes"], raw["scores"]), 1).transpose(1, 2)
        sizes = [f.shape[2] * f.shape[3] for f in raw["feats"]]
        return y, list(rows.split(sizes, 1))

    def nms(self, y, conf, iou, classes, max_det):
        """ultralytics' own NMS on ``y``; per image an (n, 7) tensor: x1, y1, x2, y2, conf, cls, row (the anchor
        index), each row checked against the detection it claims to be."""
        from ultralytics.utils.nms import non_max_suppression
        from ultralytics.utils.ops import xywh2xyxy

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

    def target_value(self, logits, cls, kind):
        if kind not in self.targets:
            raise ValueError(f"unknown target {kind!r}; choose one of {', '.join(self.targets)}")
        logits = logits if logits.dim() == 2 else logits[None]
        cls = torch.as_tensor(cls, device=logits.device).long().reshape(-1)
        r = self.reg_max
        parts = []
        if kind in ("class", "all"):
            parts.append(logits.gather(1, (4 * r + cls)[:, None])[:, 0].sigmoid())
        if kind in ("box", "all"):
            bins = torch.arange(r, device=logits.device, dtype=logits.dtype)
            sides = logits[:, :4 * r].reshape(-1, 4, r).softmax(2) @ bins
            parts.append(sides.sum(1) / max(r - 1, 1))
        return sum(parts)

    def target_hint(self, target):
        return " (the anchor-free head of ultralytics models has no objectness)" if target == "conf" else ""


def heatmap_head(model, source="the model"):
    """The adapter of an ultralytics detection model's one-to-many ``Detect``; UsageError for other heads."""
    from ultralytics.nn.modules.head import Detect

    rows = getattr(model, "model", None)
    if not isinstance(rows, nn.Sequential) or not len(rows):
        raise UsageError(f"{source} is not a detection model (its last layer must be Detect)")
    detect = rows[-1]
    if type(detect) is not Detect:
        raise UsageError(f"heatmaps explain detection models; this model's head is {type(detect).__name__}")
    if getattr(detect, "end2end", False):
        raise UsageError("heatmaps need the one-to-many Detect head; this model is end-to-end (no NMS)")
    return AnchorFreeHead(detect)
