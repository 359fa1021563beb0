"""NMS that keeps rows, and the per-detection targets ('all' really is the sum of the three others)."""
import pytest
import torch

from yolo_attn.engines.yolov5.heatmap import nms_with_rows, target_value
from yolo_attn.heatmaps.targets import TARGETS, target_cotangents


def _predictions(seed=0, a=600, nc=4, size=160):
    """Decoded predictions like Detect's: many overlapping boxes of a few objects, probabilities in (0, 1)."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.rand(6, 2, generator=g) * size
    which = torch.randint(0, 6, (a,), generator=g)
    xy = centres[which] + torch.randn(a, 2, generator=g) * 3
    wh = 10 + torch.rand(6, 2, generator=g)[which] * 40 + torch.randn(a, 2, generator=g)
    obj = torch.rand(a, 1, generator=g)
    cls = torch.rand(a, nc, generator=g)
    return torch.cat([xy, wh, obj, cls], 1)[None]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nms_with_rows_keeps_yolov5s_detections_and_names_their_rows(seed):
    from yolov5.utils.general import non_max_suppression, xywh2xyxy

    z = _predictions(seed)
    expected = non_max_suppression(z.clone(), 0.25, 0.45)[0]
    det = nms_with_rows(z, 0.25, 0.45)[0]
    assert len(det) >= 5
    torch.testing.assert_close(det[:, :6], expected)  # the same detections, in the same order
    rows = det[:, 6].long()
    kept = z[0, rows]
    torch.testing.assert_close(xywh2xyxy(kept[:, :4]), det[:, :4])
    torch.testing.assert_close(kept[:, 4] * kept[:, 5:].max(1).values, det[:, 4])


def test_nms_with_rows_on_a_large_input_recovers_rows_exactly():
    """25,200 rows (640 px): the row rides through NMS scaled by the objectness and must still round exactly."""
    z = _predictions(3, a=25200, size=640)
    z[0, :, 4] = z[0, :, 4] * 0.74 + 0.26  # every row passes the objectness pre-filter
    det = nms_with_rows(z, 0.25, 0.45, max_det=1000)[0]
    assert det[:, 6].max() > 20000  # rows near the end are among the kept ones
    kept = z[0, det[:, 6].long()]
    torch.testing.assert_close(kept[:, 4] * kept[:, 5:].max(1).values, det[:, 4])


def test_nms_with_rows_classes_and_empty():
    z = _predictions(4)
    det = nms_with_rows(z, 0.25, 0.45, classes=[2])[0]
    assert len(det) and (det[:, 5] == 2).all()
    assert nms_with_rows(z, 0.9999, 0.45)[0].shape == (0, 7)


def test_all_is_the_sum_of_conf_class_and_box_in_value_and_gradient():
    torch.manual_seed(0)
    logits = torch.randn(5, 9)
    cls = torch.tensor([0, 3, 1, 2, 0])
    values = {k: target_value(logits, cls, k) for k in TARGETS}
    torch.testing.assert_close(values["conf"], logits[:, 4].sigmoid())
    torch.testing.assert_close(values["class"], logits[torch.arange(5), 5 + cls].sigmoid())
    torch.testing.assert_close(values["box"], logits[:, :4].sigmoid().sum(1))
    torch.testing.assert_close(values["all"], values["conf"] + values["class"] + values["box"])
    grads = {k: target_cotangents(logits, cls, k, target_value) for k in TARGETS}
    torch.testing.assert_close(grads["all"], grads["conf"] + grads["class"] + grads["box"])
    # every part has a gradient on its own entries only: conf on 4, class on 5 + cls, box on 0..3
    assert (grads["conf"][:, 4] > 0).all() and (grads["conf"][:, [0, 1, 2, 3, 5, 6, 7, 8]] == 0).all()
    assert (grads["box"][:, :4] > 0).all() and (grads["box"][:, 4:] == 0).all()
    assert ((grads["class"] > 0).sum(1) == 1).all() and (grads["class"][torch.arange(5), 5 + cls] > 0).all()


def test_unknown_target_is_refused():
    with pytest.raises(ValueError, match="unknown target 'score'"):
        target_value(torch.zeros(1, 9), [0], "score")
