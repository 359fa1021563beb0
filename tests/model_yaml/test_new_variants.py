"""Placement of the issue-3 layers in the shipped model_yamls/, and the two edits that produce them."""
from pathlib import Path

import pytest

import yolo_attn
from yolo_attn.model_yaml import variants
from yolo_attn.model_yaml.edit import load_model_yaml

MODEL_YAMLS = Path(__file__).resolve().parents[2] / "model_yamls"


def rows(name):
    d = load_model_yaml(MODEL_YAMLS / name)
    return d["backbone"] + d["head"]


def test_every_registered_layer_but_chain_has_a_shipped_yaml_named_after_it():
    for spec in yolo_attn.registered_layers():
        path = MODEL_YAMLS / f"yolov5s-{spec.name.lower()}.yaml"
        assert path.exists() == (spec.name != "Chain"), spec.name
        if path.exists():
            text = path.read_text()
            assert text.startswith("# YOLOv5s + ") and f", {spec.name}, " in text  # a header, and the layer's row


@pytest.mark.parametrize("name", ["mscam", "sge", "scse", "secbam"])
def test_stage_attention_variants(name):
    r = rows(f"yolov5s-{name}.yaml")
    layer = yolo_attn.find_layer(name).name
    assert [i for i, row in enumerate(r) if row[2] == layer] == [5, 8, 11]
    assert all(r[i - 1][2] == "C3" for i in (5, 8, 11))


@pytest.mark.parametrize("name", ["nonlocal", "doubleattn"])
def test_quadratic_or_global_blocks_only_at_p5_after_sppf(name):
    r = rows(f"yolov5s-{name}.yaml")
    layer = yolo_attn.find_layer(name).name
    assert [i for i, row in enumerate(r) if row[2] == layer] == [10]
    assert r[9][2] == "SPPF" and r[10][0] == -1
    assert r[10][3] == ([1024] if name == "doubleattn" else [])  # A²'s output channels, equal to SPPF's
    assert r[-1][0] == [18, 21, 24]  # Detect re-numbered


@pytest.mark.parametrize("name", ["selectivekernel", "splitattn", "selfcalibconv"])
def test_conv_like_layers_replace_the_stage_downsampling_convs(name):
    base, r = rows("yolov5s.yaml"), rows(f"yolov5s-{name}.yaml")
    layer = yolo_attn.find_layer(name).name
    assert len(r) == len(base)
    for i in (3, 5, 7):
        assert base[i][2] == "Conv" and base[i][3][1:] == [3, 2]
        assert r[i] == [-1, 1, layer, [base[i][3][0], {"stride": 2}]]
    assert [row for i, row in enumerate(r) if i not in (3, 5, 7)] == [row for i, row in enumerate(base)
                                                                       if i not in (3, 5, 7)]


def test_attention_gates_on_the_top_down_skips():
    base, r = rows("yolov5s.yaml"), rows("yolov5s-attngate.yaml")
    assert len(r) == len(base) + 2
    assert r[12] == [[6, 10], 1, "AttnGate", []] and r[13] == [[-2, 12], 1, "Concat", [1]]
    assert r[17] == [[4, 15], 1, "AttnGate", []] and r[18] == [[-2, 17], 1, "Concat", [1]]
    assert r[16][2] == "nn.Upsample" and r[15] == base[14]  # the gate is the 1x1 Conv being upsampled
    assert r[5] == base[5] and r[5][0] == -1  # the backbone still reads the un-gated P3 map
    assert r[21] == [[-1, 15], 1, "Concat", [1]] and r[24] == [[-1, 10], 1, "Concat", [1]]
    assert r[-1] == [[19, 22, 25], 1, "Detect", ["nc", "anchors"]]


def test_gate_skips_and_replace_convs_refuse_rows_that_do_not_fit():
    d = load_model_yaml(variants.base_yaml_path())
    with pytest.raises(ValueError, match="row 13 is not a Concat reading row 6"):
        variants.gate_skips(d, [(13, 6, 10)], "AttnGate")
    with pytest.raises(ValueError, match="row 12 is not a Concat reading row 4"):
        variants.gate_skips(d, [(12, 4, 10)], "AttnGate")
    with pytest.raises(ValueError, match="row 2 is not a 3x3 Conv"):
        variants.replace_convs(d, [2], "SelectiveKernel")
    with pytest.raises(ValueError, match="row 10 is not a 3x3 Conv"):
        variants.replace_convs(d, [10], "SelectiveKernel")  # 1x1
    assert d == load_model_yaml(variants.base_yaml_path())  # inputs are not modified
