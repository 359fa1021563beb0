"""Synchronised BN in real gloo processes (torch.multiprocessing, 2 CPU processes), against plain BatchNorm on the
concatenated global batch computed here, in one process."""
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

import yolo_attn
from yolo_attn.modules import PooledBatchNorm2d
from yolo_attn.modules.sync_bn import SyncBatchNorm, SyncPooledBatchNorm2d, convert_sync_batchnorm

C = 3
# (class, rank 0's and rank 1's inputs: shape per rank)
CASES = {
    "plain": (SyncBatchNorm, [(3, C, 5, 4), (2, C, 5, 4)]),
    "plain_3d": (SyncBatchNorm, [(2, C, 6), (4, C, 6)]),
    "pooled_batch1_per_rank": (SyncPooledBatchNorm2d, [(1, C, 1, 1), (1, C, 1, 1)]),
    "pooled_spatial": (SyncPooledBatchNorm2d, [(2, C, 3, 3), (1, C, 3, 3)]),
    "pooled_one_value_globally": (SyncPooledBatchNorm2d, [(1, C, 1, 1), (0, C, 1, 1)]),
}
# Layers whose BN after global pooling raised under --sync-bn with one image per process (issue #13)
POOLED_LAYERS = ["mscam", "aff", "iaff", "selectivekernel", "splitattn"]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _inputs(name):
    g = torch.Generator().manual_seed(7)
    shapes = CASES[name][1]
    xs = [torch.randn(s, generator=g) * 2 + 1 for s in shapes]
    ws = [torch.randn(s, generator=g) for s in shapes]
    return xs, ws


def _bn_params(bn):
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        bn.weight.copy_(torch.rand(C, generator=g) + 0.5)
        bn.bias.copy_(torch.randn(C, generator=g))
        bn.running_mean.copy_(torch.randn(C, generator=g))
        bn.running_var.copy_(torch.rand(C, generator=g) + 0.5)
    return bn


def _step(bn, x, w):
    """One training forward and backward of sum(out * w); returns what the test compares."""
    x = x.clone().requires_grad_(True)
    out = bn(x)
    (out * w).sum().backward()
    return {"out": out.detach(), "x_grad": x.grad, "weight_grad": bn.weight.grad, "bias_grad": bn.bias.grad,
            "running_mean": bn.running_mean.clone(), "running_var": bn.running_var.clone(),
            "tracked": bn.num_batches_tracked.clone()}


def _worker(rank, port, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        results = {}
        for name, (cls, _) in CASES.items():
            xs, ws = _inputs(name)
            results[name] = _step(_bn_params(cls(C)).train(), xs[rank], ws[rank])
        try:
            _step(_bn_params(SyncBatchNorm(C)).train(), *(t[rank] for t in _inputs("pooled_one_value_globally")))
            results["plain_one_value_raises"] = False
        except ValueError as e:
            results["plain_one_value_raises"] = "more than 1 value per channel" in str(e)
        for layer in POOLED_LAYERS:  # converted layers, one 8×8 image per process, as DDP trains them
            torch.manual_seed(0)
            m = convert_sync_batchnorm(yolo_attn.create_attn(layer, 32, *([32] if layer in ("selectivekernel",
                                                                                            "splitattn") else [])))
            x = torch.randn(2, 32, 8, 8, generator=torch.Generator().manual_seed(1))[rank:rank + 1]
            out = m.train()(x if layer not in ("aff", "iaff") else (x, x.flip(-1)))
            out.sum().backward()
            results[f"layer_{layer}"] = out.detach()
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("sync_bn")
    mp.spawn(_worker, args=(_free_port(), str(out)), nprocs=2, join=True)
    return [torch.load(out / f"rank{r}.pt") for r in range(2)]


def _reference(name):
    """Plain BatchNorm (or PooledBatchNorm2d) on both ranks' inputs concatenated, in this process."""
    cls = PooledBatchNorm2d if CASES[name][0] is SyncPooledBatchNorm2d else nn.BatchNorm2d
    cls = nn.BatchNorm1d if len(CASES[name][1][0]) == 3 else cls
    xs, ws = _inputs(name)
    return _step(_bn_params(cls(C)).train(), torch.cat(xs), torch.cat(ws)), [len(x) for x in xs]


@pytest.mark.parametrize("name", list(CASES))
def test_statistics_and_gradients_over_all_ranks_equal_bn_on_the_global_batch(ranks, name):
    ref, sizes = _reference(name)
    start = 0
    for rank, n in enumerate(sizes):
        got = ranks[rank][name]
        torch.testing.assert_close(got["out"], ref["out"][start:start + n], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(got["x_grad"], ref["x_grad"][start:start + n], rtol=1e-4, atol=1e-5)
        for key in ("running_mean", "running_var", "tracked"):
            torch.testing.assert_close(got[key], ref[key], rtol=1e-5, atol=1e-6)
        start += n
    for key in ("weight_grad", "bias_grad"):  # DDP sums each rank's share
        torch.testing.assert_close(ranks[0][name][key] + ranks[1][name][key], ref[key], rtol=1e-4, atol=1e-5)


def test_one_value_per_channel_globally_uses_the_running_statistics(ranks):
    got = ranks[0]["pooled_one_value_globally"]
    bn = _bn_params(nn.BatchNorm2d(C)).eval()
    x = _inputs("pooled_one_value_globally")[0][0]
    torch.testing.assert_close(got["out"], bn(x))
    torch.testing.assert_close(got["running_mean"], bn.running_mean)  # left untouched
    assert ranks[0]["plain_one_value_raises"] and ranks[1]["plain_one_value_raises"]


def test_pooled_layers_train_with_one_image_per_process(ranks):
    """Converted, the layers that raised "Expected more than 1 value per channel" with one image per process
    train (their pooled BNs take the statistics of both processes' images)."""
    for layer in POOLED_LAYERS:
        assert torch.isfinite(ranks[0][f"layer_{layer}"]).all() and torch.isfinite(ranks[1][f"layer_{layer}"]).all()


def test_conversion_keeps_pooled_bns_pooled_and_shares_their_tensors():
    m = yolo_attn.create_attn("mscam", 16)
    pooled = [n for n, x in m.named_modules() if isinstance(x, PooledBatchNorm2d)]
    plain = [n for n, x in m.named_modules() if isinstance(x, nn.BatchNorm2d) and n not in pooled]
    assert pooled and plain
    torch_converted = nn.SyncBatchNorm.convert_sync_batchnorm(yolo_attn.create_attn("mscam", 16))
    assert not any(isinstance(x, PooledBatchNorm2d) for x in torch_converted.modules())  # the symptom
    weights = {n: x.weight for n, x in m.named_modules() if isinstance(x, nn.BatchNorm2d)}
    m = convert_sync_batchnorm(m)
    named = dict(m.named_modules())
    assert all(type(named[n]) is SyncPooledBatchNorm2d for n in pooled)
    assert all(type(named[n]) is SyncBatchNorm for n in plain)
    assert all(named[n].weight is w for n, w in weights.items())
    gpu_style = convert_sync_batchnorm(yolo_attn.create_attn("mscam", 16),
                                       plain=nn.SyncBatchNorm.convert_sync_batchnorm)
    named = dict(gpu_style.named_modules())
    assert all(type(named[n]) is nn.SyncBatchNorm for n in plain)
    assert all(type(named[n]) is SyncPooledBatchNorm2d for n in pooled)


def test_without_a_process_group_it_is_plain_bn():
    assert not dist.is_initialized()
    x = torch.randn(4, C, 3, 3)
    for cls, ref_cls in ((SyncBatchNorm, nn.BatchNorm2d), (SyncPooledBatchNorm2d, PooledBatchNorm2d)):
        for training in (True, False):
            got = _bn_params(cls(C)).train(training)
            ref = _bn_params(ref_cls(C)).train(training)
            torch.testing.assert_close(got(x), ref(x))
            torch.testing.assert_close(got.running_mean, ref.running_mean)
    one = torch.randn(1, C, 1, 1)
    bn = _bn_params(nn.BatchNorm2d(C)).eval()
    torch.testing.assert_close(_bn_params(SyncPooledBatchNorm2d(C)).train()(one), bn(one))
