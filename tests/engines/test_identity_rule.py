"""One identity-start rule for both engines and both entry points (``yolo_attn.engines.identity``): a layer that
already starts as the identity (NonLocal, GCBlock, a Chain of NonLocals) is never wrapped in IdentityStart, neither
when a YAML's own ``identity_start:`` lists it nor in the rows computed for ``--weights`` transfer; wrapped, its blend
and its own zero-initialised output both start at 0 and every gradient of either stays exactly 0."""
import logging

import pytest
import torch

import yolo_attn  # noqa: F401  (installs the adapters)
from yolo_attn.engines.ultralytics import model as ul
from yolo_attn.engines.yolov5 import model as v5
from yolo_attn.model_yaml.edit import insert_after, load_model_yaml
from yolo_attn.modules import IdentityStart
from yolo_attn.paths import MODEL_YAMLS

# (engine's model module, base model dict, rows to insert after): the same kind of places in both architectures
ENGINES = {"yolov5": (v5, lambda: dict(load_model_yaml(MODEL_YAMLS / "yolov5s.yaml"), width_multiple=0.25,
                                       depth_multiple=0.33), (4, 6, 8)),
           "ultralytics": (ul, lambda: ul.model_dict("yolo11n.yaml"), (4, 6, 8))}
# inserted after the rows above, in order: only SE needs (and gets) the wrapper
LAYERS = (("SE", ()), ("NonLocal", ()), ("GCBlock", ()))
CHAIN = ("Chain", ("se", "nonlocal")), ("Chain", ("nonlocal", "nonlocal"))


def _variant(base, layers, after):
    d = base
    for k, ((layer, args), row) in enumerate(zip(layers, after)):
        d = insert_after(d, [row + k], layer, args)  # each insertion shifts the later places by one
    return d, [row + k + 1 for k, row in enumerate(after)]


def _tensors(out):
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        out = list(out.values())
    return [t for o in (out if isinstance(out, (list, tuple)) else []) for t in _tensors(o)]


def _one_backward(model):
    model.train()
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    loss = sum((t * torch.randn(t.shape, generator=torch.Generator().manual_seed(k))).sum()
               for k, t in enumerate(_tensors(model(x))))
    loss.backward()


@pytest.mark.parametrize("engine", ENGINES)
def test_yaml_identity_start_leaves_layers_that_start_as_identity_unwrapped_and_learning(engine, caplog):
    """The bug: identity_start: listing a NonLocal or GCBlock row wrapped it, and every parameter of the row got
    exactly zero gradient in its first step (so it never learned)."""
    module, base, after = ENGINES[engine]
    d, rows = _variant(base(), LAYERS, after)
    se, nonlocal_row, gcblock = rows
    with module.quiet() as logger:
        pass
    logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.WARNING, logger=logger.name):
            model = module.build_model(dict(d, identity_start=rows), nc=4)
    finally:
        logger.removeHandler(caplog.handler)
    assert isinstance(model.model[se], IdentityStart)
    for row, name in ((nonlocal_row, "NonLocal"), (gcblock, "GCBlock")):
        assert not isinstance(model.model[row], IdentityStart)
        said = [r.getMessage() for r in caplog.records if f"layer {row}" in r.getMessage()]
        assert len(said) == 1 and f"{name} already starts as the identity" in said[0] and "unwrapped" in said[0]
    _one_backward(model)
    for row in (nonlocal_row, gcblock):
        grads = [p.grad for p in model.model[row].parameters()]
        assert any(g is not None and g.abs().max() > 0 for g in grads), f"row {row}: no gradient after one backward"


@pytest.mark.parametrize("engine", ENGINES)
def test_transfer_rows_skip_layers_that_start_as_identity(engine):
    module, base, after = ENGINES[engine]
    source = module.build_model(base(), nc=4)
    d, rows = _variant(base(), LAYERS, after)
    assert module.identity_rows(source.state_dict(), d) == [rows[0]]  # SE only
    d, rows = _variant(base(), CHAIN, after[:2])
    assert module.identity_rows(source.state_dict(), d) == [rows[0]]  # Chain(se, nonlocal) only


def test_both_engines_give_the_same_rows_for_equivalent_cases():
    found = {}
    for engine, (module, base, after) in ENGINES.items():
        source = module.build_model(base(), nc=4)
        d, rows = _variant(base(), LAYERS + CHAIN, after + (after[-1] + 1, after[-1] + 2))
        kinds = dict(zip(rows, LAYERS + CHAIN))
        found[engine] = [kinds[i] for i in module.identity_rows(source.state_dict(), d)]
    assert found["yolov5"] == found["ultralytics"] == [("SE", ()), ("Chain", ("se", "nonlocal"))]
