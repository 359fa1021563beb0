"""Hostile or broken model YAMLs: each a ModelConfigError naming the problem and the fix, never a hang or a traceback;
and a fuzz test over mutated rows."""
import copy
import random
import signal
import time
from pathlib import Path

import pytest
import torch
import yaml

import yolo_attn  # noqa: F401
from yolo_attn.engines.yolov5 import parser
from yolo_attn.errors import ModelConfigError
from yolo_attn.model_yaml.edit import load_model_yaml

MODEL_YAMLS = Path(__file__).resolve().parents[3] / "model_yamls"


def yolov5s():
    return yaml.safe_load((MODEL_YAMLS / "yolov5s.yaml").read_text())


class Hang(Exception):
    pass


def within(seconds, fn, *args):
    """fn(*args), or Hang after ``seconds`` (SIGALRM: the test fails instead of the suite hanging)."""
    def alarm(*_):
        raise Hang(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        return fn(*args)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def refused(d, match):
    with pytest.raises(ModelConfigError, match=match):
        within(20, parser.parse_model, d, [3])


BOMB = """
a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]
i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h, *h]
"""


def test_a_yaml_alias_bomb_in_args_is_refused_at_once():
    bomb = yaml.safe_load(BOMB)["i"]  # 10⁹ values once expanded; loading keeps them shared
    d = yolov5s()
    d["backbone"][2][3] = [128, bomb]
    t = time.perf_counter()
    refused(d, "more than 100,000 values once its YAML aliases")
    assert time.perf_counter() - t < 5


def test_a_self_referencing_anchor_is_refused():
    d = yaml.safe_load("x: &x [1, *x]")
    row = yolov5s()
    row["head"][1][3] = d["x"]
    refused(row, "anchor that contains itself")


@pytest.mark.parametrize("section, k", [("backbone", 5), ("backbone", 2)])
def test_number_is_bounded_on_attention_and_any_row(section, k):
    d = yolov5s()
    if k == 5:
        from yolo_attn.model_yaml.edit import insert_after

        d = insert_after(d, [4], "CBAM")
    d[section][k][1] = 100_000_000
    refused(d, rf"layer {k} \(backbone row {k}\).*'number' 100000000 .*repeats the layer more than 100 times")


@pytest.mark.parametrize("key, value", [("width_multiple", 0), ("width_multiple", -0.5), ("width_multiple", "half"),
                                        ("depth_multiple", float("inf")), ("depth_multiple", 0), ("width_multiple", 1e9),
                                        ("width_multiple", True), ("nc", 0), ("nc", "80"), ("anchors", 10 ** 9),
                                        ("anchors", [[10, 13, 16]])])
def test_model_fields_out_of_range(key, value):
    d = yolov5s()
    d[key] = value
    refused(d, f"model YAML '{key}: ")


@pytest.mark.parametrize("args, match", [
    ([None, 2, "nearst"], "mode 'nearst' is not an interpolation mode.*did you mean 'nearest'"),
    ([None, 10 ** 6, "nearest"], "scale_factor 1000000 must be"), ([None, None, "nearest"], "either size or scale_factor"),
    ([None, 2, "nearest", True], "align_corners"), ([None, -2, "nearest"], "scale_factor -2"),
])
def test_upsample_args_are_checked_before_building(args, match):
    d = yolov5s()
    d["head"][1][3] = args
    refused(d, r"layer 11 \(head row 1\), nn.Upsample: .*" + match)


@pytest.mark.parametrize("row, match", [
    ([-1, 1, "Conv", [10 ** 9, 3, 2]], "the arg 1,000,000,000 is larger than any layer takes"),
    ([-1, 1, "Conv", [128, 100000, 2]], "parameters"),
    ([-1, 1, "nn.ZeroPad2d", [100000]], "the arg 100,000 is larger than any layer takes"),
    ([-1, 1, "nn.ZeroPad2d", [10000]], "values for a 64×64 image"),
    ([-1, 1, "Conv", [128.5, 3, 2]], "the first arg must be the output channel count"),
])
def test_sizes_no_yolo_has_are_refused_before_they_take_memory(row, match):
    d = yolov5s()
    d["backbone"][1] = row
    refused(d, r"layer 1 \(backbone row 1\)")
    refused(d, match)


def test_a_huge_conv_is_refused_on_the_meta_device():
    d = yolov5s()
    d["backbone"][3] = [-1, 1, "Conv", [16000, 31, 2]]  # 128 × 16000 × 31² weights: 2 billion
    refused(d, r"layer 3 \(backbone row 3\), Conv: .* parameters .*refuses models above 500,000,000")


@pytest.mark.parametrize("name", ["ＣＢＡＭ", "CBAM\u200b", "Сonv", "注意力"])
def test_unicode_layer_names_are_named_in_the_error(name):
    d = yolov5s()
    d["backbone"][1][2] = name
    with pytest.raises(ModelConfigError) as e:
        parser.parse_model(d, ch=[3])
    assert repr(name) in str(e.value) and "unknown layer type" in str(e.value)
    if name == "ＣＢＡＭ":
        assert "Did you mean 'CBAM'?" in str(e.value)


def test_fusing_maps_of_different_resolutions_is_named_by_the_shape_check():
    d = yolov5s()
    d["head"][2] = [[-1, 4], 1, "Concat", [1]]  # P5 (upsampled to P4) with P3: 4×4 and 8×8 on the check's image
    refused(d, r"layer 12 \(head row 2\), Concat: cannot run on its input\(s\) of shape")


@pytest.mark.parametrize("text, match", [
    ("nc: 80\nbackbone: [[-1, 1, Conv, [64, 6, 2, 2]]\nhead: []\n", r"not valid YAML at line \d+, column \d+"),
    ("nc: 80\nbackbone: !!python/object/apply:os.system ['echo pwned']\nhead: []\n",
     r"!!python/object/apply:os.system \(line 2, column 11\) is refused.*plain values only"),
    ("nc: 80\nhead: []\n", "needs 'backbone:' and 'head:'"),
])
def test_yaml_syntax_errors_and_python_tags(tmp_path, text, match):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ModelConfigError, match=match):
        load_model_yaml(path)


def test_the_meta_pass_leaves_the_random_stream_as_yolov5_would(original_parse_model=None):
    """Sizes are checked on the meta device, which draws no random numbers: a seeded build gives the same weights
    as yolov5's own parser."""
    from yolo_attn.engines import yolov5 as engine
    from yolov5.models import yolo

    engine.uninstall()
    try:
        original = yolo.parse_model
    finally:
        engine.install()
    d = yolov5s()
    torch.manual_seed(0)
    ours, _ = parser.parse_model(copy.deepcopy(d), ch=[3])
    torch.manual_seed(0)
    theirs, _ = original(copy.deepcopy(d), ch=[3])
    a, b = ours.state_dict(), theirs.state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)


# --- fuzz ----------------------------------------------------------------------------------------------------------

POOL = [-1, -2, 0, 1, 2, 3, 7, 64, 1024, 10 ** 9, -(10 ** 9), 0.5, -0.5, 1e308, float("nan"), True, None, "", "x",
        "nearest", "nearst", "nc", "anchors", "CBAM", "SE", "C3", "Conv", "Concat", "nn.Upsample", "Detect", "AFF",
        "ＣＢＡＭ", "__import__('os')", [], [1], [-1, 4], [[1, 2]], {}, {"rd_ratio": 2}, {"attn": "se"},
        {"attn": "aff"}, {"x": 1}]


def mutate(d, rng):
    d = copy.deepcopy(d)
    rows = d["backbone"] + d["head"]
    for _ in range(rng.randint(1, 3)):
        row = rng.choice(rows)
        k = rng.randrange(4)
        if k == 3 and rng.random() < 0.7 and isinstance(row[3], list) and row[3]:
            row[3][rng.randrange(len(row[3]))] = rng.choice(POOL)
        elif k == 3:
            row[3] = rng.choice([[], [rng.choice(POOL)], [rng.choice(POOL), rng.choice(POOL)], rng.choice(POOL)])
        else:
            row[k] = rng.choice(POOL)
    if rng.random() < 0.1:
        d[rng.choice(["nc", "depth_multiple", "width_multiple", "anchors"])] = rng.choice(POOL)
    return d


@pytest.mark.slow
def test_fuzz_mutated_rows_give_a_model_or_a_model_config_error():
    """Seeded mutations of yolov5s-cbam rows (values from a pool of edge cases), for a few seconds: every one either
    builds or raises ModelConfigError, none hangs (10 s each) or raises anything else."""
    rng = random.Random(20240612)
    base = load_model_yaml(MODEL_YAMLS / "yolov5s-cbam.yaml")
    base["width_multiple"] = 0.25
    outcomes, deadline = {"built": 0, "refused": 0}, time.perf_counter() + 6
    while time.perf_counter() < deadline or sum(outcomes.values()) < 30:
        d = mutate(base, rng)
        try:
            within(10, parser.parse_model, d, [3])
            outcomes["built"] += 1
        except ModelConfigError as e:
            assert str(e).strip()
            outcomes["refused"] += 1
        except Exception as e:  # noqa: BLE001
            pytest.fail(f"{type(e).__name__}: {e} for rows {d['backbone'] + d['head']}")
    assert outcomes["refused"] > 10 and outcomes["built"] > 0
