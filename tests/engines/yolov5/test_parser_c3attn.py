"""Attention inside C3's bottlenecks: the YAML spelling, the weight names, structural transfer and identity start."""
import copy
import re
from pathlib import Path

import pytest
import torch
import yaml

import yolo_attn  # noqa: F401
from yolo_attn import modules
from yolo_attn.engines.yolov5 import parser
from yolo_attn.engines.yolov5.c3attn import AttnBottleneck, C3Attn
from yolo_attn.engines.yolov5.model import build_model, identity_rows
from yolo_attn.errors import ModelConfigError
from yolo_attn.transfer import structural_transfer

from yolov5.models.common import C3  # noqa: E402

MODEL_YAMLS = Path(__file__).resolve().parents[3] / "model_yamls"


def load(name):
    return yaml.safe_load((MODEL_YAMLS / name).read_text())


def with_c3(d, row, args):
    d = copy.deepcopy(d)
    d["backbone"][row][3] = args
    return d


def nparams(m):
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("name, cls", [("yolov5s-c3se.yaml", modules.SE), ("yolov5s-c3cbam.yaml", modules.CBAM),
                                       ("yolov5s-c3coordatt.yaml", modules.CoordAtt), ("yolov5s-c3ema.yaml", modules.EMA)])
def test_shipped_c3_variants_put_one_attention_per_bottleneck(name, cls):
    model, _ = parser.parse_model(load(name), ch=[3])
    base, _ = parser.parse_model(load("yolov5s.yaml"), ch=[3])
    for row, repeats in [(2, 1), (4, 2), (6, 3), (8, 1)]:  # yolov5s: 3, 6, 9, 3 bottlenecks × depth 0.33
        attn = load(name)["backbone"][row][3][-1]["attn"]  # a name, or [name, {hyper-parameters}]
        kwargs = attn[-1] if isinstance(attn, list) else {}
        c3 = model[row]
        assert type(c3) is C3Attn and isinstance(c3, C3) and len(c3.m) == repeats
        assert all(type(b) is AttnBottleneck and type(b.attn) is cls for b in c3.m)
        c_ = c3.cv1.conv.out_channels
        extra = nparams(c3) - nparams(base[row])
        assert extra == repeats * nparams(cls(c_, **kwargs)) > 0
    assert [type(m) for m in model if not isinstance(m, C3)] == [type(m) for m in base if not isinstance(m, C3)]


def test_inner_attention_sits_on_the_residual_branch_before_the_addition():
    torch.manual_seed(0)
    c3 = C3Attn(32, 32, n=1, attn=lambda c: modules.SE(c, rd_channels=4)).eval()
    b = c3.m[0]
    x = torch.randn(2, 16, 5, 6)
    with torch.no_grad():
        expected = x + b.attn(b.cv2(b.cv1(x)))
        torch.testing.assert_close(b(x), expected)
        no_shortcut = C3Attn(32, 32, n=1, shortcut=False, attn=lambda c: modules.SE(c)).m[0].eval()
        torch.testing.assert_close(no_shortcut(x), no_shortcut.attn(no_shortcut.cv2(no_shortcut.cv1(x))))


def test_stock_c3_weight_names_are_unchanged_and_attention_gets_new_ones():
    stock = build_model(load("yolov5s.yaml")).state_dict()
    c3se = build_model(load("yolov5s-c3se.yaml")).state_dict()
    assert set(stock) <= set(c3se)
    assert all(stock[k].shape == c3se[k].shape for k in stock)
    new = sorted(set(c3se) - set(stock))
    assert new and all(".m." in k and ".attn." in k for k in new)
    assert "model.2.m.0.attn.fc1.weight" in new


@pytest.mark.parametrize("spelling, kwargs", [({"attn": "cbam"}, {}),
                                              ({"attn": ["cbam", {"rd_ratio": 0.25}]}, {"rd_ratio": 0.25}),
                                              ({"attn": ["CBAM", {"spatial_kernel_size": 3}]}, {"spatial_kernel_size": 3})])
def test_yaml_spellings(spelling, kwargs):
    d = with_c3(load("yolov5s.yaml"), 4, [256, spelling])
    model, _ = parser.parse_model(d, ch=[3])
    inner = model[4].m[0].attn
    assert type(inner) is modules.CBAM
    assert nparams(inner) == nparams(modules.CBAM(64, **kwargs))


def test_head_c3_without_shortcut_takes_attention_too():
    d = copy.deepcopy(load("yolov5s.yaml"))
    d["head"][3][3] = [512, False, {"attn": "se"}]
    model, _ = parser.parse_model(d, ch=[3])
    assert type(model[13]) is C3Attn and not model[13].m[0].add


@pytest.mark.parametrize("args, match", [
    ([256, {"attn": "aff"}], "AFF cannot sit inside a bottleneck"),
    ([256, {"attn": "selectivekernel"}], "cannot sit inside a bottleneck"),
    ([256, {"attn": "cbma"}], "unknown layer type 'cbma'.*Did you mean 'CBAM'"),
    ([256, {"attention": "se"}], "takes only attn:"),
    ([256, {"attn": ["se", {"rd_ratio": 16}]}], "rd_ratio=16 is out of range"),
    ([256, {"attn": 5}], "'attn:' takes a layer name"),
])
def test_bad_inner_attention_names_the_row(args, match):
    with pytest.raises(ModelConfigError, match=r"layer 4 \(backbone row 4\), C3.*" + match):
        parser.parse_model(with_c3(load("yolov5s.yaml"), 4, args), ch=[3])


def test_a_mapping_on_other_layers_is_refused():
    d = copy.deepcopy(load("yolov5s.yaml"))
    d["backbone"][9][3] = [1024, 5, {"attn": "se"}]  # SPPF
    with pytest.raises(ModelConfigError, match=r"layer 9 \(backbone row 9\), SPPF"):
        parser.parse_model(d, ch=[3])


def test_stock_checkpoint_transfers_every_tensor_into_c3_attention():
    """The signature sets inner attention aside, so each stock C3 row finds its C3-with-attention row."""
    torch.manual_seed(0)
    stock = build_model(load("yolov5s.yaml")).state_dict()
    target = build_model(load("yolov5s-c3cbam.yaml")).state_dict()
    mapped, report = structural_transfer(stock, target)
    assert report.transferred == report.source_tensors == len(stock)
    assert report.moved == {i: i for i in report.moved} and report.new_rows == []
    assert report.fresh_inner_rows == [2, 4, 6, 8]
    assert all(torch.equal(mapped[k], v) for k, v in stock.items())
    # back again: the C3-CBAM checkpoint's C3s transfer into stock C3s, the attention is left out
    _, back = structural_transfer(target, stock)
    assert back.moved == {i: i for i in back.moved} and back.transferred == len(stock)


def test_without_setting_inner_attention_aside_the_c3_rows_would_not_match(monkeypatch):
    from yolo_attn.transfer import structural

    torch.manual_seed(0)
    stock = build_model(load("yolov5s.yaml")).state_dict()
    target = build_model(load("yolov5s-c3cbam.yaml")).state_dict()
    monkeypatch.setattr(structural, "is_inner_attention", lambda suffix: False)
    _, report = structural_transfer(stock, target)
    assert report.dropped_rows == [2, 4, 6, 8]


def test_same_inner_attention_transfers_another_starts_fresh():
    torch.manual_seed(0)
    c3se = build_model(load("yolov5s-c3se.yaml")).state_dict()
    mapped, report = structural_transfer(c3se, build_model(load("yolov5s-c3se.yaml")).state_dict())
    assert report.transferred == len(c3se) and report.fresh_inner_rows == []
    _, report = structural_transfer(c3se, build_model(load("yolov5s-c3cbam.yaml")).state_dict())
    assert report.fresh_inner_rows == [2, 4, 6, 8]  # SE's fc1 has CBAM's fc1 shape, but it is another layer


def _detect_inputs(model, x):
    seen = []
    handle = model.model[-1].register_forward_pre_hook(lambda m, args: seen.append([t.clone() for t in args[0]]))
    with torch.no_grad():
        model(x)
    handle.remove()
    return seen[0]


def test_identity_start_wraps_the_inner_attention_and_reproduces_the_checkpoint():
    torch.manual_seed(0)
    base = build_model(load("yolov5s.yaml"), nc=4).eval()
    d = load("yolov5s-c3coordatt.yaml")
    rows = identity_rows(base.state_dict(), d)
    assert rows == [2, 4, 6, 8]
    x = torch.rand(1, 3, 64, 64)
    outputs = {}
    for start in ("identity", "default"):
        model = build_model(dict(d, identity_start=rows if start == "identity" else []), nc=4).eval()
        inner = model.model[4].m[0].attn
        assert type(inner) is (modules.IdentityStart if start == "identity" else modules.CoordAtt)
        mapped, report = structural_transfer(base.state_dict(), model.state_dict())
        assert report.transferred == report.source_tensors
        model.load_state_dict(mapped, strict=False)
        outputs[start] = _detect_inputs(model, x)
    for got, want in zip(outputs["identity"], _detect_inputs(base, x)):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    # the symptom identity start removes: fresh inner attention changes the features Detect reads
    expected = _detect_inputs(base, x)
    assert max(((g - w).abs().max() / w.abs().max()).item() for g, w in zip(outputs["default"], expected)) > 0.01


def test_identity_rows_skip_inner_layers_that_start_as_identity():
    base = build_model(load("yolov5s.yaml"))
    d = with_c3(load("yolov5s.yaml"), 4, [256, {"attn": "gcblock"}])
    assert identity_rows(base.state_dict(), d) == []
    model = build_model(dict(d, identity_start=[4]))
    assert type(model.model[4].m[0].attn) is modules.GCBlock  # never wrapped: both zeros would never learn


@pytest.mark.parametrize("spelled", ["C3_SE", "C3-se", "C3_SEBlock"])
def test_other_projects_spelling_of_c3_with_attention_builds_the_same_model(spelled, monkeypatch):
    from yolov5.utils.general import LOGGER

    ours = parser.parse_model(with_c3(load("yolov5s.yaml"), 4, [256, {"attn": "se"}]), ch=[3])[0].state_dict()
    d = with_c3(load("yolov5s.yaml"), 4, [256])
    d["backbone"][4][2] = spelled
    said = []
    monkeypatch.setattr(LOGGER, "info", lambda msg, *a, **k: said.append(str(msg)))
    theirs = parser.parse_model(d, ch=[3])[0].state_dict()
    assert [(k, v.shape) for k, v in theirs.items()] == [(k, v.shape) for k, v in ours.items()]
    notes = [s for s in said if "read as" in s]
    assert len(notes) == 1 and notes[0].endswith(f"read as [-1, 6, C3, [256, {{attn: {spelled[3:]}}}]]"), notes


@pytest.mark.parametrize("name, args, match", [
    ("C3_", [256], "'C3_' names no attention after the block"),
    ("C3_CBMA", [256], "'CBMA' is not a registered attention layer. Closest: CBAM"),
    ("C3_SE", [256, {"attn": "cbam"}], "already puts 'SE' inside C3"),
])
def test_bad_spelling_of_c3_with_attention_names_the_row(name, args, match):
    d = with_c3(load("yolov5s.yaml"), 4, args)
    d["backbone"][4][2] = name
    with pytest.raises(ModelConfigError, match=r"layer 4 \(backbone row 4\), " + re.escape(name) + ".*" + match):
        parser.parse_model(d, ch=[3])
