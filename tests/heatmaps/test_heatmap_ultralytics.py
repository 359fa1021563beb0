"""Heatmaps for ultralytics' anchor-free head (DFL boxes, class scores, no objectness): each detection's row is the
anchor ultralytics' NMS kept, the targets are the documented functions of that row, every strategy gives each
detection its own gradient, and the command works on ultralytics checkpoints."""
import json

import numpy as np
import pytest
import torch

import yolo_attn  # noqa: F401
from yolo_attn import paths
from yolo_attn.errors import BadParameter
from yolo_attn.heatmaps.cam import DetectionCAM
from yolo_attn.engines.ultralytics.heatmap import AnchorFreeHead
from yolo_attn.heatmaps.heads import head_of

YAMLS = paths.MODEL_YAMLS / "ultralytics"


@pytest.fixture
def ul_detector():
    """An untrained ultralytics DetectionModel (nc=4, eval) with random BN statistics and class biases raised so
    that some anchors pass a low threshold."""
    import logging

    from ultralytics.nn.tasks import DetectionModel
    from ultralytics.utils import LOGGER

    def build(name, seed=0):
        torch.manual_seed(seed)
        level = LOGGER.level
        LOGGER.setLevel(logging.WARNING)
        try:
            model = DetectionModel(str(YAMLS / name), nc=4, verbose=False).eval()
        finally:
            LOGGER.setLevel(level)
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                    m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
        model.names = {0: "circle", 1: "square", 2: "triangle", 3: "cross"}
        return model

    return build


def _image(seed=0, h=64, w=96):
    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(seed))


def test_rows_are_the_anchors_ultralytics_nms_kept(ul_detector):
    from ultralytics.utils.nms import non_max_suppression

    model = ul_detector("yolo11n-cbam.yaml")
    head = head_of(model)
    assert isinstance(head, AnchorFreeHead) and head.reg_max == 16 and head.nc == 4
    with torch.no_grad():
        y, levels = head.split(model(_image()))
    det = head.nms(y, 0.0, 0.7, None, 10)[0]
    want = non_max_suppression(y, 0.0, 0.7, max_det=10)[0]
    torch.testing.assert_close(det[:, :6], want)
    rows = torch.cat(levels, 1)[0]
    assert rows.shape == (y.shape[2], 64 + 4)
    torch.testing.assert_close(rows[det[:, 6].long(), 64 + det[:, 5].long()].sigmoid(), det[:, 4])


def test_targets_are_the_documented_functions_of_the_row():
    head = AnchorFreeHead(type("D", (), {"reg_max": 16, "nc": 4})())
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 64 + 4, generator=g)
    cls = torch.tensor([0, 2, 3])
    probs = torch.sigmoid(logits[torch.arange(3), 64 + cls])
    torch.testing.assert_close(head.target_value(logits, cls, "class"), probs)
    sides = logits[:, :64].reshape(3, 4, 16).softmax(2)
    dist = (sides * torch.arange(16.0)).sum(2)  # DFL: the expected bin of each side
    torch.testing.assert_close(head.target_value(logits, cls, "box"), dist.sum(1) / 15)
    torch.testing.assert_close(head.target_value(logits, cls, "all"), probs + dist.sum(1) / 15)
    assert ((head.target_value(logits, cls, "box") >= 0) & (head.target_value(logits, cls, "box") <= 4)).all()


def test_dfl_matches_ultralytics_decoding(ul_detector):
    """The box target's distances are the ones ultralytics' DFL layer decodes (grid units)."""
    model = ul_detector("yolo11n.yaml")
    detect = model.model[-1]
    with torch.no_grad():
        _, raw = model(_image())
    dfl = detect.dfl(raw["boxes"])[0].T  # (A, 4)
    head = head_of(model)
    rows = torch.cat((raw["boxes"], raw["scores"]), 1)[0].T
    torch.testing.assert_close(head.target_value(rows, torch.zeros(len(rows)), "box") * 15, dfl.sum(1))


@pytest.mark.parametrize("name, layers, target", [("yolo11n-cbam.yaml", None, "all"),
                                                  ("yolo11n-cbam.yaml", ["neck"], "class"),
                                                  ("yolov8n-cbam.yaml", ["attention"], "box")])
def test_every_strategy_gives_each_detection_its_own_gradient(ul_detector, name, layers, target):
    model = ul_detector(name)
    cam = DetectionCAM(model, layers, target=target, conf_thres=0.0, max_det=6, batch_size=4)
    image = _image()
    det, state = cam.detect(image)
    assert len(det) == 6
    grads = {s: cam.gradients(state, det[:, 6].long(), det[:, 5].long(), s) for s in ("auto", "batched",
                                                                                       "replicate", "sequential")}
    assert cam.vmap_ok  # no fallback: torch.func runs through the anchor-free head
    acts = {}
    hooks = [layer.module.register_forward_hook(lambda m, i, o, k=k: acts.__setitem__(k, o))
             for k, layer in enumerate(cam.layers)]
    try:
        with torch.enable_grad():
            y, levels = cam.head.split(model(image))
            rows = torch.cat(levels, 1)[0]
            reference = []
            for r, c in zip(det[:, 6].long(), det[:, 5].long()):
                t = cam.head.target_value(rows[r][None], c[None], target).sum()
                reference.append(torch.autograd.grad(t, [acts[k] for k in range(len(cam.layers))],
                                                     retain_graph=True, allow_unused=True))
    finally:
        for h in hooks:
            h.remove()
    for k in range(len(cam.layers)):
        want = torch.cat([g[k] if g[k] is not None else torch.zeros_like(acts[k]) for g in reference])
        assert want.abs().max() > 0
        for strategy, got in grads.items():
            torch.testing.assert_close(got[k], want, rtol=1e-4, atol=1e-6, msg=f"{strategy}, layer {k}")


def test_objectness_target_is_refused(ul_detector):
    with pytest.raises(BadParameter, match="target conf: choose one of class, box, all .*no objectness"):
        DetectionCAM(ul_detector("yolo11n.yaml"), target="conf")


def test_the_command_on_an_ultralytics_checkpoint(ul_detector, image_file, tmp_path):
    from yolo_attn.cli.heatmap import main
    from yolo_attn.engines.ultralytics.model import save_checkpoint

    weights = save_checkpoint(ul_detector("yolo11n-cbam.yaml"), tmp_path / "best.pt", {"imgsz": 64})
    out = tmp_path / "hm"
    main(["--weights", str(weights), "--source", str(image_file()), "--out", str(out), "--conf", "0.001", "--iou", "1",
          "--max-det", "3", "--target", "box", "--attention", "--save-npy", "--device", "cpu"])
    record = json.loads((out / "img.json").read_text())
    assert len(record["detections"]) == 3 and record["target"] == "box"
    assert record["layers"] == ["model.5", "model.8", "model.13"]  # the backbone rows the neck reads (P3, P4, P5)
    for det in record["detections"]:
        heat = np.load(out / det["npy"])
        assert heat.shape == (72, 120) and 0 <= heat.min() and heat.max() <= 1
    assert (out / "img_attention.png").is_file()
