"""Each patch of the yolov5 engine adapter: the original yolov5 7.0.14 symptom on today's stack, the fix, and that it
stays scoped to yolov5 (torch, numpy, Pillow and warnings unchanged for everyone else) and undoes exactly."""
import copy
import json
import importlib.machinery
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from packaging.version import Version
from PIL import Image, ImageFont
import PIL

import yolo_attn  # noqa: F401  (installs the engine adapter before yolov5 is imported)
from yolo_attn.engines import yolov5 as engine
from yolo_attn.engines.yolov5 import patches as yolov5_patches

import yolov5
import yolov5.utils.general as general
import yolov5.utils.metrics as metrics
import yolov5.utils.plots as plots
from yolov5.models import yolo

YOLOV5_DIR = Path(yolov5.__file__).parent
REPO = Path(__file__).resolve().parents[3]


def run_python(code, tmp_path):
    """A fresh interpreter (outside the repo folder), so nothing this process patched is inherited."""
    return subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})


def original(module, name):
    """yolov5's own object that the engine adapter replaced (read while it is uninstalled)."""
    engine.uninstall()
    try:
        return getattr(module, name)
    finally:
        engine.install()


# ---------------------------------------------------------------------------------------------------------------
# (a) pkg_resources (removed in setuptools 81)


REAL_PKG_RESOURCES = importlib.machinery.PathFinder.find_spec("pkg_resources") is not None  # ignores sys.modules


@pytest.mark.skipif(REAL_PKG_RESOURCES, reason="the real pkg_resources is installed: nothing to reproduce")
@pytest.mark.slow
def test_pkg_resources(tmp_path):
    plain = run_python("import yolov5.utils.general", tmp_path)
    assert plain.returncode != 0
    assert "No module named 'pkg_resources'" in plain.stderr

    fixed = run_python("import yolo_attn, sys, yolov5.utils.general as g\n"
                       "assert sys.modules['pkg_resources'].__doc__.startswith('yolo-attn shim')\n"
                       "print(g.check_version('2.10.0', '2.9.1'), g.check_version('1.0', '2.0'))\n"
                       "from yolov5.models import yolo\n"
                       "from yolo_attn.engines.yolov5 import parser\n"
                       "print(yolo.parse_model is parser.parse_model)", tmp_path)
    assert fixed.returncode == 0, fixed.stderr
    assert fixed.stdout.split() == ["True", "False", "True"]  # and a fresh process builds through the safe parser


def test_pkg_resources_shim_offers_parse_version_and_is_only_installed_when_missing():
    shim = sys.modules["pkg_resources"]
    assert shim.parse_version("1.10") > shim.parse_version("1.9")
    assert shim.parse_version("2.0.0rc1") < shim.parse_version("2.0.0")
    assert general.check_version("2.10.0", "2.9.1") and not general.check_version("1.0", "2.0")
    # a module already there is left alone
    assert yolov5_patches._pkg_resources_shim(yolov5) == []
    assert sys.modules["pkg_resources"] is shim


# ---------------------------------------------------------------------------------------------------------------
# (b) np.trapz (removed in numpy 2.4)


@pytest.mark.skipif(hasattr(np, "trapz"), reason="this numpy still has trapz: nothing to reproduce")
def test_numpy_trapz():
    with pytest.raises(AttributeError):
        np.trapz  # noqa: B018  (the symptom: yolov5's compute_ap calls it; numpy itself is not changed)
    assert metrics.np.trapz is np.trapezoid
    assert metrics.np.linspace is np.linspace  # every other numpy name is numpy's own


def test_compute_ap_matches_a_hand_computed_area():
    # precision envelope: 1 up to recall .25, linear to .5 at recall .5, linear to 0 at recall 1 (the sentinel);
    # area = .25 * 1 + .25 * (1 + .5) / 2 + .5 * .5 / 2 = 0.5625 (exact for the 101-point grid)
    ap, mpre, mrec = metrics.compute_ap(np.array([0.25, 0.5]), np.array([1.0, 0.5]))
    assert ap == pytest.approx(0.5625, abs=1e-12)
    assert mrec.tolist() == [0.0, 0.25, 0.5, 1.0] and mpre.tolist() == [1.0, 1.0, 0.5, 0.0]


def _expected_ap(recall, precision):
    """COCO 101-point AP written out: sentinels, precision envelope, manual trapezoid rule."""
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.concatenate(([1.0], precision, [0.0]))
    envelope = np.array([mpre[k:].max() for k in range(len(mpre))])
    x = np.linspace(0, 1, 101)
    y = np.interp(x, mrec, envelope)
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2))


def test_compute_ap_matches_a_manual_trapezoid_on_a_random_curve():
    rng = np.random.default_rng(0)
    recall = np.sort(rng.uniform(0, 1, 50))
    precision = rng.uniform(0, 1, 50)
    ap, _, _ = metrics.compute_ap(recall, precision)
    assert ap == pytest.approx(_expected_ap(recall, precision), rel=1e-12)
    assert 0 < ap < 1


def test_ap_per_class_runs_end_to_end():
    tp = np.array([[1], [1], [0], [1]], dtype=bool)  # 4 detections of one class, sorted by confidence
    conf = np.array([0.9, 0.8, 0.7, 0.6])
    out = metrics.ap_per_class(tp, conf, np.zeros(4), np.zeros(4), names={0: "a"})
    ap = out[5]
    # 4 labels: recall .25, .5, .5, .75; precision 1, 1, 2/3, 3/4
    expected = _expected_ap(np.array([0.25, 0.5, 0.5, 0.75]), np.array([1, 1, 2 / 3, 0.75]))
    assert ap.shape == (1, 1) and ap[0, 0] == pytest.approx(expected, rel=1e-9)


# ---------------------------------------------------------------------------------------------------------------
# (c) Pillow FreeTypeFont.getsize (removed in Pillow 10)


@pytest.mark.skipif(Version(PIL.__version__) < Version("10"), reason="Pillow < 10 still has getsize")
def test_pillow_getsize(tmp_path):
    plain = run_python("from PIL import ImageFont; print(hasattr(ImageFont.FreeTypeFont, 'getsize'))", tmp_path)
    assert plain.stdout.strip() == "False", plain.stderr
    assert not hasattr(ImageFont.FreeTypeFont, "getsize")  # Pillow's classes are untouched in this process too
    font = plots.check_pil_font("Arial.ttf", size=12)  # yolov5's fonts get it back
    assert isinstance(font, ImageFont.FreeTypeFont) and font.getsize("ab")[0] > 0


def test_getsize_is_the_text_extent():
    font = yolov5_patches._font_with_getsize(ImageFont.truetype(str(yolov5_patches.fallback_font_path()), 20))
    w, h = font.getsize("Hello")
    left, top, right, bottom = font.getbbox("Hello")
    assert (w, h) == (right, bottom) and w > 30 and h > 10
    assert font.getsize("Hello world")[0] > w


def test_annotator_draws_a_labelled_box_with_pil():
    im = np.zeros((96, 128, 3), dtype=np.uint8)
    annotator = plots.Annotator(im.copy(), line_width=2, pil=True)
    assert isinstance(annotator.font, ImageFont.FreeTypeFont)
    annotator.box_label((20, 40, 90, 80), "cat 0.91", color=(255, 0, 0), txt_color=(255, 255, 255))
    out = np.asarray(annotator.result())
    assert out.shape == im.shape
    red = (out[..., 0] == 255) & (out[..., 1] == 0) & (out[..., 2] == 0)
    assert red[40, 20:90].all() and red[40:80, 20].all()  # the box outline
    w, h = annotator.font.getsize("cat 0.91")
    label = red[40 - h:40, 20:20 + w]
    assert label.mean() > 0.3  # the filled label background above the box
    white = (out[40 - h:40, 20:20 + w + 1] > 200).all(-1)
    assert white.any()  # the text
    assert not red[85:, :].any() and not red[:, 100:].any()  # nothing outside


# ---------------------------------------------------------------------------------------------------------------
# (d) fonts: yolov5 downloads Arial.ttf from the internet; yolo-attn uses a local font


@pytest.fixture
def no_downloads(monkeypatch):
    calls = []

    def refuse(url, *args, **kwargs):
        calls.append(url)
        raise ConnectionError(f"test: no network ({url})")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    return calls


def test_yolov5s_own_check_font_would_download(no_downloads, tmp_path, monkeypatch):
    check_font = original(general, "check_font")
    monkeypatch.setattr(general, "CONFIG_DIR", tmp_path)
    with pytest.raises(ConnectionError):
        check_font("Arial.ttf")
    assert no_downloads == ["https://ultralytics.com/assets/Arial.ttf"]


def test_fonts_offline(no_downloads, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert general.check_font is yolov5_patches.check_font_offline
    path = general.check_font("Arial.ttf", progress=True)
    assert Path(path).is_file()
    font = plots.check_pil_font("Arial.Unicode.ttf", size=14)
    assert isinstance(font, ImageFont.FreeTypeFont) and font.size == 14
    assert no_downloads == []


def test_check_dataset_on_a_local_dataset_needs_no_network(no_downloads, tmp_path):
    for split in ("train", "val"):
        (tmp_path / "images" / split).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(tmp_path / "images" / split / "a.jpg")
    data = tmp_path / "tiny.yaml"
    data.write_text(yaml.safe_dump({"path": str(tmp_path), "train": "images/train", "val": "images/val",
                                    "names": {0: "a", 1: "b"}}))
    out = general.check_dataset(str(data))
    assert out["nc"] == 2 and out["names"] == {0: "a", 1: "b"}
    assert out["val"] == str(tmp_path / "images" / "val")
    assert no_downloads == []


# ---------------------------------------------------------------------------------------------------------------
# (e) torch.load: weights_only=True by default since torch 2.6; yolov5 checkpoints are pickled modules


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from yolo_attn.engines.yolov5.model import quiet

    with quiet():
        d = yaml.safe_load((REPO / "model_yamls" / "yolov5s-cbam.yaml").read_text())
        d["depth_multiple"], d["width_multiple"] = 0.33, 0.25
        torch.manual_seed(0)
        model = yolo.Model(d).eval()
    path = tmp_path_factory.mktemp("ckpt") / "last.pt"
    torch.save({"epoch": -1, "model": copy.deepcopy(model), "optimizer": None}, path)  # as yolov5's train.py does
    return model, path


def test_plain_torch_load_refuses_a_yolov5_checkpoint(checkpoint):
    _, path = checkpoint
    assert Version(torch.__version__.split("+")[0]) >= Version("2.6")
    with pytest.raises(pickle.UnpicklingError, match="weights_only"):
        torch.load(path)  # called from outside yolov5: torch's safe default is kept


def test_yolov5_attempt_load_reads_the_checkpoint(checkpoint, quiet_yolov5):
    from yolov5.models.experimental import attempt_load

    model, path = checkpoint
    loaded = attempt_load(str(path), device="cpu", fuse=True)
    assert type(loaded) is yolo.DetectionModel and not loaded.training
    assert sum(type(m).__name__ == "CBAM" for m in loaded.model) == 3
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        expected, got = model(x)[0], loaded(x)[0]
    torch.testing.assert_close(got, expected, rtol=1e-3, atol=1e-3)  # Conv+BN fused: float rounding only


def test_restricted_checkpoint_load(checkpoint, tmp_path):
    """yolov5's own modules read checkpoints through yolo_attn.checkpoints; torch.load itself is not changed."""
    import yolov5.models.experimental as experimental
    import yolov5.train as train

    from yolo_attn.checkpoints import load_checkpoint

    _, path = checkpoint
    assert torch.load is torch.serialization.load  # (torch.save: ultralytics, imported by yolov5, wraps it globally)
    for module in (experimental, general, train):
        assert module.torch is not torch and module.torch.load.__name__ == "_load_checkpoint"
        assert module.torch.nn is torch.nn and module.torch.Tensor is torch.Tensor  # everything else is torch's
    assert set(experimental.torch.load(path, map_location="cpu")) == set(load_checkpoint(path))
    # an explicit choice is always respected by torch itself
    assert "model" in torch.load(path, weights_only=False)
    torch.save({"w": torch.arange(3)}, tmp_path / "plain.pt")
    assert torch.equal(torch.load(tmp_path / "plain.pt")["w"], torch.arange(3))


def test_atomic_checkpoint_save(tmp_path):
    """A save that fails half-way leaves the previous file as it was and no partial file beside it."""
    import yolov5.train as train

    target = tmp_path / "last.pt"
    train.torch.save({"epoch": 1}, target)
    before = target.read_bytes()

    class Unpicklable:  # (a full disk gets its own message: test_disk_full.py)
        def __reduce__(self):
            raise OSError(5, "Input/output error")

    with pytest.raises(OSError, match="Input/output error"):
        train.torch.save({"epoch": 2, "bad": Unpicklable()}, target)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


# ---------------------------------------------------------------------------------------------------------------
# (f) torchvision: its compiled ops must match the installed torch ("operator torchvision::nms does not exist")


def test_torchvision_nms_runs():
    import torchvision

    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 10.5]], dtype=torch.float32)
    scores = torch.tensor([0.9, 0.8, 0.7, 0.95])
    keep = torchvision.ops.nms(boxes, scores, iou_threshold=0.5)
    assert keep.tolist() == [3, 2]


def test_yolov5_non_max_suppression_runs():
    pred = torch.zeros(1, 3, 85)
    pred[0, :, :4] = torch.tensor([[50, 50, 20, 20], [51, 51, 20, 20], [150, 150, 30, 30]])  # xywh
    pred[0, :, 4] = torch.tensor([0.9, 0.8, 0.7])  # objectness
    pred[0, 0, 5 + 2] = pred[0, 1, 5 + 2] = 1.0  # class 2
    pred[0, 2, 5 + 7] = 1.0  # class 7
    out = general.non_max_suppression(pred, conf_thres=0.25, iou_thres=0.45)
    assert len(out) == 1
    det = out[0]
    assert det.shape == (2, 6)
    torch.testing.assert_close(det[:, :4], torch.tensor([[40.0, 40, 60, 60], [135, 135, 165, 165]]))
    assert det[:, 5].tolist() == [2.0, 7.0]
    torch.testing.assert_close(det[:, 4], torch.tensor([0.9, 0.7]))


# ---------------------------------------------------------------------------------------------------------------
# (g) PIL.Image.open: ultralytics (a yolov5 dependency) wraps it to pip-install pi-heif on unidentifiable files


def test_ultralytics_image_open_would_try_to_install_a_package(monkeypatch, tmp_path):
    patches = pytest.importorskip("ultralytics.utils.patches")
    import ultralytics.utils.checks as ultralytics_checks

    noise = tmp_path / "noise.jpg"
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 2048, dtype=np.uint8).tobytes())
    installs = []

    def record(requirements, *args, **kwargs):
        installs.append(requirements)
        raise RuntimeError("test: no installs")

    monkeypatch.setattr(ultralytics_checks, "check_requirements", record)
    with pytest.raises(RuntimeError, match="no installs"):
        patches.image_open(noise)  # the symptom: a corrupt image triggers a package install
    assert installs == ["pi-heif"]


def test_pil_open(monkeypatch, tmp_path):
    patches = pytest.importorskip("ultralytics.utils.patches")
    import ultralytics.utils.checks as ultralytics_checks

    assert Image.open is patches._image_open
    installs = []
    monkeypatch.setattr(ultralytics_checks, "check_requirements", lambda *a, **k: installs.append(a))
    noise = tmp_path / "noise.jpg"
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 2048, dtype=np.uint8).tobytes())
    with pytest.raises(PIL.UnidentifiedImageError, match="cannot identify image file"):
        Image.open(noise)
    assert installs == []
    good = tmp_path / "good.png"
    Image.new("RGB", (12, 10), (1, 2, 3)).save(good)
    with Image.open(good) as im:
        assert im.size == (12, 10) and im.getpixel((0, 0)) == (1, 2, 3)


# ---------------------------------------------------------------------------------------------------------------
# (h) the rest of the list: offline weights, the amp warning, --noval, metadata eval


def test_local_weights_offline(tmp_path, monkeypatch):
    """A weights file on disk is used as it is: no Hugging Face Hub or GitHub lookup (offline they crash)."""
    import yolov5.utils.downloads as downloads
    from yolov5.models import common, experimental

    asked = []
    monkeypatch.setattr(downloads, "hf_hub_download", lambda *a, **k: asked.append(a), raising=False)
    local = tmp_path / "best.pt"
    local.write_bytes(b"x")
    for module in (downloads, common):
        assert module.attempt_download_from_hub(str(local)) is None
    assert experimental.attempt_download(f" {local} ") == str(local)
    assert asked == []
    assert original(downloads, "attempt_download").__module__ == "yolov5.utils.downloads"


def test_missing_weights_offline_is_a_message_not_a_network_attempt(tmp_path, monkeypatch):
    """A weights name that is not on disk, offline: yolov5 would ask Hugging Face, then GitHub, and end in a
    ConnectionError traceback (``yolo-attn yolov5 val --weights missing.pt``); we say what to give instead."""
    import yolov5.utils.downloads as downloads
    from yolov5.models import experimental

    from yolo_attn import paths
    from yolo_attn.errors import UsageError

    tried = []
    monkeypatch.setattr(paths, "online", lambda: False)
    monkeypatch.chdir(tmp_path)
    for call in (downloads.attempt_download_from_hub, experimental.attempt_download):
        with pytest.raises(UsageError, match="missing.pt.*offline.*path of a checkpoint"):
            call("missing.pt")
            tried.append(call)
    assert tried == []


def test_cuda_amp():
    """yolov5's training calls the deprecated torch.cuda.amp API every batch; it now gets the torch.amp calls."""
    import warnings

    import yolov5.train as train

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with train.torch.cuda.amp.autocast(False):
            pass
        scaler = train.torch.cuda.amp.GradScaler(enabled=False)
        torch.cuda.amp.GradScaler(enabled=False)  # torch itself is unchanged: still deprecated there
    assert isinstance(scaler, torch.amp.GradScaler) and not scaler.is_enabled()
    assert [w.category for w in seen] == [FutureWarning] and "torch.cuda.amp" in str(seen[0].message)
    assert train.torch.cuda.is_available is torch.cuda.is_available


def test_no_metadata_eval(tmp_path):
    """An ONNX model whose metadata 'names' is code: yolov5's DetectMultiBackend would eval it."""
    import onnx
    from onnx import TensorProto, helper
    from yolov5.models.common import DetectMultiBackend

    marker = tmp_path / "pwned"
    graph = helper.make_graph([helper.make_node("Identity", ["images"], ["output0"])], "g",
                              [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 32, 32])],
                              [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 3, 32, 32])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    payload = f"__import__('pathlib').Path({str(marker)!r}).touch() or {{0: 'a'}}"
    helper.set_model_props(model, {"stride": "32", "names": payload})
    onnx.save(model, tmp_path / "evil.onnx")
    with pytest.raises(ValueError, match="refusing to evaluate model metadata"):
        DetectMultiBackend(str(tmp_path / "evil.onnx"), device=torch.device("cpu"))
    assert not marker.exists()
    helper.set_model_props(model, {"stride": "32", "names": "{0: 'cat', 1: 'dog'}"})
    onnx.save(model, tmp_path / "good.onnx")
    assert DetectMultiBackend(str(tmp_path / "good.onnx"), device=torch.device("cpu")).names == {0: "cat", 1: "dog"}


@pytest.mark.slow
def test_noval(tmp_path, quiet_yolov5):
    """yolov5.train.run(noval=True) after `import yolo_attn`: yolov5 7.0.14 alone crashes after the first epoch."""
    import cv2
    import yolov5.train as train

    for split in ("train", "val"):
        for k in range(4):
            (tmp_path / "images" / split).mkdir(parents=True, exist_ok=True)
            (tmp_path / "labels" / split).mkdir(parents=True, exist_ok=True)
            img = np.full((64, 64, 3), 90, np.uint8)
            cv2.rectangle(img, (10 + k, 12), (40, 44), (0, 0, 230), -1)
            cv2.imwrite(str(tmp_path / "images" / split / f"{k}.jpg"), img)
            (tmp_path / "labels" / split / f"{k}.txt").write_text("0 0.4 0.44 0.47 0.5\n")
    data = tmp_path / "d.yaml"
    data.write_text(yaml.safe_dump({"path": str(tmp_path), "train": "images/train", "val": "images/val",
                                    "names": {0: "box"}}))
    cfg = yaml.safe_load((REPO / "model_yamls" / "yolov5s-se.yaml").read_text())
    cfg["depth_multiple"], cfg["width_multiple"] = 0.33, 0.125
    (tmp_path / "m.yaml").write_text(yaml.safe_dump(cfg))
    opt = train.run(data=str(data), cfg=str(tmp_path / "m.yaml"), weights="", imgsz=64, epochs=2, batch_size=4,
                    workers=0, noval=True, device="cpu", project=str(tmp_path / "runs"), name="n", plots=False)
    run = Path(opt.save_dir)
    assert (run / "weights" / "best.pt").is_file()
    assert yaml.safe_load((run / "opt.yaml").read_text())["yolo_attn_noval"] is True
    assert train.validate is original(train, "validate")  # the stand-in is gone after the run


# ---------------------------------------------------------------------------------------------------------------
# The list itself, the scope promise and uninstall


def test_every_patch_names_its_symptom_versions_and_an_existing_test():
    names = [p.name for p in yolov5_patches.PATCHES]
    assert len(names) == len(set(names))
    for patch in yolov5_patches.PATCHES:
        assert patch.fixes and patch.needed and patch.modules, patch.name
        file, _, test = patch.test.partition("::")
        assert (REPO / file).is_file(), f"{patch.name}: {file} does not exist"
        if test:
            assert f"def {test}(" in (REPO / file).read_text(), f"{patch.name}: no {patch.test}"


PROBE = """
import sys, warnings, json
import torch, torch.onnx, torchvision, PIL.Image, PIL.ImageFont, numpy
state = lambda: dict(load=torch.load is torch.serialization.load, onnx=torch.onnx.export.__module__,
                     getsize=hasattr(PIL.ImageFont.FreeTypeFont, 'getsize'), open=PIL.Image.open.__module__,
                     filters=len(warnings.filters), pkg='pkg_resources' in sys.modules,
                     yolov5=sorted(m for m in sys.modules if m.split('.')[0] in ('yolov5', 'models', 'utils')))
before = state()
"""


def test_modules_alone_change_nothing_of_other_libraries(tmp_path):
    """Promise (a): using the modules, the factory and inject without yolov5 leaves torch, PIL and warnings as
    they were, and does not even import yolov5."""
    code = PROBE + """
from yolo_attn.modules import CBAM
import yolo_attn
from yolo_attn.inject import add_attention
m = CBAM(16); yolo_attn.create_attn('se', 16)(torch.rand(1, 16, 4, 4)); m(torch.rand(1, 16, 4, 4))
add_attention(torchvision.models.resnet18(weights=None), 'eca', after='layer1.*.bn2')
print(json.dumps([before, state()]))
"""
    out = run_python(code, tmp_path)
    assert out.returncode == 0, out.stderr
    before, after = json.loads(out.stdout.strip().splitlines()[-1])
    assert after == before and after["yolov5"] == [] and after["load"] and not after["getsize"]
    assert after["onnx"].startswith("torch.onnx") and after["open"] == "PIL.Image"


@pytest.mark.slow
def test_uninstall_restores_every_original(tmp_path):
    code = PROBE + """
import yolo_attn
import yolov5.models.yolo as yolo, yolov5.train as train, yolov5.export as export, yolov5.utils.metrics as metrics
import yolov5.utils.plots as plots, yolov5.utils.dataloaders as dataloaders
from yolo_attn.engines import yolov5 as engine
patched = dict(parse=yolo.parse_model.__module__, torch=train.torch is torch, export=export.torch is torch,
               np=metrics.np is numpy, font=hasattr(plots.check_pil_font, '__wrapped__'), open=PIL.Image.open.__module__,
               verify=hasattr(dataloaders.verify_image_label, '__wrapped__'), n=len(engine.applied()))
engine.uninstall()
restored = dict(parse=yolo.parse_model.__module__, torch=train.torch is torch, export=export.torch is torch,
                np=metrics.np is numpy, font=hasattr(plots.check_pil_font, '__wrapped__'), open=PIL.Image.open.__module__,
                verify=hasattr(dataloaders.verify_image_label, '__wrapped__'), n=len(engine.applied()))
import yolov5.val as val
print(json.dumps([before, patched, restored, state(), val.torch is torch]))
"""
    out = run_python(code, tmp_path)
    assert out.returncode == 0, out.stderr
    before, patched, restored, after, val_unpatched = json.loads(out.stdout.strip().splitlines()[-1])
    assert patched["parse"] == "yolo_attn.engines.yolov5.parser" and not patched["torch"] and not patched["np"]
    assert patched["n"] > 10 and patched["font"] and patched["verify"]
    assert patched["open"] == "PIL.Image"  # ultralytics' wrapper (imported by yolov5) taken off while installed
    assert restored == dict(parse="yolov5.models.yolo", torch=True, export=True, np=True, font=False,
                            open="ultralytics.utils.patches", verify=False, n=0)
    assert after["load"] and not after["getsize"]  # (yolov5 and ultralytics add warnings filters of their own)
    assert after["onnx"].startswith("torch.onnx") and val_unpatched
