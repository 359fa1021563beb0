"""Restricted loading for ultralytics: checkpoints with plugin classes load, code in a pickle never runs, a yolov5
checkpoint is refused naming its engine, and dataset label caches are read without pickle code."""
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from yolo_attn.engines import of_checkpoint
from yolo_attn.engines.ultralytics.checkpoint import load_dataset_cache_file
from yolo_attn.engines.ultralytics.model import save_checkpoint
from yolo_attn.errors import UsageError


class _Payload:
    """Unpickling it creates the file ``marker``: code from the checkpoint ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return Path.touch, (Path(self.marker),)


@pytest.fixture
def saved(build, tmp_path):
    def make(name="yolo11n-cbam.yaml", **extra):
        return save_checkpoint(build(name), tmp_path / f"{name}.pt", {"imgsz": 64}, **extra)

    return make


def test_a_checkpoint_with_attention_layers_loads_through_ultralytics(saved):
    """YOLO(pt) reads it with ultralytics' torch_safe_load, which now goes through yolo_attn.checkpoints."""
    from ultralytics import YOLO

    path = saved()
    names = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    assert "yolo_attn.modules.hybrid.CBAM" in names and "ultralytics.nn.tasks.DetectionModel" in names
    model = YOLO(str(path))
    assert sum(type(m).__name__ == "CBAM" for m in model.model.model) == 3
    assert of_checkpoint(path).name == "ultralytics"


def test_code_in_a_checkpoint_never_runs(saved, tmp_path):
    """ultralytics alone loads with weights_only=False: the payload would run."""
    from ultralytics import YOLO

    marker = tmp_path / "pwned"
    path = saved(git=_Payload(marker))
    with pytest.raises(UsageError, match="refusing to load .*its pickle names builtins.getattr"):
        YOLO(str(path))
    from ultralytics.nn.tasks import torch_safe_load

    with pytest.raises(UsageError, match="refusing to load"):
        torch_safe_load(str(path))
    assert not marker.exists()
    from ultralytics.utils.patches import torch_load as unrestricted

    unrestricted(path)  # the symptom: ultralytics' own loader runs it
    assert marker.exists()


def test_strip_optimizer_reads_restricted(saved, tmp_path):
    from ultralytics.utils.torch_utils import strip_optimizer

    marker = tmp_path / "pwned"
    path = saved(git=_Payload(marker))
    assert strip_optimizer(path) == {}  # ultralytics skips a file it cannot read, with a warning
    assert not marker.exists()
    assert strip_optimizer(saved("yolo11n.yaml"))["epoch"] == -1


def test_a_yolov5_checkpoint_is_refused_naming_its_engine(tmp_path, build_small):
    """ultralytics would load the yolov5 model object and fail later, far from the cause."""
    from ultralytics import YOLO

    from yolo_attn import paths
    from yolo_attn.engines.yolov5.model import save_checkpoint as save_yolov5

    import yaml

    d = yaml.safe_load((paths.MODEL_YAMLS / "yolov5s.yaml").read_text())
    path = save_yolov5(build_small(d), tmp_path / "v5.pt")
    assert of_checkpoint(path).name == "yolov5"
    with pytest.raises(UsageError, match="is a yolov5 checkpoint .*not an ultralytics one"):
        YOLO(str(path))


def test_label_cache(tmp_path):
    """ultralytics' label cache (np.save of a dict) reads back; one naming other code raises (ultralytics then
    rebuilds it from the labels) instead of running it."""
    from ultralytics.data.utils import save_dataset_cache_file

    cache = {"labels": [{"im_file": "a.jpg", "shape": (64, 64), "cls": np.zeros((2, 1), np.float32),
                         "bboxes": np.ones((2, 4), np.float32), "segments": [], "normalized": True,
                         "bbox_format": "xywh"}], "hash": "h", "results": (1, 0, 0, 0, 1), "msgs": []}
    path = tmp_path / "train.cache"
    save_dataset_cache_file("test: ", path, dict(cache), "1.0.3")
    got = load_dataset_cache_file(path)
    assert got["hash"] == "h" and got["labels"][0]["shape"] == (64, 64)
    np.testing.assert_array_equal(got["labels"][0]["bboxes"], np.ones((2, 4), np.float32))

    marker = tmp_path / "pwned"
    bad = tmp_path / "bad.cache.npy"
    np.save(bad, np.array({"payload": _Payload(marker)}, dtype=object), allow_pickle=True)
    with pytest.raises(pickle.UnpicklingError, match="not array data"):
        load_dataset_cache_file(bad)
    assert not marker.exists()
    from yolo_attn.engines.ultralytics.stock import original

    original("ultralytics.data.utils", "load_dataset_cache_file")(bad)  # the symptom: ultralytics' own runs it
    assert marker.exists()
    from ultralytics.data import dataset

    assert dataset.load_dataset_cache_file is load_dataset_cache_file
