"""Heatmaps of yolov5's anchor-based ``Detect`` head: its eval output, NMS that remembers rows, the targets.

``Detect`` (eval mode) returns ``(z, raw)``: ``z`` is (batch, A, 5 + nc) decoded predictions (xywh in input pixels,
objectness and class probabilities), ``raw`` the per-level maps (batch, anchors, ny, nx, 5 + nc) of the same
predictions before the sigmoid, in the same order once each level is flattened. A detection kept by NMS is one row
``r`` of ``z`` (and of the concatenated ``raw``); its heatmap explains a scalar function of that row's logits
``l = raw[r]``:

=========  =================================================================================================
target     scalar
=========  =================================================================================================
conf       objectness probability sigmoid(l[4])
class      probability of the detected class c: sigmoid(l[5 + c]) (not multiplied by the objectness)
box        sum of the four box outputs sigmoid(l[0:4]) (xy offset in the cell, wh relative to the anchor:
           scale-free, so they sum with the probabilities on an equal footing)
all        conf + class + box, really the sum of the three (the widely copied script's ``all`` skipped the box)
=========  =================================================================================================
"""
import torch
from torch import nn

from yolo_attn.engines.heatmap_head import HeatmapHead
from yolo_attn.errors import UsageError

TARGETS = ("conf", "class", "box", "all")


def raw_predictions(raw):
    """Detect's per-level raw maps [(b, na, ny, nx, no), ...] as one (b, A, no) tensor, in the row order of ``z``."""
    return torch.cat([r.reshape(r.shape[0], -1, r.shape[-1]) for r in raw], 1)


def target_value(logits, cls, kind):
    """The scalar (or, for ``logits`` of shape (n, no) and ``cls`` of shape (n,), the n scalars) a heatmap explains."""
    if kind not in TARGETS:
        raise ValueError(f"unknown target {kind!r}; choose one of {', '.join(TARGETS)}")
    logits = logits if logits.dim() == 2 else logits[None]
    cls = torch.as_tensor(cls, device=logits.device).long().reshape(-1)
    parts = []
    if kind in ("conf", "all"):
        parts.append(logits[:, 4].sigmoid())
    if kind in ("class", "all"):
        parts.append(logits.gather(1, (5 + cls)[:, None])[:, 0].sigmoid())
    if kind in ("box", "all"):
        parts.append(logits[:, :4].sigmoid().sum(1))
    return sum(parts)


def nms_with_rows(z, conf_thres=0.25, iou_thres=0.45, classes=None, max_det=300):
    """yolov5's own ``non_max_suppression`` on decoded predictions ``z`` (b, A, 5 + nc), keeping each detection's row.

    Returns, per image, an (n, 7) tensor: x1, y1, x2, y2 (input pixels), conf (obj * cls prob), cls, row, where
    ``row`` indexes ``z[image]`` (and the raw predictions). The rows ride through NMS as two extra "mask" columns
    [row, 1]: yolov5 multiplies every column after the box by the objectness, so the row is recovered as their
    ratio (exact after rounding: rows < 2**20, objectness > conf_thres). Every recovered row is checked against the
    detection it claims to be (same box, same score).
    """
    from yolov5.utils.general import non_max_suppression, xywh2xyxy

    b, a, no = z.shape
    rows = torch.arange(a, device=z.device, dtype=z.dtype).expand(b, a)[..., None]
    extended = torch.cat([z, rows, torch.ones_like(rows)], 2)
    out = non_max_suppression(extended, conf_thres, iou_thres, classes=classes, max_det=max_det, nm=2)
    result = []
    for zi, det in zip(z, out):
        row = torch.round(det[:, 6] / det[:, 7]).long()
        kept = zi[row]
        score = kept[:, 4] * kept.gather(1, 5 + det[:, 5:6].long())[:, 0]
        if len(det) and not (torch.allclose(xywh2xyxy(kept[:, :4]), det[:, :4], rtol=1e-5, atol=1e-3)
                             and torch.allclose(score, det[:, 4], rtol=1e-4, atol=1e-6)):
            raise RuntimeError("internal error: a detection's recovered row does not match it (yolov5 NMS changed?)")
        result.append(torch.cat([det[:, :6], row[:, None].to(det.dtype)], 1))
    return result


class Yolov5Head(HeatmapHead):
    targets = TARGETS

    def split(self, out):
        z, raw = out
        return z, [r.reshape(r.shape[0], -1, r.shape[-1]) for r in raw]

    def nms(self, decoded, conf, iou, classes, max_det):
        return nms_with_rows(decoded, conf, iou, classes, max_det)

    def target_value(self, logits, cls, kind):
        return target_value(logits, cls, kind)


def heatmap_head(model, source="the model"):
    """The adapter of a yolov5 detection model's ``Detect``; UsageError for other heads (segmentation included)."""
    from yolov5.models.yolo import Detect, Segment

    rows = getattr(model, "model", None)
    if not isinstance(rows, nn.Sequential) or not len(rows) or not isinstance(rows[-1], Detect):
        raise UsageError(f"{source} is not a yolov5 detection model (its last layer must be Detect)")
    if isinstance(rows[-1], Segment):
        raise UsageError(f"{source} is a segmentation model; heatmaps support detection models (Detect head)")
    return Yolov5Head()
