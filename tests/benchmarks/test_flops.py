"""The FLOP counter: hand-computable cases, the per-op rule, and yolov5s at 640 (16.5 ± 0.2 GFLOPs)."""
import copy

import pytest
import torch
import torch.nn as nn

import yolo_attn  # noqa: F401
from yolo_attn.benchmarks.flops import FlopCounter, count_flops, yolov5_gflops
from yolo_attn.modules import CBAM, SE


def flops_of(fn, *inputs, attention_types=()):
    counter = FlopCounter(attention_types)
    with torch.no_grad(), counter:
        fn(*inputs)
    return counter.report


@pytest.mark.parametrize("bias", [False, True])
def test_single_conv_is_2_cin_cout_k2_hw(bias):
    cin, cout, k, h, w = 3, 8, 3, 10, 12
    conv = nn.Conv2d(cin, cout, k, padding=1, bias=bias)
    r = flops_of(conv, torch.zeros(1, cin, h, w))
    expected = 2 * cin * cout * k * k * h * w + (cout * h * w if bias else 0)
    assert r.total == expected
    assert dict(r.by_kind) == {"conv": expected}
    assert not r.uncounted


def test_strided_grouped_conv_counts_output_positions():
    conv = nn.Conv2d(8, 16, 3, stride=2, padding=1, groups=4, bias=False)
    r = flops_of(conv, torch.zeros(2, 8, 16, 16))
    assert r.total == 2 * 2 * (8 // 4) * 16 * 9 * 8 * 8  # batch 2, Cin/groups, Cout, k², 8×8 outputs


def test_se_module_is_its_convs_plus_elementwise_by_the_rule():
    c, h, w = 32, 8, 6
    se = SE(c)  # r = 16 -> rd = 2
    rd = se.fc1.out_channels
    assert rd == 2
    expected = (
        c * h * w  # mean over H, W: 1 per input element
        + 2 * c * rd + rd  # fc1: 1x1 conv on the 1×1 pooled map, 2·MACs + bias
        + rd  # ReLU: 1 per output element
        + 2 * rd * c + c  # fc2
        + c  # sigmoid
        + c * h * w  # x * s: 1 per output element
    )
    r = flops_of(se, torch.zeros(1, c, h, w), attention_types=(SE,))
    assert r.total == expected
    assert r.by_kind["reduction"] == c * h * w and r.by_kind["elementwise"] == rd + c + c * h * w


def test_attention_share_is_the_attention_modules_own_work():
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), SE(16))
    x = torch.zeros(1, 3, 8, 8)
    counter = FlopCounter((SE,)).track(model)
    with torch.no_grad(), counter:
        model(x)
    counter.remove_hooks()
    se_alone = flops_of(model[1], torch.zeros(1, 16, 8, 8)).total
    assert counter.report.attention == se_alone
    assert counter.report.total == se_alone + 2 * 3 * 16 * 9 * 64


def test_rule_for_other_ops():
    x = torch.randn(1, 4, 6, 6)
    bn = nn.BatchNorm2d(4).eval()
    assert flops_of(bn, x).by_kind == {"norm": 2 * x.numel()}
    pool = nn.MaxPool2d(5, 1, 2)
    assert flops_of(pool, x).total == 25 * x.numel()
    assert flops_of(lambda t: t.softmax(1), x).total == 3 * x.numel()
    assert flops_of(lambda t: t.amax(1), x).total == x.numel()
    a, b = torch.randn(5, 7), torch.randn(7, 3)
    assert flops_of(torch.mm, a, b).total == 2 * 5 * 7 * 3
    assert flops_of(nn.Hardswish(), x).total == x.numel()  # not tagged pointwise by aten: listed explicitly
    zero = flops_of(lambda t: torch.cat([t.view(1, 4, 36), t.transpose(2, 3).reshape(1, 4, 36)], 1), x)
    assert zero.total == 0 and not zero.uncounted
    assert flops_of(nn.Upsample(None, 2, "nearest"), x).total == 0


def test_meta_and_real_counts_agree_and_attention_is_tracked():
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), CBAM(16)).eval()
    meta = count_flops(model, 32, attention_types=(CBAM,))
    real = count_flops(model, 32, attention_types=(CBAM,), meta=False)
    assert meta.meta and not real.meta
    assert meta.total == real.total and meta.attention == real.attention > 0
    assert dict(meta.by_kind) == dict(real.by_kind)
    assert next(model.parameters()).device.type == "cpu"  # the model itself is left alone


def test_a_module_that_reads_values_falls_back_to_a_real_forward():
    class ReadsValue(nn.Module):
        def forward(self, x):
            return x * float(x.abs().max())  # .item() has no meta value

    report = count_flops(ReadsValue(), 8, attention_types=())
    assert not report.meta and report.total > 0


@pytest.mark.slow
def test_shipped_models_have_no_uncounted_ops(build_small):
    """Every operator of every YAML in model_yamls/ falls under a rule (built at 64 px without yolov5's init)."""
    import yaml

    from yolo_attn import paths

    for cfg in sorted(paths.MODEL_YAMLS.glob("*.yaml")):
        model = build_small(yaml.safe_load(cfg.read_text())).eval()
        report = count_flops(model, 64)
        assert not report.uncounted, (cfg.name, report.uncounted)
        has_attention = cfg.stem != "yolov5s"
        assert (report.attention > 0) == has_attention, cfg.name


def test_yolov5s_at_640_reads_16_5_gflops(yolov5_model):
    model = yolov5_model("yolov5s.yaml").eval()
    with torch.no_grad():
        fused = copy.deepcopy(model).fuse()
    ours = count_flops(fused, 640)
    assert ours.meta  # counted on meta tensors: no full-size arithmetic
    assert ours.gflops == pytest.approx(16.5, abs=0.2)
    assert count_flops(model, 640).gflops == pytest.approx(16.5, abs=0.2)  # unfused: BN counted, still 16.5
    assert yolov5_gflops(fused, 640) == pytest.approx(ours.gflops, abs=0.2)  # agrees with yolov5's thop figure


def test_thop_scaling_overstates_se_cost(yolov5_model):
    """yolov5's figure multiplies SE's pooled-vector FCs by (640/32)²; counted at 640 they are nearly free."""
    base, se = yolov5_model("yolov5s.yaml").eval(), yolov5_model("yolov5s-se.yaml").eval()
    ours = count_flops(se, 640).total - count_flops(base, 640).total
    theirs = (yolov5_gflops(se, 640) - yolov5_gflops(base, 640)) * 1e9
    assert 0 < ours < theirs / 5
