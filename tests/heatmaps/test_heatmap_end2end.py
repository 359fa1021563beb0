"""YOLO26's two-branch head: the heatmap tool explains the branch the model infers with, and its detections are
ultralytics' own, each tied to its anchor's row: the one-to-many branch with NMS (ultralytics' default), or the
one-to-one branch (``model.end2end = True``, ultralytics' ``nms=False``): Detect's top-k, no NMS."""
import pytest
import torch

from yolo_attn import engines
from yolo_attn.heatmaps.cam import DetectionCAM


def yolo26(end2end, seed=0):
    """An untrained yolo26n-cbam (nc=4) whose class logits start at 0 (scores near 0.5: plenty of detections)."""
    engine = engines.get("ultralytics")
    torch.manual_seed(seed)
    model = engine.build_model(engine.resolve_cfg("yolo26n-cbam.yaml"), nc=4).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # random BN statistics (fresh ones make every feature map nearly constant)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    head = model.model[-1]
    for cls in (*head.cv3, *head.one2one_cv3):
        torch.nn.init.normal_(cls[-1].weight, std=0.2)
        torch.nn.init.zeros_(cls[-1].bias)
    head.end2end = end2end
    return model


@pytest.mark.parametrize("end2end", [False, True])
def test_detections_are_ultralytics_own_and_each_row_is_its_anchor(end2end):
    from ultralytics.utils.nms import non_max_suppression

    model = yolo26(end2end)
    x = torch.rand(1, 3, 64, 96, generator=torch.Generator().manual_seed(1))
    det, _ = DetectionCAM(model, target="all", conf_thres=0.5, iou_thres=0.45).detect(x)
    with torch.no_grad():
        y, raw = model(x)
    assert y.shape == ((1, 126, 6) if end2end else (1, 8, 126))  # 126 anchors at 64 x 96: all kept by the top-k
    ref = non_max_suppression(y, 0.5, 0.45, end2end=end2end)[0]  # what ultralytics' predictor/validator keep
    assert 0 < len(det) == len(ref)
    torch.testing.assert_close(det[:, :6], ref, rtol=1e-5, atol=1e-4)
    branch = raw["one2one" if end2end else "one2many"]  # the row each detection names gives its score
    scores = branch["scores"][0].sigmoid()  # (nc, anchors)
    torch.testing.assert_close(scores[det[:, 5].long(), det[:, 6].long()], det[:, 4], rtol=1e-5, atol=1e-6)
    other = raw["one2many" if end2end else "one2one"]["scores"][0].sigmoid()
    assert not torch.allclose(other[det[:, 5].long(), det[:, 6].long()], det[:, 4])  # not the other branch's


def test_each_detection_gets_its_own_map_from_the_end_to_end_branch():
    cam = DetectionCAM(yolo26(True), target="all", conf_thres=0.5, iou_thres=0.45, layers=["neck"])
    x = torch.rand(1, 3, 64, 96, generator=torch.Generator().manual_seed(1))
    explained = cam.explain(x)
    maps = explained.maps
    assert len(maps) == len(explained.detections) > 1 and maps.shape[1:] == (64, 96)
    assert not all(torch.allclose(torch.as_tensor(maps[0]), torch.as_tensor(m)) for m in maps[1:])


@pytest.mark.parametrize("kind", ["class", "box", "all"])
def test_the_box_target_of_reg_max_1_is_the_four_distances(kind):
    """reg_max 1 has no distribution to take the expectation of (it gave a constant 0: no box heat at all)."""
    head = engines.get("ultralytics").heatmap_head(yolo26(False))
    logits = torch.tensor([[1.0, 2.0, 3.0, 4.0, 0.0, 2.0, -1.0, 0.5]], requires_grad=True)
    value = head.target_value(logits, [1], kind)
    value.sum().backward()
    want = {"class": torch.sigmoid(torch.tensor(2.0)), "box": torch.tensor(10.0)}
    want["all"] = want["class"] + want["box"]
    torch.testing.assert_close(value[0], want[kind])
    assert logits.grad[0, :4].abs().sum() > 0 if kind != "class" else logits.grad[0, :4].abs().sum() == 0
