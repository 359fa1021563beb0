"""Shared test fixtures: one torch thread, quiet yolov5, small model builds, a trained ultralytics detector."""
import copy
import json
import logging
import os
import subprocess
import sys

import pytest
import torch

# The commands run here (in-process or as subprocesses) use one CPU thread unless a test says otherwise
# (yolo_attn.threads: their default is every core): many small commands, a small shared machine.
os.environ.setdefault("YOLO_ATTN_THREADS", "1")

@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """The tests run many tiny forwards: with several OpenMP threads per process on a small, shared machine they
    oversubscribe the cores and run 10-100x slower. One thread keeps them fast (subprocesses keep their default)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _engine_logs_to_open_streams():
    """yolov5's and ultralytics' log handlers keep the ``sys.stderr`` / ``sys.stdout`` of the moment the engine was
    imported; imported during a test with ``capsys``, that is a capture closed after the test, and every later
    message would be a logging traceback. After each test such a handler writes to the session's stream again."""
    yield
    for name, stream in (("yolov5", sys.stderr), ("ultralytics", sys.stdout)):
        for handler in logging.getLogger(name).handlers:
            if type(handler) is logging.StreamHandler and getattr(handler.stream, "closed", False):
                with handler.lock:  # not setStream: it flushes the old stream, which is closed
                    handler.stream = stream


@pytest.fixture
def quiet_yolov5():
    """Silence yolov5's per-layer printout while a test builds models."""
    import yolo_attn  # noqa: F401  (patches yolov5 before it is used)
    from yolo_attn.engines.yolov5.model import quiet

    with quiet() as logger:
        yield logger


@pytest.fixture
def build_small(quiet_yolov5):
    """Build a DetectionModel from a model dict the way yolov5's constructor does (safe parse_model, then a
    batch-1 forward in train mode to find the strides), but at 64 px and without weight init or FLOPs profiling,
    so that large scales stay cheap. Returns the model in train mode."""
    from yolov5.models import yolo

    def build(d, imgsz=64):
        model = yolo.DetectionModel.__new__(yolo.DetectionModel)
        torch.nn.Module.__init__(model)
        model.yaml = copy.deepcopy(d)
        model.model, model.save = yolo.parse_model(copy.deepcopy(d), ch=[3])
        m = model.model[-1]
        m.inplace = True
        m.stride = torch.tensor([imgsz / x.shape[-2] for x in model(torch.zeros(1, 3, imgsz, imgsz))])
        m.anchors /= m.stride.view(-1, 1, 1)
        model.stride = m.stride
        return model

    return build


UL_EPOCHS, UL_TRAIN, UL_VAL, UL_SIZE = 20, 256, 20, 128


@pytest.fixture(scope="session")
def ul_trained(tmp_path_factory):
    """An ultralytics detector trained once per session by the same command as scripts/train.sh
    (``yolo_attn.cli.train``, which picks the ultralytics engine from the YAML): model_yamls/ultralytics/
    yolo11n-cbam.yaml on a 256-image, 128 px shapes dataset, UL_EPOCHS epochs with one thread (mAP50 > 0.5).
    {"weights": its best.pt, "val": the validation images, "data": the data YAML, "imgsz": its image size}."""
    from yolo_attn.datasets import shapes

    root = tmp_path_factory.mktemp("ul-trained")
    data = shapes.generate(root / "shapes", train=UL_TRAIN, val=UL_VAL, size=UL_SIZE)
    r = subprocess.run([sys.executable, "-m", "yolo_attn.cli.train", "--cfg", "yolo11n-cbam.yaml", "--data", data,
                        f"epochs={UL_EPOCHS}", f"imgsz={UL_SIZE}", "batch=16", "val=false", "plots=false"],
                       cwd=root, capture_output=True, text=True, timeout=1800,
                       env=dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1"))
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    summary = json.loads((root / "runs" / "train" / "yolo11n-cbam" / "summary.json").read_text())
    assert summary["mAP50"] > 0.5, summary
    return {"weights": summary["weights"], "val": data.parent / "images" / "val", "data": data, "imgsz": UL_SIZE}
