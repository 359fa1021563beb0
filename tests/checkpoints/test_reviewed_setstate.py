"""A module class with its own __setstate__ is refused unless that method was read and listed
(``pickle_scan.REVIEWED_SETSTATE``): YOLO12's area attention (ultralytics' AAttn) has one, and a YOLO12 checkpoint
loads."""
from yolo_attn import engines, paths
from yolo_attn.checkpoints import pickle_scan


def test_a_yolo12_checkpoint_loads(tmp_path):
    engine = engines.get("ultralytics")
    model = engine.build_model(paths.MODEL_YAMLS / "ultralytics" / "yolo12n-cbam.yaml", nc=4)
    weights = engine.save_checkpoint(model, tmp_path / "best.pt", {"imgsz": 64})
    loaded, _ = engine.load_model(weights)
    assert "AAttn" in {type(m).__name__ for m in loaded.modules()}
    assert pickle_scan.REVIEWED_SETSTATE == {"ultralytics.nn.modules.block.AAttn.__setstate__"}  # one, read
