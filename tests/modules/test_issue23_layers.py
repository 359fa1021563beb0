"""ELA, LSKA, MLCA, CPCA, CAA (issue #23) as YOLO layers: the shipped YAMLs build in both engines, the layers work
inside C3's bottlenecks, traced graphs follow the input size, and low-precision runs stay finite and close."""
import copy

import pytest
import torch

import yolo_attn
from yolo_attn import engines, modules
from yolo_attn.paths import MODEL_YAMLS

NAMES = ["ELA", "LSKA", "MLCA", "CPCA", "CAA"]
ALIASES = {"EfficientLocalAttention": "ELA", "LargeSeparableKernelAttention": "LSKA",
           "MixedLocalChannelAttention": "MLCA", "ChannelPriorConvAttention": "CPCA", "ContextAnchorAttention": "CAA"}


@pytest.mark.parametrize("alias, name", sorted(ALIASES.items()))
def test_names_and_aliases(alias, name):
    assert yolo_attn.find_layer(alias).name == name == yolo_attn.find_layer(name.lower()).name
    spec = yolo_attn.find_layer(name)
    assert spec.keeps_channels and spec.has_gates and [p.where for p in spec.placements] == ["stage_outputs"]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("path", ["yolov5s-{}.yaml", "ultralytics/yolo11n-{}.yaml"])
def test_shipped_yamls_build_in_their_engine(name, path):
    path = MODEL_YAMLS / path.format(name.lower())
    model = engines.of(path).build_model(path)
    cls = getattr(modules, name)
    layers = [m for m in model.modules() if type(m) is cls]
    assert len(layers) == 3  # after the blocks that end P3, P4, P5
    model.eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, 64, 96))
    assert torch.isfinite(out[0] if isinstance(out, (list, tuple)) else out).all()


@pytest.mark.parametrize("name", NAMES)
def test_inside_c3_bottlenecks_and_as_a_plain_row(name):
    """[-1, 3, C3, [128, {attn: name}]] in yolov5s's backbone, and [-1, 1, Name, []] after it; 32-channel
    bottlenecks at width 0.25 (ELA-B needs a multiple of 16)."""
    from yolo_attn.engines.yolov5.model import build_model
    from yolo_attn.model_yaml.edit import load_model_yaml

    d = copy.deepcopy(load_model_yaml(MODEL_YAMLS / "yolov5s.yaml"))
    d.update(width_multiple=0.25, depth_multiple=0.33)
    d["backbone"][2] = [-1, 3, "C3", [128, {"attn": name}]]
    model = build_model(d, nc=4)
    cls = getattr(modules, name)
    inner = [m for m in model.model[2].modules() if type(m) is cls]
    assert len(inner) == 1 and model.model[2].cv1.conv.out_channels == 16
    model.train()
    out = model(torch.rand(2, 3, 64, 64))
    assert all(torch.isfinite(o).all() for o in out)


@pytest.mark.parametrize("name", NAMES)
def test_traced_graph_follows_the_input_size(name, randomize):
    """torch.jit.trace at 13×17, run at other sizes (1×1 included): nothing baked in."""
    m = randomize(yolo_attn.create_attn(name, 32)).eval()
    traced = torch.jit.trace(m, torch.randn(1, 32, 13, 17), check_trace=False)
    for shape in [(2, 32, 20, 20), (1, 32, 7, 9), (1, 32, 1, 1)]:
        x = torch.randn(shape)
        with torch.no_grad():
            torch.testing.assert_close(traced(x), m(x))


@pytest.mark.parametrize("name", NAMES)
def test_float16_and_bfloat16(name):
    """A .half() module (after .eval(): nothing cached) and CPU autocast to bfloat16, freshly initialised, on an
    80×80 map of large activations: finite and close to float32, output in the input's dtype."""
    torch.manual_seed(0)
    m = yolo_attn.create_attn(name, 32).eval()
    x = torch.randn(2, 32, 80, 80) * 20 + 5
    with torch.no_grad():
        ref = m(x)
        half = copy.deepcopy(m).half()(x.half())
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf = m(x.bfloat16())
    scale = ref.abs().max()
    for out, dtype, tol in ((half, torch.float16, 5e-3), (bf, torch.bfloat16, 5e-2)):
        assert out.dtype == dtype and torch.isfinite(out).all()
        assert ((out.float() - ref).abs().max() / scale).item() < tol, dtype
