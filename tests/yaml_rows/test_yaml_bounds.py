"""One set of model-YAML bounds for both engines (yolo_attn.yaml_rows.bounds): every hostile YAML of issue 22 is a
ModelConfigError naming the row, within seconds, from the yolov5 and the ultralytics parser alike; and a fuzz test
over mutated ultralytics YAMLs."""
import copy
import random
import signal
import time
from pathlib import Path

import pytest
import yaml

import yolo_attn  # noqa: F401  (installs both engines' parsers)
from yolo_attn.errors import ModelConfigError
from yolo_attn.yaml_rows import bounds

MODEL_YAMLS = Path(__file__).resolve().parents[2] / "model_yamls"
BOMB = "\n".join(["a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
                 + [f"{x}: &{x} [{', '.join([f'*{p}'] * 10)}]" for p, x in zip("abcdefgh", "bcdefghi")])


class Hang(Exception):
    pass


def within(seconds, fn, *args):
    def alarm(*_):
        raise Hang(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        return fn(*args)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def yolov5s():
    return yaml.safe_load((MODEL_YAMLS / "yolov5s.yaml").read_text())


def yolo11n(stock=False):
    d = yaml.safe_load((MODEL_YAMLS / "ultralytics" / "yolo11n-cbam.yaml").read_text())
    if stock:  # the stock rows (ultralytics' own parser builds them, after our checks)
        d["backbone"] = [row for row in d["backbone"] if row[2] != "CBAM"]
        d["backbone"][-2:] = [[-1, 1, "SPPF", [1024, 5]], [-1, 2, "C2PSA", [1024]]]
        d["head"] = [[-1, 1, "nn.Upsample", [None, 2, "nearest"]], [[-1, 6], 1, "Concat", [1]],
                     [-1, 2, "C3k2", [512, False]], [[-1], 1, "Detect", ["nc"]]]
    d["scale"] = "n"
    return d


def build_yolov5(d):
    from yolo_attn.engines.yolov5 import parser

    return parser.parse_model(d, [3])


def build_ultralytics(d):
    from yolo_attn.engines.ultralytics.model import build_model

    return build_model(d)


def refused(build, d, match, seconds=5):
    t = time.perf_counter()
    with pytest.raises(ModelConfigError, match=match):
        within(20, build, d)
    assert time.perf_counter() - t < seconds


def row(d, section, k):
    return d[section][k]


@pytest.mark.parametrize("stock", [False, True])
def test_ultralytics_alias_bomb_and_self_reference(stock):
    d = yolo11n(stock)
    d["backbone"][2][3] = [256, yaml.safe_load(BOMB)["i"]]
    refused(build_ultralytics, d, r"more than 100,000 values once its YAML aliases")
    d = yolo11n(stock)
    d["head"][0][3] = yaml.safe_load("x: &x [1, *x]")["x"]
    refused(build_ultralytics, d, r"anchor that contains itself")


@pytest.mark.parametrize("k", [1, 5])
def test_ultralytics_repeats_on_a_stock_row_and_on_attention(k):
    d = yolo11n()
    assert d["backbone"][5][2] == "CBAM"
    d["backbone"][k][1] = 100_000_000
    refused(build_ultralytics, d, rf"layer {k} \(backbone row {k}\), {d['backbone'][k][2]}: 'number' 100000000 .*"
                                  rf"more than 100 times")


@pytest.mark.parametrize("value, match", [
    ([float("inf"), 0.25, 1024], "'scales: n depth: inf'"), ([0.5, float("nan"), 1024], "'scales: n width: nan'"),
    (["half", 0.25, 1024], "'scales: n depth: 'half''"), ([0.5, -0.25, 1024], "'scales: n width: -0.25'"),
    ([0.5, 0, 1024], "'scales: n width: 0'"), ([0.5, 0.25, float("inf")], "'scales: n max_channels: inf'"),
    ([0.5, 0.25], r"'scales: 'n'': expected \[depth, width, max_channels\]"),
])
@pytest.mark.parametrize("stock", [False, True])
def test_ultralytics_scales_values(value, match, stock):
    d = yolo11n(stock)
    d["scales"]["n"] = value
    refused(build_ultralytics, d, match)


@pytest.mark.parametrize("name", ["nn.Module", "nn.ModuleDict", "nn.ModuleList", "nn.Sequential"])
def test_container_rows_in_both_engines(name):
    d = yolo11n()
    d["head"][0] = [-1, 1, name, []]
    refused(build_ultralytics, d, rf"layer 14 \(head row 0\), {name}: {name} is a container or base class")
    d = yolov5s()
    d["head"][1] = [-1, 1, name, []]
    refused(build_yolov5, d, rf"layer 11 \(head row 1\), {name}: {name} is a container or base class")


def test_deep_nesting_and_an_empty_head_in_both_engines():
    deep = 1
    for _ in range(40):
        deep = [deep]
    for build, d in ((build_ultralytics, yolo11n()), (build_yolov5, yolov5s())):
        d["head"][0][3] = [deep]
        refused(build, d, r"nested more than 16 deep")
    for build, d in ((build_ultralytics, yolo11n()), (build_yolov5, yolov5s())):
        d["head"] = []
        refused(build, d, r"'head:' is empty")


@pytest.mark.parametrize("stock", [False, True])
def test_ultralytics_huge_channels_and_classes(stock):
    d = yolo11n(stock)
    d["backbone"][1][3] = [10 ** 9, 3, 2]
    refused(build_ultralytics, d, r"layer 1 \(backbone row 1\), Conv: the arg 1,000,000,000 is larger than any layer")
    d = yolo11n(stock)
    d["backbone"][1] = [-1, 1, "nn.ZeroPad2d", [100_000]]  # a torch layer: no channel rule, no shape check there
    refused(build_ultralytics, d, r"layer 1 \(backbone row 1\), nn.ZeroPad2d: the arg 100,000 is larger than any "
                                  r"layer takes .*at most 16,384")
    d = yolo11n(stock)
    d["head"][0][3] = [None, 10_000, "nearest"]  # ultralytics checks no Upsample args itself
    refused(build_ultralytics, d, r"layer \d+ \(head row 0\), nn.Upsample: nn.Upsample scale_factor 10000 must be")
    d = yolo11n(stock)
    d["nc"] = 10 ** 9
    refused(build_ultralytics, d, r"'nc: 1000000000'")
    d = yolo11n(stock)
    del d["scales"], d["scale"]  # no max_channels cap: the estimate stops it
    d["backbone"][1][3] = [500_000, 3, 2]
    refused(build_ultralytics, d, r"layer 1 \(backbone row 1\), Conv: the rows up to this one would hold about")


@pytest.mark.parametrize("stock", [False, True])
def test_ultralytics_sizes_within_the_bounds_are_measured_before_memory(stock, monkeypatch):
    """A row within every YAML bound can still make gigabytes (padding 16,384 on each side): the meta-device pass
    refuses it, naming the row, before anything is allocated; and it counts the parameters (here against a budget
    lowered below yolo11n's 2.6M)."""
    from yolo_attn.engines import shapes

    d = yolo11n(stock)
    d["backbone"][1] = [-1, 1, "nn.ZeroPad2d", [16_384]]
    refused(build_ultralytics, d, r"layer 1 \(backbone row 1\), nn.ZeroPad2d: gives 17,213,440,000 values for a "
                                  r"64×64 image")
    monkeypatch.setattr(shapes, "MAX_PARAMS", 1_000_000)
    refused(build_ultralytics, yolo11n(stock), r"parameters \(the model [\d,]+\); yolo-attn refuses models above "
                                               r"1,000,000")


def test_a_chain_of_2000_members_repeated_100_times_in_yolov5():
    d = yolov5s()
    d["backbone"].insert(5, [-1, 100, "Chain", ["simam"] * 2000])
    for r in d["backbone"][6:] + d["head"]:
        r[0] = [x + 1 if x > 4 else x for x in r[0]] if isinstance(r[0], list) else r[0]
    refused(build_yolov5, d, r"layer 5 \(backbone row 5\), Chain: the rows up to this one build more than 5,000 "
                             r"layers")


def test_a_torchvision_row_whose_weights_are_not_cached_is_refused_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty hub cache
    d = yolo11n(stock=True)
    d["backbone"][0] = [-1, 1, "TorchVision", [768, "convnext_tiny", "DEFAULT", True, 2]]
    refused(build_ultralytics, d, r"layer 0 \(backbone row 0\), TorchVision: building it downloads torchvision's "
                                  r"convnext_tiny weights \(https://.*\), which are not in the torch hub cache")
    d["backbone"][0][3] = [768, "no_such_net"]
    refused(build_ultralytics, d, r"TorchVision takes \[channels, model, weights, ...\]")


def test_the_shipped_yamls_are_far_inside_every_bound():
    """Every shipped model YAML, and the largest stock ones, pass; the bounds' comments are true of them."""
    import ultralytics
    import yolov5

    files = sorted(MODEL_YAMLS.rglob("*.yaml"))
    files += [Path(yolov5.__file__).parent / "models" / "hub" / "yolov5x6.yaml"]
    files += sorted((Path(ultralytics.__file__).parent / "cfg" / "models").rglob("*.yaml"))
    for file in files:
        text = file.read_text()
        d = yaml.safe_load(text)
        if isinstance(d, dict) and "backbone" in d and "TorchVision" not in text:  # (downloads: tested above)
            bounds.check_model_yaml(d)


# --- fuzz: mutated ultralytics model YAMLs ---------------------------------------------------------------------
POOL = [-1, 0, 1, 2, 3, 64, 1024, 10 ** 6, 10 ** 9, -(10 ** 9), 0.5, -0.5, 1e308, float("inf"), float("nan"), True,
        None, "", "x", "nearest", "nc", "CBAM", "SE", "Conv", "C3k2", "Concat", "nn.Upsample", "nn.Module", "Detect",
        "TorchVision", "Chain", [], [1], [-1, 4], [[1, 2]], {}, {"rd_ratio": 2}, {"x": 1}]


def mutate(d, rng):
    d = copy.deepcopy(d)
    rows = d["backbone"] + d["head"]
    for _ in range(rng.randint(1, 3)):
        r = rng.choice(rows)
        k = rng.randrange(4)
        if k == 3 and rng.random() < 0.7 and r[3]:
            r[3][rng.randrange(len(r[3]))] = rng.choice(POOL)
        elif k == 3:
            r[3] = [rng.choice(POOL) for _ in range(rng.randrange(3))]
        else:
            r[k] = rng.choice(POOL)
    if rng.random() < 0.2:
        d["scales"]["n"][rng.randrange(3)] = rng.choice(POOL)
    if rng.random() < 0.1:
        d[rng.choice(["nc", "scale", "scales", "head"])] = rng.choice(POOL)
    return d


@pytest.mark.slow
def test_fuzz_mutated_ultralytics_yamls_give_a_model_or_a_model_config_error():
    rng = random.Random(2222)
    outcomes = {"built": 0, "refused": 0}
    for i in range(40):
        d = mutate(yolo11n(stock=i % 2 == 1), rng)
        t = time.perf_counter()
        try:
            within(20, build_ultralytics, d)
            outcomes["built"] += 1
        except ModelConfigError as e:
            assert str(e).strip() and "Traceback" not in str(e)
            outcomes["refused"] += 1
        except Exception as e:  # noqa: BLE001
            pytest.fail(f"{type(e).__name__}: {e} for rows {d.get('backbone')} {d.get('head')}")
        assert time.perf_counter() - t < 20
    assert outcomes["refused"] > 10 and outcomes["built"] > 0, outcomes
