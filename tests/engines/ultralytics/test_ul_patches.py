"""The patches of the ultralytics engine adapter: applied when their module is imported, undone exactly, and nothing
that yolov5 uses is touched."""
import importlib
import os
import pickle
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import yolo_attn  # noqa: F401
from yolo_attn.engines import ultralytics as engine
from yolo_attn.engines.ultralytics import patches
from yolo_attn.engines.ultralytics.callbacks import ensure_installed

REPO = Path(__file__).resolve().parents[3]


def run_python(code, tmp_path):
    """A fresh interpreter (outside the repo folder) with this worktree first on the path."""
    env = dict(os.environ, PYTHONPATH=str(REPO), YOLO_OFFLINE="1")
    return subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env=env)


def _targets():
    """(module, attribute) of every name the patches replace."""
    import ultralytics.data.dataset  # noqa: F401  (imports every target module)
    import ultralytics.engine.model  # noqa: F401
    import ultralytics.engine.trainer  # noqa: F401
    import ultralytics.nn.tasks  # noqa: F401
    import ultralytics.utils.plotting  # noqa: F401

    return [("ultralytics.nn.tasks", "parse_model"), ("ultralytics.nn", "parse_model"),
            ("ultralytics.nn.tasks", "yaml_model_load"), ("ultralytics.engine.model", "yaml_model_load"),
            ("ultralytics.nn.tasks", "intersect_dicts"), ("ultralytics.nn.tasks", "torch_load"),
            ("ultralytics.utils.torch_utils", "torch_load"), ("ultralytics.data.dataset", "load_dataset_cache_file"),
            ("ultralytics.utils.checks", "check_font"), ("ultralytics.data.utils", "check_font"),
            ("ultralytics.utils.plotting", "check_font"), ("ultralytics.engine.trainer", "check_amp")]


def test_every_patch_is_applied_and_uninstall_restores_every_original():
    targets = _targets()
    patched = {t: getattr(sys.modules[t[0]], t[1]) for t in targets}
    assert all(v.__module__.startswith("yolo_attn.") for v in patched.values()), patched
    assert set(engine.applied()) == {p.name for p in patches.PATCHES}
    from ultralytics.utils.callbacks import base

    assert ensure_installed in base.default_callbacks["on_pretrain_routine_start"]
    engine.uninstall()
    try:
        originals = {t: getattr(sys.modules[t[0]], t[1]) for t in targets}
        for (module, attr), value in originals.items():
            assert value.__module__.startswith("ultralytics"), (module, attr, value)
            assert value is patches._STOCK[patched[(module, attr)]]
        assert ensure_installed not in base.default_callbacks["on_pretrain_routine_start"]
        from ultralytics.nn import tasks
        from ultralytics.utils import torch_utils

        assert tasks.parse_model is sys.modules["ultralytics.nn"].parse_model  # re-export restored as well
        assert tasks.intersect_dicts is torch_utils.intersect_dicts
    finally:
        engine.install()
    assert {t: getattr(sys.modules[t[0]], t[1]) for t in targets} == patched


@pytest.mark.slow
def test_patches_apply_on_import_in_a_fresh_process(tmp_path):
    """Installed before ultralytics is imported (the import hook), and after (applied at once)."""
    for order in ("import yolo_attn; import ultralytics.nn.tasks as t",
                  "import ultralytics.nn.tasks as t; import yolo_attn"):
        r = run_python(f"{order}\nfrom yolo_attn.engines.ultralytics import parser\n"
                       "print(t.parse_model is parser.parse_model, t.torch_load.__module__.startswith('ultralytics'))",
                       tmp_path)
        assert r.returncode == 0, r.stderr
        assert r.stdout.split() == ["True", "False"], order


@pytest.mark.slow
def test_yolov5_keeps_what_it_uses_of_ultralytics(tmp_path):
    """yolov5 imports ultralytics.utils.checks for check_requirements: that module is patched only in check_font,
    which yolov5 does not use (it has its own), and no model-building patch is applied."""
    r = run_python("import yolo_attn, yolov5.train, yolov5.utils.general as g\n"
                   "import ultralytics.utils.checks as c\n"
                   "from yolo_attn.engines import ultralytics as u\n"
                   "print(sorted(set(u.applied())))\n"
                   "print(g.check_requirements is c.check_requirements, c.check_requirements.__module__)\n"
                   "print(g.check_font.__module__)", tmp_path)
    assert r.returncode == 0, r.stderr
    applied, requirements, font = r.stdout.strip().splitlines()[-3:]
    assert applied == "['offline_fonts', 'restricted_checkpoint_load']"  # checks.check_font, torch_utils.torch_load
    assert requirements == "True ultralytics.utils.checks"
    assert not font.startswith("ultralytics")


def test_fonts_offline(monkeypatch, tmp_path):
    """ultralytics' check_font looks the font up on the internet (3 s timeout, then a download); ours never does."""
    from ultralytics.data import utils as data_utils
    from ultralytics.utils import checks, plotting

    lookups = []

    def no_network(*args, **kwargs):
        lookups.append(args[0])
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    for module in (checks, data_utils, plotting):
        font = module.check_font("Arial.Unicode.ttf")
        assert Path(font).is_file()
    assert lookups == []
    patches.original("ultralytics.utils.checks", "check_font")("NoSuchFont-yolo-attn.ttf")  # the symptom
    assert lookups and "github" in lookups[0]
    assert Path(patches.check_font_offline(str(tmp_path / "missing.ttf"))) == patches.fallback_font_path()
    own = tmp_path / "Mine.ttf"
    own.write_bytes(patches.fallback_font_path().read_bytes())
    assert patches.check_font_offline(str(own)) == own


class _Param:
    device = torch.device("cuda", 0)


class _FakeCudaModel:
    """What the AMP check reads of a model on a GPU (this machine has none)."""

    def parameters(self):
        yield _Param()


def test_amp_check_offline(monkeypatch, tmp_path):
    """On a GPU without yolo26n.pt on disk: no download, AMP stays on (ultralytics' own offline outcome); with the
    file there, ultralytics' check runs; on the CPU it answers as ultralytics does (False)."""
    from ultralytics import utils

    calls = []
    monkeypatch.setitem(patches._STOCK, patches.check_amp_offline, lambda m: calls.append(m) or "stock")
    monkeypatch.setattr(utils, "WEIGHTS_DIR", tmp_path)
    assert patches.check_amp_offline(_FakeCudaModel()) is True and calls == []
    (tmp_path / "yolo26n.pt").write_bytes(b"")
    assert patches.check_amp_offline(_FakeCudaModel()) == "stock" and len(calls) == 1
    cpu_model = torch.nn.Conv2d(1, 1, 1)
    assert patches.check_amp_offline(cpu_model) == "stock"


def test_ddp_state_names_yolo_attn():
    """The trainer state ultralytics pickles for DDP workers names the adapter's callback by reference, so a worker
    imports yolo_attn (which installs the adapter) before it builds the model."""
    import cloudpickle
    from ultralytics.utils.callbacks import get_default_callbacks

    callbacks = get_default_callbacks()
    assert ensure_installed in callbacks["on_pretrain_routine_start"]
    blob = cloudpickle.dumps({"callbacks": callbacks})
    assert b"yolo_attn.engines.ultralytics.callbacks" in blob and b"ensure_installed" in blob
    engine.uninstall()
    try:
        assert b"yolo_attn" not in cloudpickle.dumps({"callbacks": get_default_callbacks()})  # the symptom
    finally:
        engine.install()
    assert pickle.loads(blob)["callbacks"]["on_pretrain_routine_start"][-1] is ensure_installed


def test_original_is_stock_also_for_names_copied_from_a_patched_module():
    from ultralytics.nn import tasks

    stock = patches.original("ultralytics.nn", "parse_model")
    assert stock.__module__ == "ultralytics.nn.tasks" and stock is not tasks.parse_model
    assert importlib.import_module("ultralytics.engine.model").yaml_model_load is tasks.yaml_model_load
