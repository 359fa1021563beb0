"""Batch normalisation with statistics over every process of a distributed run, in plain torch.distributed.

``SyncBatchNorm``: the batch statistics of all ranks together (any backend: gloo on CPU, NCCL on GPU), exact
gradients through them. torch's own ``nn.SyncBatchNorm`` is GPU-only; on GPU the two compute the same thing.
``SyncPooledBatchNorm2d``: the same for a BN after global pooling (``PooledBatchNorm2d``): where the whole global
batch holds one value per channel, it normalises with the running statistics instead of raising.
``convert_sync_batchnorm``: a model's BNs replaced by these (or, for the plain ones, by any other class).
Outside training, or without an initialised process group, both are exactly their non-synchronised BN.
"""
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ._common import PooledBatchNorm2d


class _AllReduceSum(torch.autograd.Function):
    """Sum over the ranks of ``group``; the gradient is summed the same way (each rank's loss depends on every
    rank's input through the shared statistics)."""

    @staticmethod
    def forward(ctx, x, group):
        ctx.group = group
        x = x.clone()
        dist.all_reduce(x, group=group)
        return x

    @staticmethod
    def backward(ctx, grad):
        grad = grad.clone()
        dist.all_reduce(grad, group=ctx.group)
        return grad, None


def _reduce(x, group):
    return _AllReduceSum.apply(x, group)


class SyncBatchNorm(_BatchNorm):
    """BatchNorm over the batches of all ranks of ``process_group`` (default: the whole world), for inputs
    N×C×... of any rank >= 2.

    Training: mean and biased variance of every rank's values together (two all-reduces, the variance about the
    global mean), running statistics updated as BatchNorm does with the unbiased variance. A global batch of one
    value per channel raises as BatchNorm does (``SyncPooledBatchNorm2d`` uses the running statistics instead).
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
                 process_group=None):
        super().__init__(num_features, eps, momentum, affine, track_running_stats)
        self.process_group = process_group

    def _check_input_dim(self, x):
        if x.dim() < 2:
            raise ValueError(f"expected an input of at least 2 dimensions (N×C×...), got {x.dim()}")

    def _synchronised(self):
        return self.training and dist.is_available() and dist.is_initialized()

    def _one_value(self, x):
        raise ValueError(f"Expected more than 1 value per channel when training, got input size {tuple(x.shape)} "
                         f"on every rank together")

    def forward(self, x):
        if not self._synchronised():
            return super().forward(x)
        self._check_input_dim(x)
        dims = [0, *range(2, x.dim())]
        shape = (1, -1) + (1,) * (x.dim() - 2)
        x32 = x.float()  # statistics in float32 also under autocast
        count = x32.new_full((1,), x.numel() // x.shape[1])
        sums = _reduce(torch.cat([x32.sum(dims), count]), self.process_group)
        n = sums[-1].detach()
        if n.item() <= 1:
            return self._one_value(x)
        mean = sums[:-1] / n
        centred = x32 - mean.view(shape)
        var = _reduce((centred * centred).sum(dims), self.process_group) / n
        out = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            self._update_running_stats(mean.detach(), var.detach() * (n / (n - 1)))
        return out.to(x.dtype)

    @torch.no_grad()
    def _update_running_stats(self, mean, unbiased_var):
        self.num_batches_tracked.add_(1)
        factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        self.running_mean.mul_(1 - factor).add_(mean, alpha=factor)
        self.running_var.mul_(1 - factor).add_(unbiased_var, alpha=factor)


class SyncPooledBatchNorm2d(SyncBatchNorm, PooledBatchNorm2d):
    """``PooledBatchNorm2d`` synchronised: statistics over all ranks; where the whole global batch still holds a
    single value per channel (e.g. one 1×1 pooled map on a single rank), the running statistics, left untouched.
    Still a ``PooledBatchNorm2d`` (unsynchronised, it is exactly one)."""

    def _check_input_dim(self, x):
        if x.dim() != 4:
            raise ValueError(f"expected a 4-dimensional input (N×C×H×W), got {x.dim()} dimensions")

    def _one_value(self, x):
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)


def _copy_bn(source, target):
    """What torch's own conversion carries over: the same parameters, buffers, mode and qconfig."""
    if source.affine:
        target.weight, target.bias = source.weight, source.bias
    target.running_mean, target.running_var = source.running_mean, source.running_var
    target.num_batches_tracked = source.num_batches_tracked
    target.training = source.training
    if hasattr(source, "qconfig"):
        target.qconfig = source.qconfig
    return target


def _sync_bn_like(bn, cls, process_group):
    return _copy_bn(bn, cls(bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats, process_group))


def convert_sync_batchnorm(module, plain=None, process_group=None):
    """``module`` with every BatchNorm synchronised, in place where it can be (the root is returned): each
    ``PooledBatchNorm2d`` becomes a ``SyncPooledBatchNorm2d``, every other BatchNorm ``plain(bn)`` (default: this
    module's ``SyncBatchNorm``; e.g. torch's ``nn.SyncBatchNorm.convert_sync_batchnorm`` on GPU). Parameters and
    running statistics are shared with the originals, as in torch's conversion."""
    if isinstance(module, (SyncBatchNorm, nn.SyncBatchNorm)):
        return module
    if isinstance(module, PooledBatchNorm2d):
        return _sync_bn_like(module, SyncPooledBatchNorm2d, process_group)
    if isinstance(module, _BatchNorm):
        if plain is not None:
            return plain(module)
        return _sync_bn_like(module, SyncBatchNorm, process_group)
    for name, child in module.named_children():
        converted = convert_sync_batchnorm(child, plain, process_group)
        if converted is not child:
            module.add_module(name, converted)
    return module


__all__ = ["SyncBatchNorm", "SyncPooledBatchNorm2d", "convert_sync_batchnorm"]
