"""Fixtures for the heatmap tests: small untrained detectors of every shipped YAML, checkpoints made from them."""
from pathlib import Path

import pytest
import torch

from heatmap_helpers import yaml_path


@pytest.fixture
def detector(build_small):
    """An untrained DetectionModel (eval mode, nc=4) of a YAML name, built at 64 px with random BN statistics,
    so that maps are not trivially flat."""
    import yaml

    def build(name, seed=0):
        torch.manual_seed(seed)
        d = yaml.safe_load(yaml_path(name).read_text())
        d["nc"] = 4
        model = build_small(d).eval()
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                    m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
        model.names = {0: "circle", 1: "square", 2: "triangle", 3: "cross"}
        return model

    return build


@pytest.fixture
def checkpoint(detector, tmp_path):
    """A checkpoint file (as train.py saves them: half precision, 'model' and 'opt') of an untrained detector."""

    def save(name, imgsz=64):
        import copy

        path = tmp_path / f"{Path(name).stem.replace(':', '_')}.pt"
        torch.save({"model": copy.deepcopy(detector(name)).half(), "ema": None, "opt": {"imgsz": imgsz}}, path)
        return path

    return save


@pytest.fixture
def image_file(tmp_path):
    """A small non-square shapes-like image (so the letterbox pads), written as JPEG."""
    import cv2
    import numpy as np

    def write(name="img.jpg", h=72, w=120, seed=0):
        rng = np.random.default_rng(seed)
        img = np.full((h, w, 3), 120, np.uint8) + rng.integers(0, 20, (h, w, 3), dtype=np.uint8)
        cv2.circle(img, (w // 4, h // 2), h // 5, (40, 40, 220), -1)
        cv2.rectangle(img, (w // 2, h // 4), (w // 2 + h // 3, h // 4 + h // 3), (40, 200, 40), -1)
        path = tmp_path / name
        cv2.imwrite(str(path), img)
        return path

    return write

