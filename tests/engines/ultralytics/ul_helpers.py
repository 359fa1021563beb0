"""Constants shared by the ultralytics engine tests (imported by name: this folder is on sys.path under pytest)."""
from yolo_attn import paths

ULTRALYTICS_YAMLS = paths.MODEL_YAMLS / "ultralytics"


def n_params(model):
    return sum(p.numel() for p in model.parameters())
