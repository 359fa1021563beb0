"""Fixtures for the benchmark tests (one torch thread comes from tests/conftest.py)."""
import pytest
import torch


@pytest.fixture
def yolov5_model():
    """Build a yolov5 DetectionModel from a YAML in model_yamls/ quietly (the stock constructor)."""
    import yolo_attn  # noqa: F401
    from yolov5.models.yolo import Model

    from yolo_attn import paths
    from yolo_attn.engines.yolov5.model import quiet

    def build(name, nc=80):
        with quiet():
            torch.manual_seed(0)
            return Model(str(paths.resolve_cfg(name)), ch=3, nc=nc)

    return build
