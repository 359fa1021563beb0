"""DetectionCAM: the batched gradients are each detection's own, the maps are pytorch-grad-cam's, every model works."""
import warnings

import numpy as np
import pytest
import torch

from heatmap_helpers import MODEL_YAMLS, STOCK_YOLOV5S
from shipped_params import each_shipped
from yolo_attn.engines.yolov5.heatmap import raw_predictions, target_value
from yolo_attn.errors import UsageError
from yolo_attn.heatmaps.cam import METHODS, DetectionCAM
from yolo_attn.heatmaps.targets import TARGETS

N = 6  # detections per test image


def _image(seed=0, h=64, w=96):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, h, w, generator=g)


def _reference_gradients(model, cam, image, det):
    """Each detection's gradient at each layer by plain autograd through the whole model, one at a time."""
    acts = {}
    handles = [layer.module.register_forward_hook(lambda m, i, o, k=k: acts.__setitem__(k, o))
               for k, layer in enumerate(cam.layers)]
    try:
        x = image.clone().requires_grad_(True)
        with torch.enable_grad():
            z, raw = model(x)
            logits = raw_predictions(raw)
            out = []
            for row, cls in zip(det[:, 6].long(), det[:, 5].long()):
                t = target_value(logits[0, row][None], cls[None], cam.target).sum()
                out.append(torch.autograd.grad(t, [acts[k] for k in range(len(cam.layers))], retain_graph=True,
                                               allow_unused=True))
    finally:
        for h in handles:
            h.remove()
    return [torch.cat([g[k] if g[k] is not None else torch.zeros_like(acts[k]) for g in out])
            for k in range(len(cam.layers))]


@pytest.mark.parametrize("cfg,layers,target", [
    ("yolov5s-cbam.yaml", None, "all"),
    ("yolov5s-cbam.yaml", ["neck"], "all"),
    ("yolov5s-cbam.yaml", ["attention"], "class"),
    ("yolov5s-cbam.yaml", ["model.20.cv3", "13"], "conf"),  # a module inside a row, and a row before it
    ("yolov5s-aff.yaml", ["AFF"], "box"),
])
def test_every_strategy_gives_each_detection_its_own_gradient(detector, monkeypatch, cfg, layers, target):
    vectorised = []
    batched = DetectionCAM._batched
    monkeypatch.setattr(DetectionCAM, "_batched", lambda self, *a: vectorised.append(len(a[3])) or batched(self, *a))
    model = detector(cfg)
    cam = DetectionCAM(model, layers, target=target, conf_thres=0.0, max_det=N, batch_size=4)  # 2 vmap chunks
    image = _image()
    det, state = cam.detect(image)
    assert len(det) == N
    reference = _reference_gradients(model, cam, image, det)
    assert all(r.abs().max() > 0 for r in reference[:1])
    for strategy in ("auto", "batched", "replicate", "sequential"):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no fallback from 'batched'
            grads = cam.gradients(state, det[:, 6].long(), det[:, 5].long(), strategy)
        for g, r in zip(grads, reference):
            assert g.shape == r.shape
            torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-5 * float(r.abs().max() + 1e-12))
    assert max(vectorised) >= 2  # the vmap path ran on a group of detections (single ones go one at a time)
    assert not any(p.requires_grad is False for p in model.parameters())  # flags restored


def test_maps_are_pytorch_grad_cams_own(detector):
    """Per detection, our map equals pytorch-grad-cam's BaseCAM run on the same model and target."""
    from pytorch_grad_cam import GradCAMPlusPlus

    model = detector("yolov5s-cbam.yaml")
    layers = ["attention"]
    cam = DetectionCAM(model, layers, method="gradcam++", target="all", conf_thres=0.0, max_det=N)
    image = _image(1)
    ours = cam.explain(image)

    class RawOutput(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x):
            return raw_predictions(self.m(x)[1])

    class Target:
        def __init__(self, row, cls):
            self.row, self.cls = row, cls

        def __call__(self, output):  # output: (A, no) of one sample
            return target_value(output[self.row][None], torch.tensor([self.cls]), "all").sum()

    with GradCAMPlusPlus(RawOutput(model), [layer.module for layer in cam.layers]) as theirs:
        for det, m in zip(ours.detections, ours.maps):
            expected = theirs(image, targets=[Target(int(det[6]), int(det[5]))])[0]
            np.testing.assert_allclose(m, expected, atol=2e-4)
    for p in model.parameters():
        p.grad = None


@pytest.mark.parametrize("cfg", each_shipped(MODEL_YAMLS) + [STOCK_YOLOV5S])
def test_every_model_yaml_gets_a_map_per_detection(detector, cfg):
    model = detector(cfg)
    cam = DetectionCAM(model, conf_thres=0.0, max_det=N)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = cam.explain(_image(2))
    assert res.detections.shape == (N, 7)
    assert res.maps.shape == (N, 64, 96)
    assert np.isfinite(res.maps).all() and res.maps.min() >= 0 and res.maps.max() <= 1
    assert res.maps.max() > 0.99  # normalised to [0, 1] (an untrained model may give some all-zero Grad-CAMs)
    assert len({m.tobytes() for m in res.maps}) > 1  # maps per detection, not one per image


@pytest.mark.parametrize("method", METHODS)
def test_every_method_runs(detector, method):
    cam = DetectionCAM(detector("yolov5s-coordatt.yaml"), method=method, conf_thres=0.0, max_det=3)
    res = cam.explain(_image(3))
    assert res.maps.shape == (3, 64, 96) and np.isfinite(res.maps).all()
    if method in ("eigencam", "fem"):  # gradient-free: one map for the image
        assert np.array_equal(res.maps[0], res.maps[1])


def test_no_detection_gives_no_map(detector):
    cam = DetectionCAM(detector("yolov5s.yaml"), conf_thres=1.0)
    res = cam.explain(_image(4))
    assert res.detections.shape == (0, 7) and res.maps.shape == (0, 64, 96)


@pytest.mark.parametrize("layers,message", [
    (["27"], "rows are numbered 0..26"),
    (["40"], "rows are numbered 0..26"),
    (["model.27.m.0"], "not inside a row before Detect"),
    (["Transformer"], "not a row index, a module name"),
    (["model.5.gate"], "runs more than once per forward pass"),  # CBAM's sigmoid: channel and spatial gate
])
def test_bad_layers_are_refused_with_a_reason(detector, layers, message):
    model = detector("yolov5s-cbam.yaml")
    with pytest.raises(UsageError, match=message):
        DetectionCAM(model, layers, conf_thres=0.0, max_det=2).explain(_image())


def test_layer_keywords_types_and_defaults(detector):
    from yolo_attn.heatmaps.model import resolve_layers

    cbam = detector("yolov5s-cbam.yaml")
    assert [l.row for l in resolve_layers(cbam)] == [5, 8, 12]  # backbone rows the head reads: CBAM, CBAM, SPPF
    assert [l.row for l in resolve_layers(detector(STOCK_YOLOV5S))] == [4, 6, 9]  # the same places in stock yolov5s
    assert [l.row for l in resolve_layers(detector("yolov5s-aff.yaml"))] == [4, 6, 9]  # AFF sits in the neck
    assert [l.row for l in resolve_layers(cbam, ["neck"])] == [20, 23, 26]  # the rows Detect reads
    assert [l.row for l in resolve_layers(cbam, ["attention"])] == [5, 8, 11]
    assert [l.row for l in resolve_layers(cbam, ["cbam", "5"])] == [5, 8, 11]  # type, case-insensitive; no repeats
    assert [l.name for l in resolve_layers(cbam, ["20.cv3"])] == ["model.20.cv3"]
    with pytest.raises(UsageError, match="no attention rows"):
        resolve_layers(detector("yolov5s.yaml"), ["attention"])


@pytest.mark.parametrize("name", ["scorecam", "ablationcam", "fullgrad", "nosuchcam"])
def test_unsupported_methods_are_refused(detector, name):
    with pytest.raises(UsageError, match="not supported|unknown"):
        DetectionCAM(detector("yolov5s.yaml"), method=name)


def test_targets_are_validated(detector):
    """The library names its parameter; the command line names the flag."""
    with pytest.raises(UsageError, match="^target score: choose one of conf, class, box, all$") as e:
        DetectionCAM(detector("yolov5s.yaml"), target="score")
    assert e.value.as_flag() == "--target score: choose one of conf, class, box, all"
    assert set(TARGETS) == {"conf", "class", "box", "all"}


def test_a_model_torch_func_cannot_transform_falls_back_with_a_warning(detector, monkeypatch):
    model = detector("yolov5s-se.yaml")
    cam = DetectionCAM(model, ["neck"], conf_thres=0.0, max_det=N)
    det, state = cam.detect(_image(5))
    rows, cls = det[:, 6].long(), det[:, 5].long()
    expected = cam.gradients(state, rows, cls, "sequential")

    def no_vmap(*args, **kwargs):
        raise RuntimeError("vmap: batching rule not implemented for some_op")

    monkeypatch.setattr(torch.func, "vmap", no_vmap)
    with pytest.warns(RuntimeWarning, match="falling back to strategy 'replicate'"):
        grads = cam.gradients(state, rows, cls, "batched")
    for g, e in zip(grads, expected):
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-5 * float(e.abs().max() + 1e-12))
    assert cam.strategy == "replicate"  # remembered: later images do not retry (nor warn again)


def test_auto_chooses_by_detections_and_device():
    from yolo_attn.heatmaps.cam import AUTO_BATCHED_FROM, auto_strategy

    cpu, gpu = torch.device("cpu"), torch.device("cuda", 0)
    assert auto_strategy(1, cpu) == auto_strategy(1, gpu) == "sequential"
    assert auto_strategy(AUTO_BATCHED_FROM - 1, cpu) == "sequential"
    assert auto_strategy(AUTO_BATCHED_FROM, cpu) == "batched"
    assert auto_strategy(2, gpu) == "batched"
    assert auto_strategy(3, cpu, pixels=160 * 160) == "sequential"
    assert auto_strategy(4, cpu, pixels=160 * 160) == auto_strategy(4, cpu, pixels=320 * 320) == "batched"
    assert auto_strategy(4, cpu, pixels=416 * 416) == "sequential"
    assert auto_strategy(10, cpu, vmap_ok=False) == "sequential"  # replicate costs 2-3x on a CPU
    assert auto_strategy(10, gpu, vmap_ok=False) == "replicate"


def test_auto_is_the_default_and_says_what_it_ran(detector, monkeypatch):
    model = detector("yolov5s-cbam.yaml")
    cam = DetectionCAM(model, ["neck"], conf_thres=0.0, max_det=N)
    assert cam.strategy == "auto"
    det, state = cam.detect(_image(5))
    rows, cls = det[:, 6].long(), det[:, 5].long()
    expected = cam.gradients(state, rows, cls, "sequential")
    grads = cam.gradients(state, rows, cls)
    offsets = np.cumsum([0] + state["levels"])
    counts = np.bincount(np.searchsorted(offsets, rows.numpy(), side="right") - 1)
    from yolo_attn.heatmaps.cam import auto_strategy

    w, h = state["size"]
    assert cam.last_choice == {lv: auto_strategy(int(k), cam.device, pixels=w * h) for lv, k in enumerate(counts) if k}
    for g, e in zip(grads, expected):
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-5 * float(e.abs().max() + 1e-12))

    def no_vmap(*args, **kwargs):
        raise RuntimeError("vmap: batching rule not implemented for some_op")

    monkeypatch.setattr(torch.func, "vmap", no_vmap)
    monkeypatch.setattr("yolo_attn.heatmaps.cam.AUTO_BATCHED_FROM", 2)
    monkeypatch.setattr("yolo_attn.heatmaps.cam.AUTO_BATCHED_FROM_SMALL", 2)  # make auto try the vectorised pass
    with pytest.warns(RuntimeWarning, match="falling back to strategy 'sequential'"):
        grads = cam.gradients(state, rows, cls)
    assert cam.strategy == "auto" and not cam.vmap_ok and set(cam.last_choice.values()) == {"sequential"}
    for g, e in zip(grads, expected):
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-5 * float(e.abs().max() + 1e-12))
