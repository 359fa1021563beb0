"""Each engine answers for its own detection head (``Engine.heatmap_head``): the adapter follows the
``HeatmapHead`` contract, heads it cannot explain are refused with a reason, and loading asks the checkpoint's
engine."""
import pytest
import torch

from yolo_attn import engines
from yolo_attn.engines.heatmap_head import HeatmapHead
from yolo_attn.errors import UsageError
from yolo_attn.heatmaps.heads import check_target, head_of
from yolo_attn.heatmaps.model import load_detector


def _ultralytics(cfg, nc=4):
    engine = engines.get("ultralytics")
    return engine.build_model(engine.resolve_cfg(cfg), nc=nc).eval()


def test_each_engine_gives_the_adapter_of_its_head(detector):
    yolov5_head = head_of(detector("yolov5s-cbam.yaml"))
    ultralytics_head = head_of(_ultralytics("yolo11n.yaml"))
    assert isinstance(yolov5_head, HeatmapHead) and yolov5_head.targets == ("conf", "class", "box", "all")
    assert isinstance(ultralytics_head, HeatmapHead) and ultralytics_head.targets == ("class", "box", "all")
    assert type(yolov5_head).__module__ == "yolo_attn.engines.yolov5.heatmap"
    assert type(ultralytics_head).__module__ == "yolo_attn.engines.ultralytics.heatmap"
    assert ultralytics_head.target_hint("conf") and not yolov5_head.target_hint("conf")


def test_the_contract_names_every_hook():
    head = HeatmapHead()
    for call in (lambda: head.split(None), lambda: head.nms(None, 0.25, 0.45, None, 300),
                 lambda: head.target_value(torch.zeros(1, 9), [0], "all")):
        with pytest.raises(NotImplementedError):
            call()
    assert head.targets == () and head.target_hint("conf") == ""
    with pytest.raises(UsageError, match="target conf: choose one of $"):
        check_target(head, "conf")


def test_heads_an_engine_cannot_explain_are_refused_with_a_reason():
    from yolov5.models.yolo import SegmentationModel

    from yolo_attn import paths

    engine = engines.get("yolov5")
    with engine.quiet():
        seg = SegmentationModel(str(paths.yolov5_root() / "models" / "segment" / "yolov5n-seg.yaml"), nc=4).eval()
    with pytest.raises(UsageError, match="^best.pt is a segmentation model; heatmaps support detection models"):
        head_of(seg, "best.pt")
    with pytest.raises(UsageError, match="^heatmaps explain detection models; this model's head is Segment$"):
        head_of(_ultralytics("yolo11n-seg.yaml"))
    dual = _ultralytics("yolo26n.yaml")  # one-to-many and one-to-one heads; the one-to-many answers by default
    assert isinstance(head_of(dual), HeatmapHead)
    assert not head_of(dual).end2end
    dual.model[-1].end2end = True  # as ultralytics' predictor sets it with nms=False: the one-to-one branch
    assert head_of(dual).end2end  # explained too (tests/heatmaps/test_heatmap_end2end.py)
    with pytest.raises(UsageError, match="^the model is not a yolov5 detection model \\(its last layer must be"):
        head_of(torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1)))


def test_a_checkpoint_no_engine_recognises_is_refused(tmp_path):
    path = tmp_path / "plain.pt"
    torch.save({"model": torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1))}, path)
    with pytest.raises(UsageError, match="plain.pt: the checkpoint's 'model' is a torch.nn.modules.container."
                                         "Sequential object, which is not a model class"):
        load_detector(path)
    with pytest.raises(UsageError, match="nothing.pt does not exist"):
        load_detector(tmp_path / "nothing.pt")


def test_a_checkpoint_without_a_suffix_is_still_a_checkpoint(checkpoint):
    path = checkpoint("yolov5s.yaml", imgsz=96)
    bare = path.rename(path.with_suffix(""))
    model, imgsz = load_detector(bare)
    assert imgsz == 96 and isinstance(head_of(model), HeatmapHead)


def test_the_device_of_a_device_flag():
    base = engines.get("ultralytics")  # the plain choice every engine inherits unless it has its own
    assert base.select_device("cpu") == torch.device("cpu")
    assert base.select_device("") == torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="Invalid CUDA '--device 0' requested, use '--device cpu'"):
            base.select_device("0")
