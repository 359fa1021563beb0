"""Structural weight transfer and identity start for ultralytics checkpoints: from a yolo11n baseline into
yolo11n-cbam every baseline tensor is transferred, and with identity start the variant computes the baseline's
function at step 0."""
import logging

import pytest
import torch

from ul_helpers import ULTRALYTICS_YAMLS
from yolo_attn.engines.ultralytics.model import identity_rows, model_dict, save_checkpoint
from yolo_attn.modules import IdentityStart
from yolo_attn.transfer import structural_transfer


def _with_identity(rows, name="yolo11n-cbam.yaml"):
    return dict(model_dict(ULTRALYTICS_YAMLS / name), identity_start=rows)


def _outputs(model, x):
    """Decoded predictions, raw box and class outputs, and the feature maps the head reads."""
    with torch.no_grad():
        y, raw = model.eval()(x)
    return y, raw["boxes"], raw["scores"], *raw["feats"]


def _baseline(build, nc=4):
    torch.manual_seed(0)
    model = build("yolo11n.yaml", nc=nc)
    with torch.no_grad():  # trained-like BN statistics, so that a wrong mapping shows in the outputs
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    return model


@pytest.fixture
def baseline(build):
    return _baseline(build)


def test_every_baseline_tensor_is_transferred_and_the_variant_equals_the_baseline(baseline, build):
    sd = baseline.state_dict()
    rows = identity_rows(sd, ULTRALYTICS_YAMLS / "yolo11n-cbam.yaml")
    assert rows == [5, 8, 11]
    x = torch.rand(2, 3, 96, 128)
    want = _outputs(baseline, x)
    for init in ("identity", "default"):
        torch.manual_seed(1)
        model = build(_with_identity(rows if init == "identity" else []))
        mapped, report = structural_transfer(sd, model.state_dict())
        assert report.transferred == report.source_tensors == len(sd)
        assert report.new_rows == [5, 8, 11]
        model.load_state_dict(mapped, strict=False)
        assert sum(isinstance(m, IdentityStart) for m in model.model) == (3 if init == "identity" else 0)
        got = _outputs(model, x)
        if init == "identity":
            for g, w in zip(got, want):
                torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-5)
        else:  # the symptom identity start removes: fresh attention changes the features the head reads
            assert max(((g - w).abs().max() / w.abs().max()).item() for g, w in zip(got[3:], want[3:])) > 0.05


def test_ultralytics_own_load_transfers_by_structure(build, tmp_path, caplog):
    """YOLO(variant).load(baseline.pt): ultralytics matches by name, so without the patch only rows 0-4 transfer
    (every later key moved); with it every baseline tensor, the head included."""
    from ultralytics import YOLO
    from ultralytics.nn import tasks
    from ultralytics.utils import LOGGER

    from yolo_attn.engines.ultralytics import patches

    baseline = _baseline(build, nc=80)  # the YAML's nc, as a COCO-pretrained baseline
    path = save_checkpoint(baseline, tmp_path / "baseline.pt", {"imgsz": 64})
    n_source = len(baseline.state_dict())
    LOGGER.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.INFO, logger=LOGGER.name):
            model = YOLO(str(ULTRALYTICS_YAMLS / "yolo11n-cbam.yaml")).load(str(path))
    finally:
        LOGGER.removeHandler(caplog.handler)
    assert f"Transferred {n_source}/{n_source} source tensors by structure" in caplog.text
    head = model.model.model[-1]
    torch.testing.assert_close(head.cv3[0][-1].weight, baseline.model[-1].cv3[0][-1].weight.half().float())
    stock = patches._STOCK[tasks.intersect_dicts](baseline.state_dict(), model.model.state_dict())
    assert len(stock) < n_source / 2  # by name: the shifted rows do not match
