"""Checkpoints that run code through allowed classes (called with pickled arguments, given hooks, their own
__setstate__, other pickle protocols) are refused before torch.load runs anything: by load_checkpoint and by every
command that reads a checkpoint. What torch writes for a real model still loads."""
import os
import pickletools
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml

from checkpoint_gadgets import data_pkl, gadgets, register, with_data_pkl
from yolo_attn.checkpoints import load_checkpoint
from yolo_attn.errors import UsageError

REPO = Path(__file__).resolve().parents[2]
REFUSALS = {  # what each refusal names
    "detect_multi_backend.pt": "yolov5.models.common.DetectMultiBackend, which is never part of a saved model",
    "allowed_class_call.pt": "calls checkpoint_gadgets.Shell with pickled arguments",
    "rebuild_from_type.pt": "the function torch._tensor._rebuild_from_type_v2 would call is checkpoint_gadgets.Shell",
    "memoised_call.pt": "calls checkpoint_gadgets.Shell with pickled arguments",
    "forward_hook.pt": "object has _forward_pre_hooks set",
    "own_setstate.pt": "has its own __setstate__ (checkpoint_gadgets.SetState.__setstate__)",
    "new_with_args.pt": "passes arguments to checkpoint_gadgets.Shell.__new__",
    "protocol4.pt": "which torch's restricted loader does not accept",
}


@pytest.fixture(scope="module")
def model():
    from yolo_attn.engines.yolov5.model import build_model

    cfg = yaml.safe_load((REPO / "model_yamls" / "yolov5s-cbam.yaml").read_text())
    cfg["depth_multiple"], cfg["width_multiple"] = 0.33, 0.125
    return build_model(cfg, nc=2).eval()


@pytest.fixture
def registered(monkeypatch):
    """The gadget classes registered as layers (allowed classes), as a user's plugin would; undone afterwards."""
    from yolo_attn.registry import layers

    monkeypatch.setattr(layers, "_REGISTRY", dict(layers._REGISTRY))
    register()


def _use(ckpt):
    """What detect/val do with a loaded checkpoint: run its models."""
    for value in ckpt.values():
        if isinstance(value, torch.nn.Module):
            with torch.no_grad():
                value.float().eval()(torch.zeros(1, 3, 64, 64))


def test_every_gadget_is_refused_before_anything_runs(tmp_path, model, registered):
    marker = tmp_path / "PWNED"
    refused = {}
    for name, path in gadgets(tmp_path, marker, model).items():
        try:
            ckpt = load_checkpoint(path)
        except UsageError as e:
            refused[name] = str(e)
        except Exception as e:  # noqa: BLE001  (a loader that lets a gadget run fails here or below)
            refused[name] = f"{type(e).__name__}: {e}"
        else:
            _use(ckpt)
    assert not marker.exists(), "a gadget ran its command"
    for name, expected in REFUSALS.items():
        assert name in refused, f"{name} loaded"
        assert expected in refused[name] and "nothing of this file has run" in refused[name], (name, refused[name])


def test_torch_pickles_modules_as_empty_objects_given_their_state(tmp_path, model):
    """The rule the scan enforces is how torch.save writes a model (read here with pickletools alone): every use of a
    model class, first by name (GLOBAL) and later through the memo (BINGET), is NEWOBJ with an empty argument tuple,
    one per module object; never a call (REDUCE)."""
    from yolo_attn.engines.yolov5.model import save_checkpoint

    ops = [(op.name, arg) for op, arg, _ in pickletools.genops(data_pkl(save_checkpoint(model, tmp_path / "m.pt")))]
    memo, uses = {}, []
    for i, (name, arg) in enumerate(ops):
        if name == "GLOBAL" and arg.startswith(("yolov5.", "yolo_attn.", "torch.nn.modules.")):
            cls, after = arg.replace(" ", "."), i + 1
            if ops[after][0] in ("BINPUT", "LONG_BINPUT"):
                memo[ops[after][1]], after = cls, after + 1
        elif name in ("BINGET", "LONG_BINGET") and arg in memo:
            cls, after = memo[arg], i + 1
        else:
            continue
        uses.append((cls, ops[after][0], ops[after + 1][0]))
    assert {"yolov5.models.yolo.DetectionModel", "yolo_attn.modules.hybrid.CBAM", "torch.nn.modules.conv.Conv2d"} <= \
        {cls for cls, _, _ in uses}
    assert all(use[1:] == ("EMPTY_TUPLE", "NEWOBJ") for use in uses), [u for u in uses if u[1:] != ("EMPTY_TUPLE",
                                                                                                      "NEWOBJ")]
    assert len(uses) == sum(1 for name, _ in ops if name == "NEWOBJ") == len(list(model.modules()))


def test_a_truncated_data_pkl_in_an_intact_archive(tmp_path, model):
    from yolo_attn.engines.yolov5.model import save_checkpoint

    good = save_checkpoint(model, tmp_path / "best.pt")
    cut = with_data_pkl(good, tmp_path / "cut.pt", lambda data: data[: len(data) // 2])
    with pytest.raises(UsageError, match=r"its data.pkl is not a complete pickle .*the file is truncated or damaged"):
        load_checkpoint(cut)
    assert load_checkpoint(with_data_pkl(good, tmp_path / "same.pt", lambda data: data))["model"] is not None


COMMANDS = """
    import sys
    sys.path.insert(0, {gadgets!r})
    import yolo_attn, checkpoint_gadgets
    from yolo_attn.engines import yolov5 as engine
    from yolo_attn.engines._patch import PatchSet
    from yolo_attn.engines.yolov5.patches import PATCHES
    checkpoint_gadgets.register()  # a user's plugin layers: allowed classes
    # without yolov5's metadata eval fixed: the loader alone must stop DetectMultiBackend from reaching it
    engine.uninstall()
    engine._patches = PatchSet([p for p in PATCHES if p.name != "no_metadata_eval"])
    engine.install()
    from yolo_attn.cli.pipeline import run_cli
    from yolo_attn.cli import detect, train, transfer, val
    for weights in sys.argv[1:]:
        for name, main, argv in [
                ("detect", detect.main, ["--weights", weights, "--source", "image.jpg"]),
                ("val", val.main, ["--weights", weights]),
                ("train", train.main, ["--weights", weights, "--cfg", "yolov5s.yaml", "--data", "ds/data.yaml",
                                       "--epochs", "1", "--imgsz", "64"]),
                ("train-no-cfg", train.main, ["--weights", weights, "--data", "ds/data.yaml", "--epochs", "1",
                                              "--imgsz", "64", "--workers", "0"]),
                ("transfer", transfer.main, ["--weights", weights, "--cfg", "yolov5s.yaml"])]:
            print(f"=== {{name}} {{weights}}", file=sys.stderr, flush=True)
            try:
                code = run_cli(main, argv)
            except BaseException as e:
                code = f"crashed ({{type(e).__name__}}: {{e}})"
            print(f"EXIT {{name}} {{weights}} {{code}}", flush=True)
"""


@pytest.mark.slow
def test_every_command_refuses_the_gadgets_with_exit_2(tmp_path, model):
    import cv2
    import numpy as np

    from yolo_attn.datasets import shapes

    marker = tmp_path / "PWNED"
    files = gadgets(tmp_path, marker, model)
    shapes.generate(tmp_path / "ds", train=4, val=2, size=64, seed=3)
    cv2.imwrite(str(tmp_path / "image.jpg"), np.zeros((64, 64, 3), np.uint8))
    chosen = ["detect_multi_backend.pt", "allowed_class_call.pt", "rebuild_from_type.pt"]
    code = textwrap.dedent(COMMANDS.format(gadgets=str(Path(__file__).parent)))
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-c", code, *(str(files[n]) for n in chosen)], cwd=tmp_path,
                       capture_output=True, text=True, timeout=600, env=env)
    out = r.stdout + r.stderr
    assert not marker.exists(), out[-4000:]
    exits = [line.split() for line in r.stdout.splitlines() if line.startswith("EXIT ")]
    assert len(exits) == 5 * len(chosen), out[-4000:]
    assert all(e[-1] == "2" for e in exits), exits
    for section in r.stderr.split("=== ")[1:]:
        name, weights = section.split()[:2]
        assert "Traceback" not in section and f"refusing to load {weights}" in section, section[-2000:]
        assert REFUSALS[Path(weights).name] in section, section[-2000:]
    assert not (tmp_path / "runs" / "train").exists() or not any((tmp_path / "runs" / "train").iterdir())
