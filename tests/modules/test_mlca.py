"""MLCA checked against its formula, written out with functional ops from the module's own weights (the s×s pooling
by F.adaptive_avg_pool2d, the unpooling by explicit nearest indices), and against the official adaptive unpooling
where the two agree (H, W multiples of the grid)."""
import io
import math

import pytest
import torch
import torch.nn.functional as F

from yolo_attn.errors import ModelConfigError
from yolo_attn.modules import MLCA

SIZES = [(2, 13, 17), (1, 13, 17), (2, 7, 7), (1, 7, 7), (2, 1, 1), (1, 1, 1), (2, 20, 20), (1, 3, 11)]
C = 16


def sig(t):
    return 1 / (1 + torch.exp(-t))


def local_gate_ref(m, x):
    n, c = x.shape[:2]
    s, lw = m.local_size, m.local_weight
    k = m.conv.weight.shape[-1]
    local = F.adaptive_avg_pool2d(x, s)  # N×C×s×s, exactly the official pooling
    seq = local.permute(0, 2, 3, 1).reshape(n, 1, -1)  # cell-major: cell (0,0)'s C channels, then (0,1)'s, ...
    y_local = F.conv1d(seq, m.conv_local.weight, padding=k // 2).reshape(n, s, s, c).permute(0, 3, 1, 2)
    y_global = F.conv1d(local.mean((2, 3))[:, None], m.conv.weight, padding=k // 2).reshape(n, c, 1, 1)
    return sig(y_global) * (1 - lw) + sig(y_local) * lw


def mlca_ref(m, x):
    h, w = x.shape[2:]
    s = m.local_size
    gate = local_gate_ref(m, x)
    rows = [math.floor(i * s / h) for i in range(h)]  # nearest unpooling
    cols = [math.floor(j * s / w) for j in range(w)]
    return x * gate[:, :, rows][:, :, :, cols]


def build(randomize, channels=C, **kwargs):
    return randomize(MLCA(channels, **kwargs)).double()


@pytest.mark.parametrize('kwargs', [{}, {'local_size': 3, 'local_weight': 0.25}, {'local_size': 7, 'gamma': 1}])
@pytest.mark.parametrize('n, h, w', SIZES)
@pytest.mark.parametrize('training', [True, False])
def test_matches_formula(kwargs, n, h, w, training, randomize):
    m = build(randomize, **kwargs).train(training)
    x = torch.randn(n, C, h, w, dtype=torch.float64)
    out = m(x)
    assert out.shape == x.shape and out.dtype == x.dtype
    torch.testing.assert_close(out, mlca_ref(m, x), rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(m.attention_maps(x)['local'], local_gate_ref(m, x), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize('h, w', [(20, 20), (10, 15), (5, 5), (40, 80)])
def test_equals_the_official_adaptive_unpooling_at_multiples_of_the_grid(h, w, randomize):
    m = build(randomize)
    x = torch.randn(2, C, h, w, dtype=torch.float64)
    torch.testing.assert_close(m(x), x * F.adaptive_avg_pool2d(local_gate_ref(m, x), (h, w)), rtol=1e-9, atol=1e-9)


def test_differs_from_the_official_unpooling_elsewhere_as_documented(randomize):
    m = build(randomize)
    x = torch.randn(1, C, 13, 17, dtype=torch.float64)
    official = x * F.adaptive_avg_pool2d(local_gate_ref(m, x), (13, 17))  # blends neighbouring cells
    assert not torch.allclose(m(x), official)


@pytest.mark.parametrize('channels, k', [(16, 3), (64, 3), (128, 5), (256, 5), (512, 5), (1024, 5), (4096, 7), (55, 3)])
def test_kernel_follows_the_actual_channel_count_and_counts_2k(channels, k):
    """k = ECA's rule on C (the official code: on its in_size argument); MODULES.md: 6 parameters at 64 channels."""
    m = MLCA(channels)
    assert m.conv.kernel_size == m.conv_local.kernel_size == (k,)
    assert sum(p.numel() for p in m.parameters()) == 2 * k


@pytest.mark.parametrize('kwargs, match', [({'local_size': 0}, 'local_size=0 must be a positive integer'),
                                           ({'local_size': 2.5}, 'local_size=2.5'),
                                           ({'local_weight': 1.5}, 'local_weight=1.5 must be in \\[0, 1\\]'),
                                           ({'gamma': 0}, 'gamma=0 must be positive')])
def test_bad_hyper_parameters_are_refused(kwargs, match):
    with pytest.raises(ModelConfigError, match=match):
        MLCA(16, **kwargs)


def test_traced_and_exported_graphs_follow_the_input_size(randomize):
    """The pooling matrices and the unpooling size are computed from the input's size in the graph, not baked."""
    onnxruntime = pytest.importorskip('onnxruntime')
    m = randomize(MLCA(C)).eval()
    traced = torch.jit.trace(m, torch.randn(1, C, 13, 17), check_trace=False)
    f = io.BytesIO()
    torch.onnx.export(m, (torch.randn(1, C, 13, 17),), f, input_names=['x'], output_names=['y'], dynamo=False,
                      dynamic_axes={'x': {0: 'n', 2: 'h', 3: 'w'}})
    session = onnxruntime.InferenceSession(f.getvalue(), providers=['CPUExecutionProvider'])
    for shape in [(2, C, 20, 20), (1, C, 7, 9), (1, C, 1, 1)]:
        x = torch.randn(shape)
        with torch.no_grad():
            expected = m(x)
        torch.testing.assert_close(traced(x), expected)
        torch.testing.assert_close(torch.from_numpy(session.run(None, {'x': x.numpy()})[0]), expected,
                                   rtol=1e-4, atol=1e-5)


def test_gradients(randomize, check_grads):
    check_grads(build(randomize).train(), [torch.randn(2, C, 13, 7, dtype=torch.float64)])
