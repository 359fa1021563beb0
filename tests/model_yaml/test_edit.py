"""Structural edits of model YAMLs: insert_after / replace_concat renumbering, dump/load round trips."""
import copy
from pathlib import Path

import pytest
import torch
import yaml

import yolo_attn  # noqa: F401
from yolo_attn.errors import ModelConfigError
from yolo_attn.model_yaml.edit import dump_model_yaml, insert_after, load_model_yaml, replace_concat
from yolo_attn.engines.yolov5 import parser

from yolov5.models import yolo

YOLOV5_MODELS = Path(yolo.__file__).parent
REPO = Path(__file__).resolve().parents[2]


def stock(name="yolov5s.yaml"):
    return load_model_yaml(YOLOV5_MODELS / name)


def rows(d):
    return d["backbone"] + d["head"]


def sources(f, i):
    """Absolute indices a 'from' names (independent of the implementation)."""
    return [j if j >= 0 else i + j for j in (f if isinstance(f, list) else [f])]


# ---------------------------------------------------------------------------------------------------------------
# insert_after


def test_insert_after_the_backbone_stages_renumbers_every_from():
    d = stock()
    out = insert_after(d, [4, 6, 8], "CBAM")
    att = [-1, 1, "CBAM", []]
    assert out["backbone"] == [
        [-1, 1, "Conv", [64, 6, 2, 2]], [-1, 1, "Conv", [128, 3, 2]], [-1, 3, "C3", [128]],
        [-1, 1, "Conv", [256, 3, 2]], [-1, 6, "C3", [256]], att,
        [-1, 1, "Conv", [512, 3, 2]], [-1, 9, "C3", [512]], att,
        [-1, 1, "Conv", [1024, 3, 2]], [-1, 3, "C3", [1024]], att,
        [-1, 1, "SPPF", [1024, 5]]]
    assert out["head"] == [
        [-1, 1, "Conv", [512, 1, 1]], [-1, 1, "nn.Upsample", ["None", 2, "nearest"]],
        [[-1, 8], 1, "Concat", [1]],  # was [-1, 6]
        [-1, 3, "C3", [512, False]], [-1, 1, "Conv", [256, 1, 1]], [-1, 1, "nn.Upsample", ["None", 2, "nearest"]],
        [[-1, 5], 1, "Concat", [1]],  # was [-1, 4]
        [-1, 3, "C3", [256, False]], [-1, 1, "Conv", [256, 3, 2]],
        [[-1, 17], 1, "Concat", [1]],  # was [-1, 14]
        [-1, 3, "C3", [512, False]], [-1, 1, "Conv", [512, 3, 2]],
        [[-1, 13], 1, "Concat", [1]],  # was [-1, 10]
        [-1, 3, "C3", [1024, False]],
        [[20, 23, 26], 1, "Detect", ["nc", "anchors"]]]  # was [17, 20, 23]
    assert {k: v for k, v in out.items() if k not in ("backbone", "head")} == \
        {k: v for k, v in d.items() if k not in ("backbone", "head")}
    assert d == stock()  # the input is not modified


def _check_renumbered(d, out, inserted, layer):
    """Every original row keeps reading the same producers; a producer r in ``inserted`` is replaced by the
    layer inserted after it. Relative 'from's stay relative, absolute ones stay absolute."""
    old, new = rows(d), rows(out)
    assert len(new) == len(old) + len(inserted)
    position = {i: i + sum(r < i for r in inserted) for i in range(len(old))}
    reader = {i: position[i] + (1 if i in inserted else 0) for i in range(len(old))}
    for i, (f, n, m, args) in enumerate(old):
        nf, nn_, nm, nargs = new[position[i]]
        assert (nn_, nm, nargs) == (n, m, args)
        if i == 0:
            assert nf == f
            continue
        assert sources(nf, position[i]) == [reader[s] for s in sources(f, i)], (i, f, nf)
        for a, b in zip(f if isinstance(f, list) else [f], nf if isinstance(nf, list) else [nf]):
            assert (a < 0) == (b < 0)
    for r in inserted:
        assert new[position[r] + 1] == [-1, 1, layer, []]
    n_backbone = len(d["backbone"])
    assert len(out["backbone"]) == n_backbone + sum(r < n_backbone for r in inserted)


@pytest.mark.parametrize("name, inserted", [
    ("yolov5s.yaml", [0]), ("yolov5s.yaml", [4, 6, 8]), ("yolov5s.yaml", [9, 10, 23]),
    ("yolov5s.yaml", list(range(24))),
    ("hub/yolov3-tiny.yaml", [8, 14, 15]),  # row 16 reads row 14 through a relative -2
    ("hub/yolov3-tiny.yaml", [13, 14]), ("hub/yolov5-bifpn.yaml", [4, 6, 14]),  # a three-input Concat
])
def test_insert_after_keeps_every_connection(name, inserted):
    d = stock(name)
    out = insert_after(d, inserted, "SE")
    _check_renumbered(d, out, inserted, "SE")
    parser.parse_model(out, ch=[3])  # and it still builds


def test_insert_after_relative_minus_two_becomes_minus_three():
    d = stock("hub/yolov3-tiny.yaml")
    assert d["head"][3][0] == -2  # row 16 reads row 14
    out = insert_after(d, [14, 15], "SE")
    # row 16 is now row 18 and reads the SE inserted after row 14 (row 15): 15 - 18 = -3
    assert rows(out)[18] == [-3, 1, "Conv", [128, 1, 1]]
    assert rows(out)[-1][0] == [21, 17]  # Detect [19, 15]: 19 -> 21, 15 -> SE after it at 17


def test_insert_after_accepts_an_int_duplicates_and_any_order():
    d = stock()
    assert insert_after(d, 4, "SE") == insert_after(d, [4], "SE")
    assert insert_after(d, [8, 4, 6, 4], "SE") == insert_after(d, [4, 6, 8], "SE")


def test_insert_after_passes_args_and_gives_each_row_its_own_list():
    out = insert_after(stock(), [4, 6], "CBAM", [{"rd_ratio": 0.25}])
    a, b = rows(out)[5], rows(out)[8]
    assert a == b == [-1, 1, "CBAM", [{"rd_ratio": 0.25}]]
    assert a[3] is not b[3]


@pytest.mark.parametrize("after", [24, 25, -1, 100])
def test_insert_after_the_last_row_or_outside_the_model_errors(after):
    with pytest.raises(ModelConfigError) as e:
        insert_after(stock(), [4, after], "SE")
    msg = str(e.value)
    assert f"cannot insert after row {after}" in msg and "rows 0..24" in msg and "Detect" in msg


def _copy_weights(src, dst, inserted):
    """Load ``src``'s state into ``dst``, where ``dst`` has extra parameter-free rows after ``inserted``."""
    position = {i: i + sum(r < i for r in inserted) for i in range(len(src.model))}
    state = {}
    for key, value in src.state_dict().items():
        _, i, rest = key.split(".", 2)
        state[f"model.{position[int(i)]}.{rest}"] = value
    dst.load_state_dict(state, strict=True)


@pytest.mark.parametrize("name, inserted", [("yolov5s.yaml", [4, 6, 8]), ("yolov5s.yaml", [0, 13, 17, 20, 23]),
                                            ("hub/yolov3-tiny.yaml", [8, 14, 15])])
def test_inserting_an_identity_keeps_the_model_function(name, inserted, build_small):
    d = stock(name)
    d["width_multiple"] = 0.25
    torch.manual_seed(0)
    base = build_small(d)
    variant = build_small(insert_after(d, inserted, "nn.Identity"))
    assert len(variant.model) == len(base.model) + len(inserted)
    assert sum(type(m) is torch.nn.Identity for m in variant.model) == len(inserted)
    _copy_weights(base, variant, inserted)
    x = torch.rand(2, 3, 64, 64)
    base.eval(), variant.eval()
    with torch.no_grad():
        a, b = base(x)[0], variant(x)[0]
    assert a.shape == b.shape
    assert a.std() > 0
    torch.testing.assert_close(a, b, rtol=0, atol=0)


# ---------------------------------------------------------------------------------------------------------------
# replace_concat


def test_replace_concat_turns_exactly_the_four_head_concats_into_aff():
    d = stock()
    out = replace_concat(d, "AFF")
    assert out["backbone"] == d["backbone"]
    changed = [(k, a, b) for k, (a, b) in enumerate(zip(d["head"], out["head"])) if a != b]
    assert [k for k, _, _ in changed] == [2, 6, 9, 12]
    for _, a, b in changed:
        assert a[1:] == [1, "Concat", [1]] and b == [a[0], 1, "AFF", []]
    assert [b[0] for _, _, b in changed] == [[-1, 6], [-1, 4], [-1, 14], [-1, 10]]
    assert d == stock()  # the input is not modified


def test_replace_concat_leaves_concats_of_three_inputs_and_passes_args():
    d = stock("hub/yolov5-bifpn.yaml")
    out = replace_concat(d, "iAFF", [{"rd_ratio": 0.5}])
    kinds = [(row[0], row[2]) for row in out["head"] if row[2] in ("Concat", "iAFF")]
    assert kinds == [([-1, 6], "iAFF"), ([-1, 4], "iAFF"), ([-1, 14, 6], "Concat"), ([-1, 10], "iAFF")]
    assert all(row[3] == [{"rd_ratio": 0.5}] for row in out["head"] if row[2] == "iAFF")


def test_replace_concat_without_concats_errors():
    out = replace_concat(stock(), "AFF")
    with pytest.raises(ModelConfigError, match="no two-input Concat"):
        replace_concat(out, "AFF")


# ---------------------------------------------------------------------------------------------------------------
# dump / load


def _variants():
    d = stock()
    leaky = copy.deepcopy(d)
    leaky["activation"] = "nn.LeakyReLU(0.1)"
    return {
        "yolov5s": d,
        "cbam": insert_after(d, [4, 6, 8], "CBAM", [{"rd_ratio": 0.25, "act_layer": "relu"}]),
        "aff": replace_concat(d, "AFF"),
        "leaky": leaky,
        "tiny": stock("hub/yolov3-tiny.yaml"),
        "seg": stock("segment/yolov5n-seg.yaml"),
    }


@pytest.mark.parametrize("name", list(_variants()))
def test_dump_then_load_round_trips(name, tmp_path):
    d = _variants()[name]
    text = dump_model_yaml(d, header="first line\nsecond line")
    assert text.startswith("# first line\n# second line\n\n")
    path = tmp_path / "m.yaml"
    path.write_text(text)
    assert load_model_yaml(path) == d
    assert yaml.safe_load(text) == d
    # one row per line, commented with its layer index
    for i, row in enumerate(rows(d)):
        assert f",  # {i}\n" in text
    assert text.count(",  # ") == len(rows(d))


def test_dumped_model_builds_the_same_network(tmp_path, quiet_yolov5):
    d = insert_after(stock(), [4, 6, 8], "ECA")
    path = tmp_path / "m.yaml"
    path.write_text(dump_model_yaml(d))
    a, save_a = parser.parse_model(copy.deepcopy(d), ch=[3])
    b, save_b = parser.parse_model(load_model_yaml(path), ch=[3])
    assert save_a == save_b and str(a) == str(b)


def test_load_model_yaml_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("backbone: [[-1, 1, Conv\n")
    with pytest.raises(ModelConfigError, match=f"{bad}: not valid YAML"):
        load_model_yaml(bad)
    data = tmp_path / "data.yaml"
    data.write_text("train: images/train\nval: images/val\nnames: {0: a}\n")
    with pytest.raises(ModelConfigError, match=f"{data}: not a YOLOv5 model YAML .*'backbone:' and 'head:'"):
        load_model_yaml(data)


def test_attention_in_rows_appends_the_mapping_and_refuses_a_second_one():
    from yolo_attn.model_yaml.edit import attention_in_rows

    d = {"backbone": [[-1, 1, "Conv", [64, 3, 2]], [-1, 2, "C3k2", [256, False]]], "head": [[[1], 1, "Detect", ["nc"]]]}
    out = attention_in_rows(d, [1], "CBAM", {"rd_ratio": 0.25})
    assert out["backbone"][1][3] == [256, False, {"attn": ["CBAM", {"rd_ratio": 0.25}]}]
    assert d["backbone"][1][3] == [256, False]  # a copy
    assert attention_in_rows(d, 1, "SE")["backbone"][1][3][-1] == {"attn": "SE"}
    with pytest.raises(ModelConfigError, match="row 1 .C3k2. already ends in a mapping"):
        attention_in_rows(out, [1], "SE")
    with pytest.raises(ModelConfigError, match="row 2 cannot take attention"):
        attention_in_rows(d, [2], "SE")
