"""The one rule of imports: each part of yolo_attn imports only from its own layer and the layers below, and no
module imports itself back through others. Every import statement counts, also those inside functions."""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "yolo_attn"

# Bottom to top. A module belongs to the longest prefix listed here (``model_yaml.edit`` before ``model_yaml``).
LAYERS = [
    ("errors",),
    ("modules",),
    ("registry",),
    ("transfer", "checkpoints", "inject", "paths", "model_yaml.edit", "datasets.shapes", "datasets.checks", "runs",
     "parity", "ablation.matches", "ablation.ultralytics_matches", "metrics.coco_eval"),
    ("engines",),
    ("cli", "heatmaps", "benchmarks", "metrics", "ablation", "datasets", "model_yaml"),
]
ENGINES = ("yolov5", "ultralytics", "models", "utils")  # third-party engines (yolov5 also as its top-level copies)
ENGINE_FREE = 3  # layers below this index never import an engine


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
        if top in ENGINES:
            assert mine >= ENGINE_FREE, f"{path.name}:{line}: {name} (layer {mine}) imports the engine {target}"
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
