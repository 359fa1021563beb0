"""Small real models for tests that need a checkpoint the loader accepts (a model class of an engine), not a
particular architecture."""
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def tiny_yolov5(nc=2, cfg="yolov5s.yaml"):
    """A shipped yolov5s YAML (default: the stock yolov5s) at depth 0.33, width 0.125: a DetectionModel of ~0.1 M
    parameters, built in well under a second."""
    from yolo_attn.engines.yolov5.model import build_model

    cfg = yaml.safe_load((REPO / "model_yamls" / cfg).read_text())
    cfg["depth_multiple"], cfg["width_multiple"] = 0.33, 0.125
    return build_model(cfg, nc=nc).eval()
