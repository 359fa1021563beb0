"""On an ultralytics detector trained on the embedded dataset: each detection's heat is inside its own box, for the
class, box and combined targets, and the detections are ultralytics' own final ones.

The detector is the session's ``ul_trained`` (tests/conftest.py).
"""
import numpy as np
import pytest
import torch


@pytest.fixture(scope="module")
def ul_heatmaps(ul_trained, tmp_path_factory):
    from yolo_attn.heatmaps.run import run

    done = {}

    def make(target="all", layers=None):
        key = (target, tuple(layers or ()))
        if key not in done:
            out = tmp_path_factory.mktemp(f"ul-hm-{target}")
            done[key] = run(ul_trained["weights"], ul_trained["val"], out, target=target, layers=layers,
                            save_npy=True, log=lambda *_: None), out
        return done[key]

    return make


@pytest.mark.slow
@pytest.mark.parametrize("target, layers", [("all", None), ("class", None), ("box", None), ("all", ["neck"])])
def test_each_detections_map_has_more_heat_inside_its_box_than_outside(ul_heatmaps, target, layers):
    entries, _ = ul_heatmaps(target, layers)
    recs = [r for e in entries for r in e["detections"]]
    assert len(recs) >= 60
    inside = np.mean([r["more_heat_inside"] for r in recs])
    assert inside >= 0.95, (target, layers, inside)


@pytest.mark.slow
def test_heatmaps_are_for_ultralytics_final_detections(ul_trained, ul_heatmaps):
    """Same letterbox, forward and NMS (ultralytics' own, at the command's conf 0.25 and IoU 0.45)."""
    import cv2
    from ultralytics.utils.nms import non_max_suppression
    from ultralytics.utils.ops import scale_boxes

    from yolo_attn.heatmaps.images import letterbox_tensor
    from yolo_attn.heatmaps.model import load_detector

    entries, out = ul_heatmaps()
    model, imgsz = load_detector(ul_trained["weights"])
    assert imgsz == ul_trained["imgsz"]
    for entry in entries[:8]:
        img = cv2.imread(entry["image"])
        x, _ = letterbox_tensor(img, imgsz, 32)
        with torch.no_grad():
            det = non_max_suppression(model(x)[0], 0.25, 0.45)[0]
        det[:, :4] = scale_boxes(x.shape[2:], det[:, :4], img.shape)
        recs = entry["detections"]
        assert len(recs) == len(det)
        np.testing.assert_allclose([r["box"] for r in recs], det[:, :4].numpy().reshape(-1, 4), atol=0.6)
        np.testing.assert_allclose([r["conf"] for r in recs], det[:, 4].numpy(), atol=1e-3)
        assert [r["cls"] for r in recs] == det[:, 5].int().tolist()
        for r in recs:
            assert np.load(out / r["npy"]).shape == img.shape[:2]
