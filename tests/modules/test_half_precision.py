"""Every registered layer under mixed precision (issue #24): float16 autocast with float16 activations, as a conv
hands them on a GPU, gives the float32 result within float16's precision and finite gradients under a GradScaler's
loss scale; bfloat16 likewise within its own precision. CPU autocast float16 with float16 inputs reproduces the
GPU's overflow classes (a variance past 65,504, an attention logit losing its digits); bfloat16 would hide them.

And the layers whose statistics now run in float32 (``yolo_attn.modules._precision``) compute in float32 exactly
what they computed before, bit for bit: their former forward is written out below as the reference.
"""
import copy

import pytest
import torch
import torch.nn.functional as F

import yolo_attn
from yolo_attn.modules import EMA, LSKBlock, SGE, DoubleAttn, GCBlock, NonLocal, ShuffleAttn, SimAM
from yolo_attn.modules._precision import float32, float32_statistics

C, H, W = 256, 20, 20
SCALES = (1, 10, 40)  # activations SiLU(s·N(0,1)): s = 40 reaches ~160, squares ~25,000, sums far past 65,504

# Forward tolerance, max |error| / max |float32 output|. float16's unit roundoff is u = 2⁻¹¹ ≈ 4.9e-4: the input,
# every weight and every conv/bmm output is rounded once (relative u each), a conv sums K ≤ 256·49 such products
# (errors partly cancel: ~√K·u of the largest term, in practice a few u of the output's scale), and a layer chains
# up to ~6 of them plus gates whose sigmoid/softmax derivative is ≤ 1. 1 % ≈ 20u leaves room for that chain and
# fails clearly for an overflow or a lost statistic (16-66 % before the fix). Measured after the fix: ≤ 0.5 %.
FP16_TOL = 1e-2
# bfloat16 keeps 8 significant bits: u = 2⁻⁸ ≈ 3.9e-3, the same chain gives ~10u; 5 % ≈ 13u (measured: ≤ 2.6 %).
BF16_TOL = 5e-2
# GradScaler's scale: its default start is 65,536; it halves after an overflow. The loss below is the mean output
# (a detector's losses are means over predictions), so the gradient reaching each output value is scale / numel.
LOSS_SCALES = [(1, 1024), (10, 1024), (40, 1024), (1, 65536)]

SPECS = yolo_attn.registered_layers()


def build(spec, channels=C, **kwargs):
    """The layer with its defaults at ``channels`` (the registry's construction, as test_onnx_export builds them);
    constant-initialised parameters (zero-initialised outputs, SGE/ShuffleAttn's w = 0) perturbed so that no
    branch is hidden."""
    torch.manual_seed(0)
    if spec.members:
        layer = yolo_attn.create_attn(spec.name, channels, "se", "cbam")
    elif spec.out_from_first:
        layer = yolo_attn.create_attn(spec.name, channels, channels, **kwargs)
    else:
        layer = yolo_attn.create_attn(spec.name, channels, **kwargs)
    with torch.no_grad():
        for p in layer.parameters():
            if (p == p.flatten()[0]).all():
                p.add_(torch.randn(p.shape) * 0.5)
    return layer


def inputs(spec, s, dtype, n=2, channels=C, size=(H, W), seed=1):
    g = torch.Generator().manual_seed(seed)
    count = 2 if spec.inputs == 2 else 1  # AFF, iAFF (equal shapes), AttnGate (skip, gate): two maps
    return [F.silu(s * torch.randn(n, channels, *size, generator=g)).to(dtype) for _ in range(count)]


def rel_error(got, expected):
    got, expected = got.float(), expected.float()
    assert torch.isfinite(got).all(), "non-finite output"
    return ((got - expected).abs().max() / expected.abs().max()).item()


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_reduced_precision_forward_matches_float32(spec):
    """Eval mode: train-mode BN over the 2 values per channel of a pooled batch-2 map normalises them to ±1, an
    ill-conditioned function of their difference in any precision (MSCAM's global branch); running statistics
    compare the arithmetic itself. The backward test below runs in training mode."""
    layer = build(spec).eval()
    reference = copy.deepcopy(layer)
    for dtype, tol in ((torch.float16, FP16_TOL), (torch.bfloat16, BF16_TOL)):
        for s in SCALES:
            xs = inputs(spec, s, dtype)
            with torch.no_grad():
                expected = reference(*[x.float() for x in xs])
                with torch.autocast("cpu", dtype=dtype):
                    got = layer(*xs)
            assert got.dtype == dtype or got.dtype == torch.float32
            err = rel_error(got, expected)
            assert err <= tol, f"{spec.name} {dtype} s={s}: relative error {err:.4f} > {tol}"


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_float16_scaled_backward_is_finite(spec):
    layer = build(spec).train()
    for s, scale in LOSS_SCALES:
        layer.zero_grad(set_to_none=True)
        xs = [x.requires_grad_(True) for x in inputs(spec, s, torch.float16)]
        with torch.autocast("cpu", dtype=torch.float16):
            out = layer(*xs)
        (out.float().mean() * scale).backward()
        bad = [f"input {k}" for k, x in enumerate(xs) if x.grad is None or not torch.isfinite(x.grad).all()]
        bad += [n for n, p in layer.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
        assert not bad, f"{spec.name} s={s} loss x{scale}: non-finite gradients of {bad}"


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_a_model_cast_to_float16_runs(spec):
    """``.half()`` (yolov5's and ultralytics' validation on a GPU, a float16 export): weights and inputs float16, no
    autocast. The float32 statistics must not hand a float32 tensor to a float16 conv; the output stays float16 and
    near float32's at ordinary scales."""
    layer = build(spec).eval()
    reference = copy.deepcopy(layer)
    xs = inputs(spec, 1, torch.float16)
    with torch.no_grad():
        got = layer.half()(*xs)
        expected = reference(*[x.float() for x in xs])
    assert got.dtype == torch.float16
    assert rel_error(got, expected) <= BF16_TOL  # float16 arithmetic throughout: within the looser bound


# ---- float32 is unchanged: the former forward of every layer that now uses float32_statistics, op for op ----

def _old_group_norm(gn, x):
    mean = x.mean((2, 3), keepdim=True)
    var = (x - mean).square().mean((2, 3), keepdim=True)
    return (x - mean) * torch.rsqrt(var + gn.eps) * gn.weight.reshape(1, -1, 1, 1) + gn.bias.reshape(1, -1, 1, 1)


def _old_sge(m, x):
    n, c, h, w = x.shape
    xg = x.reshape(n, m.groups, c // m.groups, h, w)
    sim = (xg * xg.mean((3, 4), keepdim=True)).sum(2)
    mean = sim.mean((2, 3), keepdim=True)
    std = (sim - mean).square().mean((2, 3), keepdim=True).sqrt()
    gate = torch.sigmoid((sim - mean) / (std + m.eps) * m.weight + m.bias).unsqueeze(2)
    return (x.reshape(n, m.groups, c // m.groups, h, w) * gate).reshape(n, c, h, w)


def _old_simam(m, x):
    n = max(x.shape[2] * x.shape[3] - 1, 1)
    d = (x - x.mean((2, 3), keepdim=True)).square()
    return x * torch.sigmoid(d / (4 * (d.sum((2, 3), keepdim=True) / n + m.e_lambda)) + 0.5)


def _old_nonlocal(m, x):
    n, _, h, w = x.shape
    q = m.theta(x).flatten(2).transpose(1, 2)
    k = m.phi(x).flatten(2)
    logits = torch.bmm(q, k)
    if m.scale != 1.0:
        logits = logits * m.scale
    f = logits.softmax(-1)
    v = m.g(x).flatten(2)
    y = torch.bmm(v, f.transpose(1, 2)).reshape(n, -1, h, w)
    return m.bn(m.w_z(y)) + x


def _old_double_attn(m, x):
    n, _, h, w = x.shape
    gather = m.conv_b(x).flatten(2).softmax(-1)
    distribute = m.conv_v(x).flatten(2).softmax(1)
    descriptors = torch.bmm(m.conv_a(x).flatten(2), gather.transpose(1, 2))
    z = torch.bmm(descriptors, distribute).reshape(n, -1, h, w)
    out = m.conv_out(z)
    return out if m.shortcut is None else out + m.shortcut(x)


def _old_gcblock(m, x):
    # (in this evaluation order: the order of x's gradient contributions follows it)
    context = torch.bmm(x.flatten(2), m.conv_mask(x).flatten(2).softmax(-1).transpose(1, 2)).unsqueeze(-1)
    return x + m.transform(context)


def _old_ema(m, x):
    n, c, h, w = x.shape
    g = x.reshape(n * m.groups, -1, h, w)
    hw = m.conv1x1(torch.cat([g.mean(3, keepdim=True), g.mean(2, keepdim=True).transpose(2, 3)], 2))
    a_h, a_w = hw[:, :, :h], hw[:, :, h:].transpose(2, 3)
    x1 = _old_group_norm(m.gn, g * a_h.sigmoid() * a_w.sigmoid())
    x2 = m.conv3x3(g)
    s1, s2 = (t.mean((2, 3)).softmax(-1).unsqueeze(1) for t in (x1, x2))
    weights = torch.bmm(s1, x2.flatten(2)) + torch.bmm(s2, x1.flatten(2))
    return (g * weights.reshape(g.shape[0], 1, h, w).sigmoid()).reshape(n, c, h, w)


def _old_shuffle(m, x):
    n, c, h, w = x.shape
    x_c, x_s = x.reshape(n * m.groups, -1, h, w).chunk(2, 1)
    channel = torch.sigmoid(m.cweight * x_c.mean((2, 3), keepdim=True) + m.cbias)
    spatial = torch.sigmoid(m.sweight * _old_group_norm(m.gn, x_s) + m.sbias)
    out = torch.cat([x_c * channel, x_s * spatial], 1).reshape(n, 2, c // 2, h, w)
    return out.transpose(1, 2).reshape(n, c, h, w)


def _old_lsk(m, x):
    a1 = m.conv0(x)
    u1, u2 = m.conv1(a1), m.conv2(m.conv_spatial(a1))
    both = torch.cat([u1, u2], 1)
    s = torch.sigmoid(m.conv_squeeze(torch.cat([both.mean(1, keepdim=True), both.amax(1, keepdim=True)], 1)))
    return x * m.conv(u1 * s[:, :1] + u2 * s[:, 1:])


def same(a, b, msg):
    """Bit-identical, NaN where the former code gave NaN (SGE's std on a 1×1 map has an infinite derivative)."""
    torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True, msg=msg)


OLD_FORWARDS = {SGE: _old_sge, SimAM: _old_simam, NonLocal: _old_nonlocal, DoubleAttn: _old_double_attn,
                GCBlock: _old_gcblock, EMA: _old_ema, ShuffleAttn: _old_shuffle, LSKBlock: _old_lsk}


@pytest.mark.parametrize("cls", list(OLD_FORWARDS), ids=lambda c: c.__name__)
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_float32_output_and_gradient_bit_identical_to_before(cls, training):
    spec = cls.LAYER_INFO
    kwargs = {"groups": 8} if cls in (SGE, EMA, ShuffleAttn) else {}
    layer = build(yolo_attn.find_layer(spec.name), 64, **kwargs).train(training)
    old = copy.deepcopy(layer)
    for seed, size in ((1, (7, 5)), (2, (4, 4)), (3, (1, 1))):
        x = inputs(yolo_attn.find_layer(spec.name), 3, torch.float32, channels=64, size=size, seed=seed)[0]
        x_new, x_old = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
        got, expected = layer(x_new), OLD_FORWARDS[cls](old, x_old)
        same(got, expected, f"{spec.name}: float32 output changed")
        w = torch.randn(got.shape, generator=torch.Generator().manual_seed(seed))
        (got * w).sum().backward()
        (expected * w).sum().backward()
        same(x_new.grad, x_old.grad, f"{spec.name}: float32 input gradient changed")  # NaN where it was NaN


def test_float32_statistics_runs_the_method_itself_in_float32():
    seen = []

    class Probe(torch.nn.Module):
        @float32_statistics
        def stat(self, x, y):
            seen.append((x, y, torch.is_autocast_enabled("cpu")))
            return (x * y).sum(), x

    probe, x, y = Probe(), torch.randn(3), torch.randn(3)
    probe.stat(x, y)
    assert seen[-1][0] is x and seen[-1][1] is y and not seen[-1][2]  # float32: untouched, no copy
    s, back = probe.stat(x.half(), y.half())
    assert seen[-1][0].dtype == seen[-1][1].dtype == torch.float32 and s.dtype == back.dtype == torch.float16
    with torch.autocast("cpu", dtype=torch.float16):
        s, _ = probe.stat(x, y)  # float32 input under autocast: computed with autocast off, result float32
    assert not seen[-1][2] and s.dtype == torch.float32
    assert float32(x.bfloat16()).dtype == torch.float32 and float32(x.double()).dtype == torch.float64
    meta = torch.empty(3, device="meta", dtype=torch.float16)  # yolov5's shape dry run: no autocast there
    assert probe.stat(meta, meta)[0].dtype == torch.float16 and seen[-1][0].device.type == "meta"
