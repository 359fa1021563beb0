"""The supported ultralytics version and the internals the adapter relies on: a change fails here, naming what
changed, before it breaks a user's run."""
import inspect

import pytest
import torch

from yolo_attn.engines.ultralytics import version

AUDIT = "re-audit the ultralytics adapter (yolo_attn/engines/ultralytics/, see version.py)"


def test_pinned_version_and_audited_sources():
    changed = version.changed()
    assert not changed, f"ultralytics changed what yolo-attn relies on; {AUDIT}:\n" + "\n".join(
        f"  {name}: {what}" for name, what in changed)


def test_the_check_can_fail(monkeypatch):
    monkeypatch.setitem(version.RELIED_ON, "ultralytics.nn.tasks.parse_model", "0" * 16)
    monkeypatch.setitem(version.RELIED_ON, "ultralytics.nn.tasks.no_such_function", "0" * 16)
    names = dict(version.changed())
    assert names["ultralytics.nn.tasks.parse_model"].startswith("source changed (fingerprint 7da6bb1410289030")
    assert names["ultralytics.nn.tasks.no_such_function"].startswith("gone")


def test_signatures_the_adapter_calls_with():
    from ultralytics.models.yolo.detect import DetectionTrainer
    from ultralytics.nn import tasks
    from ultralytics.utils import nms

    checks = {
        "tasks.parse_model(d, ch, verbose)": list(inspect.signature(version.stock_object(
            "ultralytics.nn.tasks.parse_model")).parameters) == ["d", "ch", "verbose"],
        "tasks.torch_safe_load(weight, safe_only)": "safe_only" in inspect.signature(tasks.torch_safe_load).parameters,
        "nms.non_max_suppression(return_idxs=)": "return_idxs" in inspect.signature(
            nms.non_max_suppression).parameters,
        "DetectionTrainer.get_model(cfg, weights, verbose)": list(inspect.signature(
            DetectionTrainer.get_model).parameters)[1:4] == ["cfg", "weights", "verbose"],
    }
    assert all(checks.values()), f"changed: {[k for k, ok in checks.items() if not ok]}; {AUDIT}"


def test_head_contract(build):
    """What the heatmaps read of Detect: the train-mode dict, the eval (y, dict) with y = (B, 4 + nc, sum HW), the
    export output y, and NMS's return_idxs indexing y's anchors."""
    from ultralytics.utils.nms import non_max_suppression

    model = build("yolo11n.yaml", nc=2)
    x = torch.rand(2, 3, 96, 128)
    detect = model.model[-1]
    anchors = sum((96 // s) * (128 // s) for s in (8, 16, 32))
    out = model.train()(x)
    assert set(out) == {"boxes", "scores", "feats"} and out["boxes"].shape == (2, 4 * detect.reg_max, anchors)
    with torch.no_grad():
        y, raw = model.eval()(x)
        assert y.shape == (2, 4 + 2, anchors) and set(raw) == {"boxes", "scores", "feats"}
        torch.testing.assert_close(y[:, 4:], raw["scores"].sigmoid())
        detect.export = True
        try:
            torch.testing.assert_close(model(x), y)
        finally:
            detect.export = False
    det, keep = non_max_suppression(y, 0.0, 0.7, max_det=20, return_idxs=True)
    for b in range(2):
        rows = keep[b].long().reshape(-1)
        assert len(rows) == len(det[b]) > 0
        torch.testing.assert_close(y[b, 4:, rows].max(0).values, det[b][:, 4])


def test_registry_names_do_not_shadow_ultralytics_layers():
    """Names resolve from ultralytics first: a registered name equal (in any case) to one of its layers would be
    unreachable. CBAM exists in ultralytics.nn.modules but is not a layer name its YAMLs can use."""
    from ultralytics.nn import tasks

    from yolo_attn.engines.ultralytics.parser import ultralytics_layers
    from yolo_attn.registry import registered_layers

    ours = {n.lower() for spec in registered_layers() for n in (spec.name, *spec.aliases)}
    theirs = {n.lower() for n in ultralytics_layers()}
    assert not ours & theirs, sorted(ours & theirs)
    assert not hasattr(tasks, "CBAM")


def _importers(name, source="ultralytics.utils.checks"):
    """Every ultralytics module that imports ``name`` from ``source`` by name (read from the source files)."""
    import ast

    from yolo_attn.engines.ultralytics.yamls import ultralytics_root

    root = ultralytics_root()
    found = set()
    for path in root.rglob("*.py"):
        module = ".".join(("ultralytics",) + path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                if base == source and any(a.name == name for a in node.names):
                    found.add(module)
    return found


@pytest.mark.parametrize("name, patch", [("check_font", "offline_fonts"), ("check_amp", "offline_amp_check"),
                                         ("load_dataset_cache_file", "restricted_label_cache")])
def test_offline_patches_cover_every_binding(name, patch):
    """Every ultralytics module that imports the function by name is patched (its own module only where callers
    reach it through the module)."""
    from yolo_attn.engines.ultralytics.patches import PATCHES

    source = "ultralytics.data.utils" if name == "load_dataset_cache_file" else "ultralytics.utils.checks"
    patched = set(next(p for p in PATCHES if p.name == patch).modules) - {source}
    assert _importers(name, source) == patched, f"{name}: {AUDIT}"
