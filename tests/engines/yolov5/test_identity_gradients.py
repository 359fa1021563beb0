"""Identity start must leave every inserted layer able to learn (issue #13): for every registered one-input,
channel-keeping layer (and Chains, whose members may start as the identity themselves), inserted into a pretrained
model the way ``train.sh --weights`` does it.

What "learns" means with ``x + γ·(attn(x) − x)``, γ = 0: the first backward gives γ a non-zero gradient; once γ
has moved (one optimizer step), every parameter of the wrapped layer that gets a gradient when the fresh layer is
trained on its own gets one here too (all of them, except inside a NonLocal member, whose convolutions wait for its
zero-initialised BN by design). A layer that already starts as the identity (NonLocal, a Chain of NonLocals) must not
be wrapped: there γ's gradient is exactly 0, and so is the layer's, for ever. Unwrapped, its own zero-initialised
parameters get a gradient in the first backward.
"""
import copy

import pytest
import torch

import yolo_attn
from yolo_attn.engines.yolov5.model import build_model, identity_rows
from yolo_attn.model_yaml.edit import insert_after, load_model_yaml
from yolo_attn.modules import IdentityStart
from yolo_attn.paths import MODEL_YAMLS
from yolo_attn.transfer import structural_transfer

ROW = 6  # after the C3 that ends P4: 128 channels at width 1/4, 4×4 at 64 px
ONE_INPUT_KEEPING = [s.name for s in yolo_attn.registered_layers() if s.keeps_channels and not s.members]
CHAINS = [("se", "nonlocal"), ("nonlocal",), ("nonlocal", "nonlocal"), ("eca", "cbam")]
STARTS_AS_IDENTITY = {s.name for s in yolo_attn.registered_layers() if s.starts_as_identity} | {
    ("nonlocal",), ("nonlocal", "nonlocal")}
# Parameter-free layers (SimAM) have nothing to learn, and a checkpoint's tensors cannot show whether it already had
# them: identity start leaves them as they are, so a model trained with them keeps computing them.
PARAMETER_FREE = {name for name in ONE_INPUT_KEEPING if not list(yolo_attn.create_attn(name, 128).parameters())}
# Parameters that get their first gradient only once a zero-initialised scale of the official init has moved
# (ShuffleAttn: the GroupNorm of the spatial branch waits for sweight = 0, as in the official code).
WAIT_FOR_A_ZERO_SCALE = {"ShuffleAttn": {"gn.weight", "gn.bias"}}


def _base():
    d = load_model_yaml(MODEL_YAMLS / "yolov5s.yaml")
    d.update(width_multiple=0.25, depth_multiple=0.33)
    return d


def _loss(model, x):
    out = model(x)
    return sum((o * torch.randn(o.shape, generator=torch.Generator().manual_seed(k))).sum()
               for k, o in enumerate(out))


QUICK = {"SE", "CBAM", "NonLocal", "SimAM", "ShuffleAttn", ("Chain", "se", "nonlocal")}  # the rest run in CI


def _cases():
    return [(name, name) for name in ONE_INPUT_KEEPING] + [(("Chain", *members), members) for members in CHAINS]


@pytest.mark.parametrize("layer, key", [c if c[0] in QUICK else pytest.param(*c, marks=pytest.mark.slow) for c in _cases()],
                         ids=lambda v: v if isinstance(v, str) else "-".join(v))
def test_every_identity_started_row_learns(quiet_yolov5, layer, key):
    torch.manual_seed(0)
    base_d = _base()
    base = build_model(base_d, nc=4)
    if isinstance(layer, tuple):
        variant = insert_after(base_d, [ROW], "Chain", args=list(layer[1:]))
    else:
        variant = insert_after(base_d, [ROW], layer)
    rows = identity_rows(base.state_dict(), variant)
    model = build_model(dict(variant, identity_start=rows), nc=4)
    mapped, _ = structural_transfer(base.state_dict(), model.state_dict())
    model.load_state_dict(mapped, strict=False)
    inserted = model.model[ROW + 1]
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    model.train()
    if key in PARAMETER_FREE:
        assert rows == [] and not isinstance(inserted, IdentityStart)
        return
    if key in STARTS_AS_IDENTITY:
        assert rows == [] and not isinstance(inserted, IdentityStart)
        _loss(model, x).backward()
        assert any(p.grad is not None and p.grad.abs().max() > 0 for p in inserted.parameters())
        return
    assert rows == [ROW + 1] and isinstance(inserted, IdentityStart)
    alone = _learning_alone(copy.deepcopy(inserted.attn))
    _loss(model, x).backward()
    assert inserted.gamma.grad.abs().item() > 0
    torch.optim.SGD(model.parameters(), lr=0.01).step()
    model.zero_grad()
    _loss(model, x).backward()
    grads = {n: p.grad for n, p in inserted.attn.named_parameters()}
    dead = [n for n in alone if grads[n] is None or grads[n].abs().max() == 0]
    assert not dead, f"{layer}: no gradient for {dead} after the first step"
    if not isinstance(layer, tuple) or "nonlocal" not in layer:
        waiting = WAIT_FOR_A_ZERO_SCALE.get(layer, set())
        assert alone == {n for n, _ in inserted.attn.named_parameters()} - waiting


def _learning_alone(attn):
    """Names of the parameters that get a non-zero gradient when the fresh layer alone is trained."""
    x = torch.randn(2, 128, 4, 4, generator=torch.Generator().manual_seed(2))
    (attn.train()(x) * torch.randn(x.shape, generator=torch.Generator().manual_seed(3))).sum().backward()
    return {n for n, p in attn.named_parameters() if p.grad is not None and p.grad.abs().max() > 0}


def test_cases_cover_every_registered_one_input_channel_keeping_layer():
    assert {"SE", "ECA", "CBAM", "CoordAtt", "MSCAM", "NonLocal", "SGE", "scSE", "SECBAM"} <= set(ONE_INPUT_KEEPING)
    assert PARAMETER_FREE == {"SimAM"} and {"NonLocal", "GCBlock"} <= STARTS_AS_IDENTITY
