"""Multi-GPU training in the ultralytics engine: ultralytics writes a temporary DDP script and starts it with
torchrun; each worker is a fresh process that imports only ultralytics. Without a GPU, the same script is generated
here from a real trainer and run in a fresh process (one worker, CPU): it must install the yolo-attn layers, build the
attention YAML and train, and the trained model must hold the attention layers."""
import os
import subprocess
import sys

import pytest

import yolo_attn  # noqa: F401  (installs the adapters before ultralytics is imported)
from yolo_attn.datasets import shapes

YAMLS = ["yolo11n-cbam.yaml"]


@pytest.mark.slow
@pytest.mark.parametrize("cfg", YAMLS)
def test_the_generated_ddp_script_builds_our_layers_in_a_fresh_process(cfg, tmp_path, monkeypatch):
    from ultralytics.models.yolo.detect import DetectionTrainer
    from ultralytics.utils import dist

    monkeypatch.chdir(tmp_path)
    data = shapes.generate(tmp_path / "ds", train=8, val=4, size=64)
    trainer = DetectionTrainer(overrides=dict(model=cfg, data=str(data), epochs=1, imgsz=64, batch=4, workers=0,
                                              device="cpu", project=str(tmp_path / "runs"), name="ddp", plots=False,
                                              exist_ok=True))
    script = dist.generate_ddp_file(trainer)
    try:
        text = open(script).read()
        assert "import yolo_attn" not in text  # the script imports only ultralytics: the pickled callbacks must do it
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "RANK", "LOCAL_RANK", "WORLD_SIZE")}
        p = subprocess.run([sys.executable, script], cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=600)
        out = p.stdout + p.stderr
        assert p.returncode == 0, out[-4000:]
        last = tmp_path / "runs" / "ddp" / "weights" / "last.pt"
        assert last.is_file()
        from yolo_attn.checkpoints import load_checkpoint

        model = load_checkpoint(last)["model"]
        assert any(type(m).__name__ == "CBAM" for m in model.modules())
    finally:
        for suffix in (".py", ".pt"):
            if os.path.exists(os.path.splitext(script)[0] + suffix):
                os.remove(os.path.splitext(script)[0] + suffix)
