"""Checkpoints: one loader that says which file it reads, restricted to model classes, clear refusals; loading in
fresh processes (only yolo_attn imported; yolov5's own detect/val; without the plugin); no network for local files."""
import copy
import hashlib
import json
import logging
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import yolo_attn
from yolo_attn import checkpoints
from yolo_attn.checkpoints import load_checkpoint
from yolo_attn.engines.yolov5.model import save_checkpoint
from yolo_attn.errors import UsageError

REPO = Path(__file__).resolve().parents[2]


def run_python(code, cwd, env=None, timeout=300):
    """A fresh interpreter outside the repository, one thread (so its floats match this process)."""
    base = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=dict(base, OMP_NUM_THREADS="1", **(env or {})))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A small yolov5s-cbam (CBAM, PooledBatchNorm2d: yolo-attn classes in the pickle) saved two ways: as training's
    final best.pt (FP16, optimizer stripped) and as a mid-training last.pt (optimizer state, EMA, numpy fitness)."""
    from yolov5.models.yolo import Model

    from yolo_attn.engines.yolov5.model import quiet

    with quiet():
        d = yaml.safe_load((REPO / "model_yamls" / "yolov5s-cbam.yaml").read_text())
        d["depth_multiple"], d["width_multiple"] = 0.33, 0.25
        torch.manual_seed(0)
        model = Model(d, nc=4)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.05)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) * 0.2 + 0.9)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-5, momentum=0.9)
    model.train()
    model(torch.rand(2, 3, 64, 64))[0].sum().backward()
    optimizer.step()  # one step: the optimizer has state to save
    model.eval()
    folder = tmp_path_factory.mktemp("ckpt")
    best = save_checkpoint(model, folder / "final" / "best.pt", opt={"imgsz": 64})
    last = folder / "run" / "weights" / "last.pt"
    last.parent.mkdir(parents=True)
    torch.save({"epoch": 0, "best_fitness": np.array([0.25]), "model": copy.deepcopy(model).half(),
                "ema": copy.deepcopy(model).half(), "updates": 3, "optimizer": optimizer.state_dict(),
                "opt": {"imgsz": 64, "epochs": 3, "cfg": "yolov5s-cbam.yaml"}, "date": "2024-01-02T03:04:05",
                "yolov5pip_version": "7.0.14"}, last)  # as yolov5's train.py writes last.pt each epoch
    reference = copy.deepcopy(model).half().float().eval()  # what the files hold
    return {"best": best, "last": last, "reference": reference, "optimizer": optimizer.state_dict(),
            "folder": folder}


@pytest.fixture
def log_lines():
    """Lines yolov5's logger (the one the loader reports through) emits during the test."""
    lines = []

    class Collect(logging.Handler):
        def emit(self, record):
            lines.append(record.getMessage())

    logger = logging.getLogger("yolov5")
    handler, level = Collect(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield lines
    logger.removeHandler(handler)
    logger.setLevel(level)


def forward(model, seed=0, size=64):
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return model.float().eval()(x)[0]


# ------------------------------------------------------------------------------------------------------------------
# the loader


def test_load_checkpoint_restores_everything_and_says_which_file(tiny, log_lines):
    ckpt = load_checkpoint(tiny["last"])
    assert ckpt["epoch"] == 0 and ckpt["updates"] == 3 and ckpt["best_fitness"].tolist() == [0.25]
    torch.testing.assert_close(forward(ckpt["model"]), forward(tiny["reference"]), rtol=0, atol=0)
    torch.testing.assert_close(forward(ckpt["ema"]), forward(tiny["reference"]), rtol=0, atol=0)
    saved = tiny["optimizer"]["state"]
    assert len(saved) > 0 and all(torch.equal(ckpt["optimizer"]["state"][k]["momentum_buffer"],
                                              saved[k]["momentum_buffer"]) for k in saved)
    sha = hashlib.sha256(tiny["last"].read_bytes()).hexdigest()[:12]
    assert f"yolo-attn: loading checkpoint {tiny['last'].resolve()} (" in log_lines[0]
    assert f"sha256 {sha}" in log_lines[0]
    assert log_lines[1] == ("yolo-attn: last.pt: saved 2024-01-02T03:04:05; yolov5 7.0.14; epoch 0; "
                            "model yolov5s-cbam.yaml")


def test_yolov5s_own_loads_go_through_it(tiny, log_lines, quiet_yolov5):
    from yolov5.models.experimental import attempt_load

    log_lines.clear()
    quiet_yolov5.setLevel(logging.INFO)
    model = attempt_load(str(tiny["best"]), device="cpu", fuse=False)
    torch.testing.assert_close(forward(model), forward(tiny["reference"]), rtol=0, atol=0)
    assert any(line.startswith(f"yolo-attn: loading checkpoint {tiny['best'].resolve()} (") for line in log_lines)
    with pytest.raises(UsageError, match="holds a bare state_dict"):  # not yolov5's KeyError: 'model'
        torch.save(tiny["reference"].state_dict(), tiny["folder"] / "weights_only.pt")
        attempt_load(str(tiny["folder"] / "weights_only.pt"), device="cpu")


class _Payload:
    """A pickle that runs a shell command when loaded: what a malicious .pt file does."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _bad_files(tmp_path, tiny):
    files = {}
    (tmp_path / "text.pt").write_text("these are not the weights you are looking for")
    files["text.pt"] = "it is not a PyTorch checkpoint (a torch.save archive) at all"
    with open(tmp_path / "plain.pkl", "wb") as f:
        pickle.dump({"model": 1}, f)
    files["plain.pkl"] = "it is a plain pickle or a pre-1.6 torch.save file"
    torch.save({"w": torch.zeros(2)}, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    files["legacy.pt"] = "it is a plain pickle or a pre-1.6 torch.save file"
    torch.save(tiny["reference"].state_dict(), tmp_path / "state_dict.pt")
    files["state_dict.pt"] = "it holds a bare state_dict (tensors only, no model)"
    torch.save({"model": None, "epoch": 3}, tmp_path / "no_model.pt")
    files["no_model.pt"] = "not a dict with 'model' or 'ema'"
    torch.save([1, 2, 3], tmp_path / "list.pt")
    files["list.pt"] = "it holds a list"
    torch.jit.save(torch.jit.script(torch.nn.ReLU()), str(tmp_path / "scripted.pt"))
    files["scripted.pt"] = "it is a TorchScript model"
    (tmp_path / "truncated.pt").write_bytes(tiny["best"].read_bytes()[:50_000])
    files["truncated.pt"] = "the file may be truncated"
    torch.save({"model": _Payload(tmp_path / "PWNED")}, tmp_path / "payload.pt")
    files["payload.pt"] = f"refusing to load {tmp_path / 'payload.pt'}: its pickle names posix.system"
    return files


def test_refuses_what_is_not_a_checkpoint_clearly_and_runs_nothing(tmp_path, tiny):
    for name, message in _bad_files(tmp_path, tiny).items():
        with pytest.raises(UsageError) as e:
            load_checkpoint(tmp_path / name)
        assert message in str(e.value), (name, str(e.value))
    assert not (tmp_path / "PWNED").exists()  # the payload's command never ran
    with pytest.raises(UsageError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(UsageError, match="is not a file"):
        load_checkpoint(tmp_path)


def test_the_refusal_names_the_class_and_what_to_import_and_trust_lifts_it(tmp_path, monkeypatch):
    (tmp_path / "my_layers.py").write_text(
        "import torch\nclass Gate(torch.nn.Module):\n    def __init__(self, c):\n        super().__init__()\n"
        "        self.w = torch.nn.Parameter(torch.full((c,), 2.0))\n"
        "    def forward(self, x):\n        return x * self.w.view(1, -1, 1, 1)\n")
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])  # (syspath_prepend trips over the pkg_resources shim)
    monkeypatch.delitem(sys.modules, "my_layers", raising=False)
    import my_layers

    monkeypatch.setitem(sys.modules, "my_layers", my_layers)  # removed again afterwards
    from yolo_attn.engines.yolov5.model import build_model
    from yolo_attn.model_yaml.edit import insert_after
    from yolo_attn.registry import layers

    spec = yolo_attn.LayerSpec("GateTest", my_layers.Gate, 1, "test", "test")
    monkeypatch.setitem(layers._REGISTRY, "gatetest", spec)  # the registry is restored afterwards
    d = yaml.safe_load((REPO / "model_yamls" / "yolov5s.yaml").read_text())
    d["depth_multiple"], d["width_multiple"] = 0.33, 0.125
    model = build_model(insert_after(d, [0], "GateTest"), nc=2)  # a user's layer inside a yolov5 model, by its YAML
    assert type(model.model[1]) is my_layers.Gate
    torch.save({"model": model, "epoch": -1}, tmp_path / "custom.pt")
    assert type(load_checkpoint(tmp_path / "custom.pt")["model"].model[1]) is my_layers.Gate  # registered: allowed
    monkeypatch.delitem(layers._REGISTRY, "gatetest")
    with pytest.raises(UsageError) as e:
        load_checkpoint(tmp_path / "custom.pt")
    msg = str(e.value)
    assert "its pickle names my_layers.Gate, which is not a yolov5/yolo-attn/torch.nn model class" in msg
    assert "run `import my_layers` and register its layers with yolo_attn.register(...)" in msg
    assert f"set {checkpoints.TRUST_ENV}=1" in msg
    monkeypatch.setenv(checkpoints.TRUST_ENV, "1")  # the user's explicit trust
    assert type(load_checkpoint(tmp_path / "custom.pt")["model"].model[1]) is my_layers.Gate


def test_plain_torch_load_of_a_checkpoint_is_refused_by_torch_itself(tiny):
    with pytest.raises(pickle.UnpicklingError) as e:
        torch.load(tiny["best"])  # torch.load is torch's own: its safe default holds outside yolov5
    assert "weights_only" in str(e.value)


# ------------------------------------------------------------------------------------------------------------------
# fresh processes


def _expected_detections(weights, image, conf=0.001):
    """What yolov5's detect.py should write for a 64x64 image at --imgsz 64: the model's own boxes after NMS, as
    normalised (class, x, y, w, h, conf) rows (letterboxing a 64x64 image to 64 changes nothing)."""
    import cv2
    from yolov5.models.experimental import attempt_load
    from yolov5.utils.general import non_max_suppression, scale_boxes, xyxy2xywh

    model = attempt_load(str(weights), device="cpu", fuse=True)
    im = cv2.imread(str(image))[:, :, ::-1].transpose(2, 0, 1).copy()
    x = torch.from_numpy(im).float()[None] / 255
    with torch.no_grad():
        det = non_max_suppression(model(x)[0], conf, 0.45, max_det=1000)[0]
    xyxy = scale_boxes((64, 64), det[:, :4].clone(), (64, 64)).round()  # clipped to the image, whole pixels
    xywh = xyxy2xywh(xyxy) / 64
    return torch.cat([det[:, 5:6], xywh, det[:, 4:5]], 1)


def _read_labels(path):
    return torch.tensor([[float(v) for v in line.split()] for line in path.read_text().splitlines()])


@pytest.mark.slow
def test_a_fresh_process_that_imports_yolo_attn_loads_it_and_yolov5s_detect_and_val_run_it(tiny, tmp_path,
                                                                                         quiet_yolov5):
    from yolo_attn.datasets import shapes

    data = shapes.generate(tmp_path / "ds", train=4, val=4, size=64, seed=3)
    image = sorted((tmp_path / "ds" / "images" / "val").glob("*.jpg"))[0]
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    torch.save(x, tmp_path / "x.pt")
    code = f"""
        import json, torch
        import yolo_attn
        from yolo_attn.checkpoints import load_checkpoint
        from yolov5 import detect, val
        x = torch.load("x.pt")  # a plain tensor: torch's safe default reads it
        model = load_checkpoint({str(tiny['best'])!r})["model"].float().eval()
        with torch.no_grad():
            torch.save(model(x)[0], "out.pt")
        detect.run(weights={str(tiny['best'])!r}, source={str(image)!r}, imgsz=(64, 64), conf_thres=0.001,
                   save_txt=True, save_conf=True, nosave=True, project="det", name="exp", device="cpu")
        results, _, _ = val.run(data={str(data)!r}, weights={str(tiny['best'])!r}, imgsz=64, batch_size=4, workers=0,
                                project="val", name="exp", plots=False, device="cpu")[:3]
        print("VAL", json.dumps([float(v) for v in results]))
    """
    r = run_python(code, tmp_path)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    torch.testing.assert_close(torch.load(tmp_path / "out.pt"), forward(tiny["reference"]), rtol=1e-5, atol=1e-5)
    got = _read_labels(tmp_path / "det" / "exp" / "labels" / f"{image.stem}.txt")
    expected = _expected_detections(tiny["best"], image)
    assert got.shape == expected.shape and len(got) > 0
    order = lambda t: torch.tensor(sorted(t.tolist(), key=lambda r: (-round(r[5], 4), *r[:5])))  # noqa: E731
    torch.testing.assert_close(order(got), order(expected), rtol=0, atol=1e-4)  # detect.py writes 6 digits
    metrics = json.loads(next(line for line in r.stdout.splitlines() if line.startswith("VAL "))[4:])
    assert len(metrics) == 7 and all(np.isfinite(metrics))
    n_labels = sum(len(p.read_text().splitlines()) for p in (tmp_path / "ds" / "labels" / "val").glob("*.txt"))
    assert any(line.split()[:3] == ["all", "4", str(n_labels)] for line in out.splitlines())  # val saw the dataset


@pytest.mark.slow
def test_without_the_plugin_imported(tiny, tmp_path):
    """yolov5 alone, in a fresh process. Its import needs pkg_resources (gone from setuptools >= 81): a stand-in plays
    an older setuptools. On torch >= 2.6 it then reads no checkpoint at all (torch's weights_only refusal names the
    first class, yolov5's own DetectionModel); with the old permissive default, unpickling a yolo-attn layer imports
    yolo_attn by itself (it is installed) and the model works."""
    code = f"""
        import os, pickle, sys, types
        try:
            import pkg_resources
        except ImportError:
            from packaging.version import parse
            sys.modules["pkg_resources"] = types.ModuleType("pkg_resources")
            sys.modules["pkg_resources"].parse_version = parse
        from yolov5.models.experimental import attempt_load
        print("BEFORE", "yolo_attn" in sys.modules)
        try:
            attempt_load({str(tiny['best'])!r}, device="cpu")
        except pickle.UnpicklingError as e:
            print("REFUSED", "weights_only" in str(e), "yolov5.models.yolo.DetectionModel" in str(e))
        os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"  # torch < 2.6 behaviour
        model = attempt_load({str(tiny['best'])!r}, device="cpu", fuse=False)
        print("LOADED", "yolo_attn" in sys.modules, sorted({{type(m).__module__ for m in model.model}}))
    """
    r = run_python(code, tmp_path)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    lines = r.stdout.splitlines()
    assert "BEFORE False" in lines and "REFUSED True True" in lines
    loaded = next(line for line in lines if line.startswith("LOADED"))
    assert loaded.startswith("LOADED True") and "yolo_attn.modules.hybrid" in loaded


# ------------------------------------------------------------------------------------------------------------------
# no network for files on disk


def test_local_weights_never_ask_the_hub(tiny, tmp_path, monkeypatch):
    import huggingface_hub
    import yolov5.models.experimental as experimental
    import yolov5.utils.downloads as downloads

    asked = []

    def refuse(*args, **kwargs):
        asked.append(args or kwargs)
        raise ConnectionError("test: no network")

    monkeypatch.setattr(huggingface_hub, "list_repo_files", refuse)
    monkeypatch.setattr(downloads.requests, "get", refuse)
    monkeypatch.chdir(tiny["best"].parent)
    with pytest.raises(ConnectionError):  # yolov5's own: a relative local path is taken for a hub repo id
        downloads.attempt_download_from_hub.__wrapped__("best.pt")
    assert len(asked) == 1
    asked.clear()
    import yolov5.models.common as common

    assert common.attempt_download_from_hub is downloads.attempt_download_from_hub  # detect's loader sees the patch
    assert downloads.attempt_download_from_hub("best.pt") is None
    assert experimental.attempt_download("best.pt") == "best.pt"
    model = experimental.attempt_load("best.pt", device="cpu", fuse=False)
    torch.testing.assert_close(forward(model), forward(tiny["reference"]), rtol=0, atol=0)
    assert asked == []

