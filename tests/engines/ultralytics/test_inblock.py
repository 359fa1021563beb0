"""Attention inside ultralytics' blocks: ``{attn: X}`` on C3k2 / C2f / C3 / C3k / C2PSA / A2C2f rows and the spelling
``C3k2_X``: where X sits, parameter counts, weight names, structural transfer from a stock model, identity start and
every bad input (``yolo_attn.engines.ultralytics.blocks``)."""
import copy
import re

import pytest
import torch

import yolo_attn  # noqa: F401
from ul_helpers import n_params
from yolo_attn.engines.ultralytics import parser as ul_parser
from yolo_attn.engines.ultralytics.blocks import AttnBottleneck
from yolo_attn.errors import ModelConfigError
from yolo_attn.modules import IdentityStart
from yolo_attn.registry import find_layer
from yolo_attn.transfer import structural_transfer


def stock(name):
    """ultralytics' own YAML (``yolo26n.yaml``: yolo26.yaml at scale n) as a dict."""
    from ultralytics.nn.tasks import yaml_model_load

    return dict(yaml_model_load(name), nc=4)


def with_row(d, i, args=None, name=None):
    d = copy.deepcopy(d)
    nb = len(d["backbone"])
    row = d["backbone"][i] if i < nb else d["head"][i - nb]
    if args is not None:
        row[3] = args
    if name is not None:
        row[2] = name
    return d


def parse(d):
    return ul_parser.parse_model(copy.deepcopy(d), 3, verbose=False)[0]


def detection_model(d):
    from ultralytics.nn.tasks import DetectionModel

    return DetectionModel(copy.deepcopy(d), nc=4, verbose=False)


def _bottlenecks(row):
    from ultralytics.nn.modules.block import Bottleneck

    return [m for m in row.modules() if type(m) is Bottleneck]


def _own_attentions(row):
    from ultralytics.nn.modules.block import ABlock, PSABlock

    return [m.attn for m in row.modules() if isinstance(m, (PSABlock, ABlock))]


def _psablocks(row):
    from ultralytics.nn.modules.block import PSABlock

    return [m for m in row.modules() if isinstance(m, PSABlock)]


# (YAML, row, args with the mapping, X's class name, where X sits: 'bottleneck' or 'replaces')
CASES = [
    ("yolo11n.yaml", 2, [256, False, 0.25, {"attn": "cbam"}], "CBAM", "bottleneck"),  # C3k2: Bottleneck blocks
    ("yolo26n.yaml", 6, [512, True, {"attn": "coordatt"}], "CoordAtt", "bottleneck"),  # C3k2 c3k: C3k blocks
    ("yolo26n.yaml", 22, [1024, True, 0.5, True, {"attn": "se"}], "SE", "bottleneck"),  # C3k2 attn=True (YOLO26)
    ("yolov8n.yaml", 2, [128, True, {"attn": ["cbam", {"rd_ratio": 0.25}]}], "CBAM", "bottleneck"),  # C2f
    ("yolov5nu.yaml", 2, [128, {"attn": "se"}], "SE", "bottleneck"),  # C3
    ("yolo26n.yaml", 10, [1024, {"attn": "cbam"}], "CBAM", "replaces"),  # C2PSA
    ("yolo12n.yaml", 6, [512, True, 4, {"attn": "ema"}], "EMA", "replaces"),  # A2C2f: area attention
    ("yolo12n.yaml", 11, [512, False, -1, {"attn": "eca"}], "ECA", "bottleneck"),  # A2C2f a2=False: C3k blocks
]


@pytest.mark.parametrize("yaml_name, row, args, x, place", CASES, ids=lambda v: str(v)[:24])
def test_x_sits_at_the_documented_place_with_the_expected_parameters(yaml_name, row, args, x, place,
                                                                     quiet_ultralytics):
    d = stock(yaml_name)
    base, model = parse(d)[row], parse(with_row(d, row, args))[row]
    spec = find_layer(x)
    kwargs = args[-1]["attn"][1] if isinstance(args[-1]["attn"], list) else {}
    if place == "bottleneck":
        stock_b = _bottlenecks(base)
        got = [m for m in model.modules() if isinstance(m, AttnBottleneck)]
        assert stock_b and len(got) == len(stock_b) and not _bottlenecks(model)
        assert all(type(b.attn) is spec.cls for b in got)
        assert len(_psablocks(model)) == len(_psablocks(base))  # YOLO26's PSABlock stays; none appears
        widths = [b.cv2.conv.out_channels for b in stock_b]
        expected = n_params(base) + sum(n_params(spec.cls(c, **kwargs)) for c in widths)
        torch.manual_seed(0)
        b, y = got[0].eval(), torch.randn(1, widths[0], 8, 8)
        with torch.no_grad():
            inside = b.attn(b.cv2(b.cv1(y)))
            torch.testing.assert_close(b.eval()(y), y + inside if b.add else inside)
    else:
        own = _own_attentions(base)
        got = _own_attentions(model)
        assert own and len(got) == len(own) and all(type(a) is spec.cls for a in got)
        widths = [a.proj.conv.out_channels for a in own]
        expected = n_params(base) - sum(map(n_params, own)) + sum(n_params(spec.cls(c, **kwargs)) for c in widths)
    assert n_params(model) == expected != n_params(base)
    c1 = base.cv1.conv.in_channels
    x_in = torch.randn(1, c1, 8, 8)
    with torch.no_grad():
        assert model.eval()(x_in).shape == base.eval()(x_in).shape


def test_yolo11_mapping_never_lands_in_c3k2s_own_attn_flag(quiet_ultralytics):
    """``[256, False, 0.25, {attn: cbam}]``: the fourth arg is C3k2's own ``attn``; the mapping is ours, CBAM only."""
    from yolo_attn.modules import CBAM

    d = stock("yolo11n.yaml")
    row = parse(with_row(d, 2, [256, False, 0.25, {"attn": "cbam"}]))[2]
    assert not _psablocks(row)
    assert [type(b) for b in row.m] == [AttnBottleneck] and type(row.m[0].attn) is CBAM


def test_a_c3k_row_takes_attention_like_c3(quiet_ultralytics):
    d = with_row(stock("yolo11n.yaml"), 2, [256, {"attn": "se"}], name="C3k")
    row = parse(d)[2]
    assert type(row).__name__ == "C3k" and row.cv3.conv.out_channels == 64
    assert [type(b.attn).__name__ for b in row.m] == ["SE"]


@pytest.mark.parametrize("yaml_name, row, args, spelled, mapping", [
    ("yolo11n.yaml", 6, [512, True], "C3k2_EMA", "ema"),
    ("yolo11n.yaml", 6, [512, True], "C3k2-ema", "EMA"),
    ("yolo11n.yaml", 8, [1024, True], "C3k2_SE_Block", "se"),  # an alias, with its own underscore
    ("yolo11n.yaml", 10, [1024], "C2PSA_cbam", "cbam"),
    ("yolov8n.yaml", 4, [256, True], "C2f_CBAM", "cbam"),
    ("yolo12n.yaml", 8, [1024, True, 1], "A2C2f_EMA", "ema"),
])
def test_other_projects_spelling_builds_the_same_model(yaml_name, row, args, spelled, mapping, monkeypatch):
    from ultralytics.utils import LOGGER

    d = stock(yaml_name)
    ours = parse(with_row(d, row, [*args, {"attn": mapping}])).state_dict()
    said = []
    monkeypatch.setattr(LOGGER, "info", lambda msg, *a, **k: said.append(str(msg)))
    theirs = ul_parser.parse_model(with_row(d, row, list(args), name=spelled), 3, verbose=True)[0].state_dict()
    assert [(k, v.shape) for k, v in theirs.items()] == [(k, v.shape) for k, v in ours.items()]
    assert any(".attn." in k for k in theirs) and set(theirs) != set(parse(d).state_dict())
    notes = [s for s in said if "read as" in s]
    x = re.split("[_-]", spelled, maxsplit=1)[1]
    assert len(notes) == 1 and notes[0].startswith(f"layer {row} ") and notes[0].endswith(f"{{attn: {x}}}]]"), notes


def test_stock_tensor_names_are_unchanged(quiet_ultralytics):
    d = stock("yolo26n.yaml")
    sd = parse(d).state_dict()
    v = with_row(with_row(d, 2, [256, False, 0.25, {"attn": "cbam"}]), 22, [1024, True, 0.5, True, {"attn": "se"}])
    got = parse(v).state_dict()
    assert all(k in got and got[k].shape == t.shape for k, t in sd.items())
    new = set(got) - set(sd)
    assert new and all(k.startswith(("2.m.", "22.m.")) and ".attn." in k for k in new)
    # C2PSA: every stock tensor but those of the attention X replaces
    got = parse(with_row(d, 10, [1024, {"attn": "cbam"}])).state_dict()
    kept = {k for k in sd if not k.startswith("10.m.0.attn.")}
    assert len(kept) < len(sd) and all(k in got and got[k].shape == sd[k].shape for k in kept)


def test_structural_transfer_from_stock_carries_every_stock_tensor(quiet_ultralytics):
    """yolo26n → in-block variants at every kind of row, YOLO26's C3k2(attn=True) included: its PSABlock's own
    attention (``22.m.0.1.attn.*``) is carried beside the new inner SE."""
    torch.manual_seed(0)
    d = stock("yolo26n.yaml")
    source = detection_model(d).state_dict()
    v = with_row(d, 4, [512, False, 0.25, {"attn": "cbam"}])
    v = with_row(with_row(v, 8, [1024, True, {"attn": "eca"}]), 22, [1024, True, 0.5, True, {"attn": "se"}])
    mapped, report = structural_transfer(source, detection_model(v).state_dict())
    assert report.transferred == report.source_tensors == len(source)
    assert report.new_rows == [] and report.fresh_inner_rows == [4, 8, 22]
    assert "model.22.m.0.1.attn.qkv.conv.weight" in mapped
    assert all(torch.equal(mapped[k], t) for k, t in source.items())
    # C2PSA_X: all but the replaced attention's tensors
    target = detection_model(with_row(d, 10, [1024], name="C2PSA_CBAM")).state_dict()
    mapped, report = structural_transfer(source, target)
    replaced = [k for k in source if k.startswith("model.10.m.0.attn.")]
    assert replaced and report.transferred == len(source) - len(replaced) and report.fresh_inner_rows == [10]


def test_structural_transfer_from_stock_yolo11n(quiet_ultralytics):
    torch.manual_seed(0)
    d = stock("yolo11n.yaml")
    source = detection_model(d).state_dict()
    v = with_row(with_row(d, 2, [256, False, 0.25], name="C3k2_CBAM"), 6, [512, True], name="C3k2_EMA")
    _, report = structural_transfer(source, detection_model(v).state_dict())
    assert report.transferred == len(source) and report.fresh_inner_rows == [2, 6]


def _detect_inputs(model, x):
    seen = []
    handle = model.model[-1].register_forward_pre_hook(lambda m, args: seen.append([t.clone() for t in args[0]]))
    with torch.no_grad():
        model(x)
    handle.remove()
    return seen[0]


def test_identity_start_computes_the_stock_function_at_step_0(quiet_ultralytics):
    from yolo_attn.engines import identity

    torch.manual_seed(0)
    d = stock("yolo11n.yaml")
    base = detection_model(d).eval()
    v = with_row(with_row(d, 2, [256, False, 0.25, {"attn": "cbam"}]), 8, [1024, True], name="C3k2_CoordAtt")
    rows = identity.rows_to_start(base.state_dict(), v, detection_model)
    assert rows == [2, 8]
    x = torch.rand(1, 3, 64, 64)
    want = _detect_inputs(base, x)
    for listed in (rows, []):
        model = detection_model(dict(v, identity_start=listed)).eval()
        assert (type(model.model[2].m[0].attn) is IdentityStart) == bool(listed)
        model.load_state_dict(structural_transfer(base.state_dict(), model.state_dict())[0], strict=False)
        diff = max(((g - w).abs().max() / w.abs().max()).item() for g, w in zip(_detect_inputs(model, x), want))
        assert diff < 1e-5 if listed else diff > 0.01
    # C2PSA_X: the inner X is wrapped too (its branch starts as x; the replaced attention is gone, no stock function)
    model = detection_model(dict(with_row(d, 10, [1024], name="C2PSA_SE"), identity_start=[10]))
    assert type(model.model[10].m[0].attn) is IdentityStart


@pytest.mark.parametrize("row, name, args, match", [
    (9, None, [1024, 5, {"attn": "se"}], r"SPPF cannot carry attention inside.*C3k2, C2f, C3, C3k, C2PSA, A2C2f"),
    (2, None, [256, False, 0.25, {"attn": "aff"}], r"AFF cannot sit inside this block \(it takes two inputs\)"),
    (2, None, [256, False, 0.25, {"attn": "selectivekernel"}], r"SelectiveKernel cannot sit.*changes the channel"),
    (2, "C3k2_", [256, False, 0.25], r"'C3k2_' names no attention after the block; write C3k2_<layer>"),
    (2, "C3k2-", [256, False, 0.25], r"names no attention"),
    (2, None, [256, False, 0.25, {"attn": "cbam", "where": "after"}], r"takes only attn:.*\['attn', 'where'\]"),
    (2, "C3k2_EMA", [256, False, 0.25, {"attn": "se"}], r"already puts 'EMA' inside C3k2.*either C3k2_EMA"),
    (2, "C3k2_CBMA", [256, False, 0.25], r"'C3k2_CBMA' reads as C3k2 with attention 'CBMA'.*not a registered.*"
                                         r"Closest: CBAM"),
    (2, "C2PSA_AFF", [256], r"is AFF, which cannot sit inside a block"),
    (2, None, [256, {"attn": "cbam"}, 0.25], r"the \{attn: \.\.\.\} mapping goes last"),
    (2, None, [256, False, 0.25, {"attn": 5}], r"'attn:' takes a layer name"),
    (2, None, [256, False, 0.25, {"atn": "se"}], r"takes only attn:.*\['atn'\]"),  # never C3k2's own attn flag
    (9, None, [1024, 5, {"k": 3}], r"SPPF takes no mapping among its args"),
    (2, None, [256, False, 0.25, {"attn": ["se", {"rd_ratio": 16}]}], r"rd_ratio=16 is out of range"),
    (2, None, [256, False, 0.25, {"attn": "ema"}], r"cannot put 'attn: 'ema'' inside C3k2: .*16"),  # 16 channels
])
def test_bad_input_names_the_row_and_the_fix(row, name, args, match, quiet_ultralytics):
    d = with_row(stock("yolo11n.yaml"), row, args, name=name)
    label = f"layer {row} \\(backbone row {row}\\), {name or '[A-Za-z0-9]+'}"
    with pytest.raises(ModelConfigError, match=label + ".*" + match):
        parse(d)


def test_a_checkpoint_of_an_in_block_variant_loads_through_the_restricted_loader(tmp_path, quiet_ultralytics):
    from yolo_attn import engines

    engine = engines.get("ultralytics")
    d = with_row(with_row(stock("yolo26n.yaml"), 2, [256, False, 0.25], name="C3k2_CBAM"), 10, [1024],
                 name="C2PSA_SE")
    model = engine.build_model(d, nc=4)
    path = engine.save_checkpoint(model, tmp_path / "inblock.pt")
    loaded, _ = engine.load_model(path)
    assert type(loaded.model[2].m[0]) is AttnBottleneck and type(loaded.model[10].m[0].attn).__name__ == "SE"
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        want, got = model.float().eval()(x), loaded.float().eval()(x)
    torch.testing.assert_close(got[0] if isinstance(got, (list, tuple)) else got,
                               want[0] if isinstance(want, (list, tuple)) else want)


@pytest.mark.slow  # a command in a fresh process (about 6 s of imports)
@pytest.mark.parametrize("row, name, args, message", [
    (2, "C3k2_", [256, False, 0.25], "layer 2 (backbone row 2), C3k2_: 'C3k2_' names no attention"),
    (9, None, [1024, 5, {"attn": "se"}], "layer 9 (backbone row 9), SPPF: SPPF cannot carry attention inside"),
])
def test_the_train_command_refuses_bad_in_block_rows_with_exit_2(tmp_path, row, name, args, message):
    import os
    import subprocess
    import sys

    import yaml

    from yolo_attn.datasets import shapes

    d = with_row(stock("yolo11n.yaml"), row, args, name=name)
    d = {k: v for k, v in d.items() if k not in ("yaml_file", "scale", "channels")}
    (tmp_path / "yolo11n-bad.yaml").write_text(yaml.safe_dump(d, sort_keys=False))
    data = shapes.generate(tmp_path / "ds", train=4, val=2, size=64, seed=3)
    r = subprocess.run([sys.executable, "-m", "yolo_attn.cli.train", "--cfg", "yolo11n-bad.yaml", "--data", str(data),
                        "--epochs", "1", "--imgsz", "64"], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, PYTHONUNBUFFERED="1"))
    out = r.stdout + r.stderr
    assert r.returncode == 2 and "Traceback" not in out and message in out, out[-3000:]


def test_identity_start_on_a_block_without_attention_names_the_blocks_that_can(quiet_ultralytics):
    with pytest.raises(ModelConfigError, match=r"layer 2 \(backbone row 2\), C3k2: identity_start lists this row.*"
                                               r"or a C3k2/C2f/C3/C3k/C2PSA/A2C2f row with \{attn: \.\.\.\}"):
        parse(dict(stock("yolo11n.yaml"), identity_start=[2]))
