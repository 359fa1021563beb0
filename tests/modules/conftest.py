"""Shared test helpers for the attention modules, handed out as fixtures."""
import pytest
import torch
import torch.nn as nn


def _randomize(module, seed=0):
    """Random non-trivial weights, BN affine parameters and BN running statistics."""
    g = torch.Generator().manual_seed(seed)

    def rnd(t, scale=0.5, shift=0.0, uniform=False):
        r = torch.rand(t.shape, generator=g) if uniform else torch.randn(t.shape, generator=g)
        t.copy_(r * scale + shift)

    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                rnd(m.weight, 1.0, 0.5, uniform=True)
                rnd(m.bias)
                rnd(m.running_mean)
                rnd(m.running_var, 1.5, 0.5, uniform=True)
            elif isinstance(m, (nn.Conv1d, nn.Conv2d)):
                rnd(m.weight, 0.7)
                if m.bias is not None:
                    rnd(m.bias)
    return module


def _bn(x, bn, training):
    """BatchNorm written out: batch statistics in training, running ones in eval or for a single
    value per channel (the PooledBatchNorm2d rule)."""
    shape = (1, -1) + (1,) * (x.dim() - 2)
    if training and x.numel() != x.shape[1]:
        dims = [0, *range(2, x.dim())]
        mean, var = x.mean(dims, keepdim=True), x.var(dims, unbiased=False, keepdim=True)
    else:
        mean, var = bn.running_mean.view(shape), bn.running_var.view(shape)
    return (x - mean) / torch.sqrt(var + bn.eps) * bn.weight.view(shape) + bn.bias.view(shape)


def _check_grads(module, inputs, zero_grad_params=()):
    """Backward of a random weighted sum: finite, non-zero grads for inputs and parameters;
    parameters listed in zero_grad_params must get a (numerically) zero gradient."""
    inputs = [x.detach().clone().requires_grad_(True) for x in inputs]
    out = module(*inputs)
    w = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=out.dtype)
    (out * w).sum().backward()
    for x in inputs:
        assert torch.isfinite(x.grad).all() and x.grad.abs().max() > 0
    names = [n for n, _ in module.named_parameters()]
    assert set(zero_grad_params) <= set(names)
    for name, p in module.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        if name in zero_grad_params:
            assert p.grad.abs().max() < 1e-9, name
        else:
            assert p.grad.abs().max() > 0, name


@pytest.fixture
def randomize():
    return _randomize


@pytest.fixture
def bn_ref():
    return _bn


@pytest.fixture
def check_grads():
    return _check_grads
