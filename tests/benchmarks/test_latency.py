"""Interleaved timing, paired ratios, peak tensor memory, and BN folding inside attention modules."""
import copy

import pytest
import torch
import torch.nn as nn

import yolo_attn  # noqa: F401
from yolo_attn.benchmarks.fold import fold_attention_bn
from yolo_attn.benchmarks.latency import (inference_fn, interleaved_times, peak_tensor_memory, summarize_times,
                                          train_step_fn)
from yolo_attn.modules import AFF, CBAM, CoordAtt, iAFF


def test_rounds_rotate_the_order_and_time_every_function_once_per_round():
    calls = []
    fns = {name: (lambda n=name: calls.append(n)) for name in "abc"}
    times = interleaved_times(fns, rounds=4, warmup=1)
    assert calls[:3] == ["a", "b", "c"]  # warm-up
    assert calls[3:] == ["a", "b", "c", "b", "c", "a", "c", "a", "b", "a", "b", "c"]
    assert all(len(ts) == 4 for ts in times.values())


def test_ratio_is_the_median_of_per_round_ratios():
    times = {"base": [1.0, 2.0, 4.0], "v": [1.1, 2.2, 4.0]}  # a slow round slows both: paired ratios ignore it
    s = summarize_times(times, "base")
    assert s["base"] == (2000.0, 1.0)
    assert s["v"][0] == pytest.approx(2200.0) and s["v"][1] == pytest.approx(1.1)


def test_peak_tensor_memory_counts_live_activations_not_weights_or_views():
    net = nn.Sequential(*[nn.Linear(256, 256) for _ in range(4)])
    x = torch.randn(64, 256)
    act = 64 * 256 * 4  # bytes of one activation
    # inference: at most the input of a layer (its own output before) and its output are alive
    assert peak_tensor_memory(inference_fn(net, x)) == 2 * act
    # training: 4 activations kept for backward, then the weight and bias gradients (released at the end)
    grads = 4 * (256 * 256 + 256) * 4
    peak = peak_tensor_memory(train_step_fn(net, x))
    assert grads + 4 * act >= peak >= grads
    assert all(p.grad is None for p in net.parameters())


def _randomize_bn(model):
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g))
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return model


@pytest.mark.parametrize("cls,two_inputs", [(CBAM, False), (CoordAtt, False), (AFF, True), (iAFF, True)])
def test_folding_attention_bn_keeps_outputs(cls, two_inputs):
    torch.manual_seed(0)
    module = _randomize_bn(cls(32)).eval()
    folded = copy.deepcopy(module)
    n = fold_attention_bn(folded, (cls,))
    assert n > 0
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    x, y = torch.randn(2, 32, 12, 10), torch.randn(2, 32, 12, 10)
    args = (x, y) if two_inputs else (x,)
    with torch.no_grad():
        torch.testing.assert_close(folded(*args), module(*args), rtol=1e-4, atol=1e-5)


def test_folding_refuses_a_training_model():
    with pytest.raises(ValueError, match="eval"):
        fold_attention_bn(nn.Sequential(CBAM(16)).train(), (CBAM,))
