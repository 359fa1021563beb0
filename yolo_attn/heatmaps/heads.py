"""The detection heads a heatmap can explain: what their eval output is, how NMS keeps each detection's row, and the
scalar target of a detection (``DetectionCAM`` works with either through ``head_of(model)``).

``Yolov5Head``: yolov5's anchor-based ``Detect`` (objectness, sigmoid box offsets; ``targets``).

``AnchorFreeHead``: ultralytics' ``Detect`` (YOLOv5u, YOLOv8, YOLO11): no objectness; per anchor point a box branch
of 4 × reg_max logits (a distribution over distances to the four sides, decoded by DFL: the expectation of the
softmax over 0..reg_max-1, in stride units) and a class branch of ``nc`` logits. In eval mode it returns
``(y, {"boxes", "scores", "feats"})``, ``y`` = (b, 4 + nc, A): xywh in input pixels and class probabilities, the
anchors of the levels concatenated in Detect's order. A detection kept by ultralytics' NMS is column ``i`` of ``y``
(``return_idxs``), and row ``i`` of the raw predictions ``l = cat(boxes, scores)`` (b, A, 4·reg_max + nc):

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

from yolo_attn.errors import BadParameter, UsageError
from yolo_attn.heatmaps import targets as yolov5_targets


class Yolov5Head:
    targets = yolov5_targets.TARGETS

    def split(self, out):
        z, raw = out
        return z, [r.reshape(r.shape[0], -1, r.shape[-1]) for r in raw]

    def nms(self, z, conf, iou, classes, max_det):
        return yolov5_targets.nms_with_rows(z, conf, iou, classes, max_det)

    def target_value(self, logits, cls, kind):
        return yolov5_targets.target_value(logits, cls, kind)


class AnchorFreeHead:
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


def head_of(model):
    """The head adapter for ``model``'s last row (yolov5 or ultralytics Detect); UsageError for other heads."""
    detect = model.model[-1]
    module = type(detect).__module__
    if module.startswith("ultralytics."):
        from ultralytics.nn.modules.head import Detect

        if type(detect) is not Detect:
            raise UsageError(f"heatmaps explain detection models; this model's head is {type(detect).__name__}")
        if getattr(detect, "end2end", False):
            raise UsageError("heatmaps need the one-to-many Detect head; this model is end-to-end (no NMS)")
        return AnchorFreeHead(detect)
    return Yolov5Head()


def check_target(head, target):
    if target not in head.targets:
        extra = (" (the anchor-free head of ultralytics models has no objectness)"
                 if isinstance(head, AnchorFreeHead) and target == "conf" else "")
        raise BadParameter("target", f"{{name}} {target}: choose one of {', '.join(head.targets)}{extra}")
