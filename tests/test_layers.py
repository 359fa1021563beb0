"""The one rule of imports: each part of yolo_attn imports only from its own layer and the layers below, and no
module imports itself back through others. Every import statement counts, also those inside functions."""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "yolo_attn"

# Bottom to top. A module belongs to the longest prefix listed here (``model_yaml.edit`` before ``model_yaml``).
LAYERS = [
    ("errors", "_data", "_version"),
    ("modules",),
    ("registry",),
    ("yaml_rows",),
    ("transfer", "checkpoints", "inject", "paths", "matches", "model_yaml.edit", "datasets.shapes", "datasets.checks",
     "runs", "parity", "metrics.coco_eval", "threads"),
    ("engines",),
    # the applications, among themselves bottom to top
    ("heatmaps", "metrics", "datasets", "model_yaml"),
    ("benchmarks",),
    ("ablation",),
    ("cli", "__main__"),
]
ENGINES = ("yolov5", "ultralytics", "models", "utils")  # third-party engines (yolov5 also as its top-level copies)
ENGINE_FOLDERS = ("yolo_attn.engines.yolov5", "yolo_attn.engines.ultralytics")
ENGINE_NAMES = ("yolov5", "ultralytics")
APPLICATIONS = LAYERS.index(("engines",)) + 1  # layers from this index on are applications


def module_name(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(name):
    """Index in LAYERS of a yolo_attn module (None for the package's own __init__)."""
    inner = name.split(".", 1)[1] if "." in name else ""
    if not inner:
        return None
    best = None
    for k, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if inner == prefix or inner.startswith(prefix + "."):
                if best is None or len(prefix) > len(best[1]):
                    best = (k, prefix)
    assert best is not None, f"{name} is in no layer: add it to LAYERS in {__file__}"
    return best[0]


def imports_of(path):
    """Every module an import statement in ``path`` names (``from a import b`` gives a.b if that is a module)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.append((candidate if _is_module(candidate) else base, node.lineno))
    return found


def _is_module(name):
    if not name.startswith("yolo_attn"):
        return False
    rel = Path(*name.split(".")[1:]) if "." in name else Path()
    return (PACKAGE / rel).with_suffix(".py").is_file() or (PACKAGE / rel / "__init__.py").is_file()


def all_modules():
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


@pytest.mark.parametrize("name, path", sorted(all_modules().items()))
def test_imports_point_down(name, path):
    mine = layer_of(name)
    if mine is None:
        return  # yolo_attn/__init__.py: the public facade, at the top
    for target, line in imports_of(path):
        top = target.split(".")[0]
        if top != "yolo_attn":
            continue
        theirs = layer_of(target)
        assert theirs is not None and theirs <= mine, (
            f"{path.relative_to(PACKAGE.parent)}:{line}: {name} (layer {mine}: {LAYERS[mine]}) imports {target} "
            f"(layer {theirs}) from above")


def test_no_import_cycles():
    modules = all_modules()
    graph = {name: sorted({t for t, _ in imports_of(path) if t in modules and t != name})
             for name, path in modules.items()}
    index, low, stack, on_stack, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    assert cycles == [], f"import cycles: {cycles}"


def test_the_rule_itself_catches_an_upward_import(tmp_path):
    """The check can fail: a module of the registry that imports the engine adapter is reported."""
    bad = PACKAGE / "registry" / "_upward_probe.py"
    bad.write_text("def f():\n    from yolo_attn.engines.yolov5 import parser\n    import yolov5\n")
    try:
        with pytest.raises(AssertionError, match="imports"):
            test_imports_point_down("yolo_attn.registry._upward_probe", bad)
    finally:
        bad.unlink()


def _in(name, package):
    return name == package or name.startswith(package + ".")


@pytest.mark.parametrize("name, path", sorted(all_modules().items()))
def test_only_engine_folders_import_an_engine(name, path):
    """yolov5 and ultralytics are imported in their own folder of yolo_attn/engines/ and nowhere else: everything
    else asks an ``Engine`` object (``yolo_attn.engines.of``)."""
    mine = next((folder for folder in ENGINE_FOLDERS if _in(name, folder)), None)
    for target, line in imports_of(path):
        top = target.split(".")[0]
        if top in ENGINES:
            own = "yolov5" if top in ("yolov5", "models", "utils") else top
            assert mine == f"yolo_attn.engines.{own}", (
                f"{path.relative_to(PACKAGE.parent)}:{line}: {name} imports {target}; only "
                f"yolo_attn/engines/{own}/ may: ask the Engine object (yolo_attn.engines.of) instead")
        for folder in ENGINE_FOLDERS:
            assert not (_in(target, folder) and mine and mine != folder), (
                f"{path.relative_to(PACKAGE.parent)}:{line}: {name} imports {target} from another engine's folder; "
                f"engine-neutral code goes to yolo_attn/engines/*.py or below")
            assert not (_in(target, folder) and not _in(name, "yolo_attn.engines")), (
                f"{path.relative_to(PACKAGE.parent)}:{line}: {name} imports {target} from an engine's folder: ask "
                f"the Engine object (yolo_attn.engines.of / get) instead")


def engine_name_comparisons(path):
    """(line, text) of each comparison with an engine's name as a string literal (``engine == "ultralytics"``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            if any(isinstance(o, ast.Constant) and o.value in ENGINE_NAMES for o in operands):
                found.append((node.lineno, ast.unparse(node)))
    return found


@pytest.mark.parametrize("name, path", sorted((n, p) for n, p in all_modules().items()
                                               if layer_of(n) is None or layer_of(n) >= APPLICATIONS))
def test_applications_never_branch_on_an_engine(name, path):
    """Applications ask the Engine object; a comparison with an engine's name is a branch on it."""
    assert engine_name_comparisons(path) == [], f"{path.relative_to(PACKAGE.parent)}: branches on an engine's name"


def test_the_engine_rules_can_fail(tmp_path):
    bad = PACKAGE / "heatmaps" / "_engine_probe.py"
    bad.write_text("def f(engine):\n    import ultralytics\n    return engine == 'ultralytics'\n")
    reaching = PACKAGE / "heatmaps" / "_folder_probe.py"
    reaching.write_text("from yolo_attn.engines.yolov5.model import build_model\n")
    try:
        with pytest.raises(AssertionError, match="from an engine's folder"):
            test_only_engine_folders_import_an_engine("yolo_attn.heatmaps._folder_probe", reaching)
    finally:
        reaching.unlink()
    try:
        with pytest.raises(AssertionError, match="only yolo_attn/engines/ultralytics/ may"):
            test_only_engine_folders_import_an_engine("yolo_attn.heatmaps._engine_probe", bad)
        with pytest.raises(AssertionError, match="branches on an engine"):
            test_applications_never_branch_on_an_engine("yolo_attn.heatmaps._engine_probe", bad)
    finally:
        bad.unlink()
    crossing = PACKAGE / "engines" / "ultralytics" / "_crossing_probe.py"
    crossing.write_text("from yolo_attn.engines.yolov5 import parser\n")
    try:
        with pytest.raises(AssertionError, match="another engine's folder"):
            test_only_engine_folders_import_an_engine("yolo_attn.engines.ultralytics._crossing_probe", crossing)
    finally:
        crossing.unlink()
