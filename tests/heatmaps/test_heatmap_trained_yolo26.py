"""On a YOLO26 (yolo26n-cbam) trained on the embedded dataset: each detection's heat is inside its own box, for the
end-to-end branch (``end2end`` selected, as ultralytics' ``nms=False``: top-k, no NMS) with the class, box and
combined targets, and for the default one-to-many branch; the detections are ultralytics' own final ones."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

EPOCHS, TRAIN, VAL, SIZE = 20, 256, 20, 128  # as the yolo11n session detector (tests/conftest.py, ul_trained)


@pytest.fixture(scope="module")
def yolo26_trained(tmp_path_factory):
    """{"weights": best.pt (default branch), "e2e": the same model with the end-to-end branch selected, "val"}."""
    from yolo_attn import engines
    from yolo_attn.datasets import shapes

    root = tmp_path_factory.mktemp("yolo26-trained")
    data = shapes.generate(root / "shapes", train=TRAIN, val=VAL, size=SIZE)
    r = subprocess.run([sys.executable, "-m", "yolo_attn.cli.train", "--cfg", "yolo26n-cbam.yaml", "--data", data,
                        f"epochs={EPOCHS}", f"imgsz={SIZE}", "batch=16", "val=false", "plots=false"],
                       cwd=root, capture_output=True, text=True, timeout=1800,
                       env=dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1"))
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    weights = root / "runs" / "train" / "yolo26n-cbam" / "weights" / "best.pt"
    engine = engines.get("ultralytics")
    model, _ = engine.load_model(weights)
    model.model[-1].end2end = True
    e2e = engine.save_checkpoint(model, root / "e2e.pt", {"imgsz": SIZE})
    return {"weights": weights, "e2e": e2e, "val": data.parent / "images" / "val"}


@pytest.fixture(scope="module")
def heatmaps(yolo26_trained, tmp_path_factory):
    from yolo_attn.heatmaps.run import run

    done = {}

    def make(which, target):
        if (which, target) not in done:
            out = tmp_path_factory.mktemp(f"yolo26-hm-{which}-{target}")
            done[which, target] = run(yolo26_trained[which], yolo26_trained["val"], out, target=target,
                                      log=lambda *_: None), out
        return done[which, target]

    return make


@pytest.mark.slow
@pytest.mark.parametrize("which, target", [("e2e", "all"), ("e2e", "class"), ("e2e", "box"), ("weights", "all")])
def test_each_detections_map_has_more_heat_inside_its_box_than_outside(heatmaps, which, target):
    entries, _ = heatmaps(which, target)
    recs = [r for e in entries for r in e["detections"]]
    assert len(recs) >= 20, len(recs)
    inside = np.mean([r["more_heat_inside"] for r in recs])
    assert inside >= 0.9, (which, target, inside)


@pytest.mark.slow
def test_end_to_end_heatmaps_are_for_ultralytics_final_detections(yolo26_trained, heatmaps):
    """Same letterbox and forward; Detect's own top-k and ultralytics' end-to-end filter at conf 0.25."""
    import cv2
    from ultralytics.utils.nms import non_max_suppression
    from ultralytics.utils.ops import scale_boxes

    from yolo_attn.heatmaps.images import letterbox_tensor
    from yolo_attn.heatmaps.model import load_detector

    entries, _ = heatmaps("e2e", "all")
    model, imgsz = load_detector(yolo26_trained["e2e"])
    assert model.model[-1].end2end
    for entry in entries[:8]:
        img = cv2.imread(entry["image"])
        x, _ = letterbox_tensor(img, imgsz, 32)
        with torch.no_grad():
            det = non_max_suppression(model(x)[0], 0.25, 0.45, end2end=True)[0]
        det[:, :4] = scale_boxes(x.shape[2:], det[:, :4], img.shape)
        recs = entry["detections"]
        assert len(recs) == len(det)
        np.testing.assert_allclose([r["box"] for r in recs], det[:, :4].numpy().reshape(-1, 4), atol=0.6)
        np.testing.assert_allclose([r["conf"] for r in recs], det[:, 4].numpy(), atol=1e-3)
        assert [r["cls"] for r in recs] == det[:, 5].int().tolist()
