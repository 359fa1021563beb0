"""The shipped model_yamls/ultralytics/ are exactly what the generator makes from ultralytics' stock YAMLs, the
baselines are the stock models and each variant puts its layers where its header says."""
from pathlib import Path

import pytest

import yolo_attn  # noqa: F401
from yolo_attn.model_yaml import ultralytics_variants as uv
from yolo_attn.model_yaml.edit import load_model_yaml

FOLDER = Path(__file__).resolve().parents[2] / "model_yamls" / "ultralytics"
def _build(name, nc=4):
    from ultralytics.nn.tasks import DetectionModel

    return DetectionModel(str(FOLDER / name), nc=nc, verbose=False)


@pytest.fixture
def quiet_ultralytics():
    import logging

    from ultralytics.utils import LOGGER

    level = LOGGER.level
    LOGGER.setLevel(logging.WARNING)
    yield
    LOGGER.setLevel(level)


REQUIRED = {"yolo11n.yaml", "yolo11n-cbam.yaml", "yolo11n-se.yaml", "yolo11n-coordatt.yaml", "yolo11n-eca.yaml",
            "yolo11n-aff.yaml", "yolov8n-cbam.yaml", "yolov5su-cbam.yaml", "yolo26n.yaml", "yolo12n.yaml",
            *(f"yolo26n-{x}.yaml" for x in ("cbam", "se", "coordatt", "ema", "simam")), "yolo12n-cbam.yaml",
            "yolo12n-se.yaml", "yolo26n-c3k2cbam.yaml", "yolo26n-c3k2ema.yaml", "yolo26n-c2psa-shsa.yaml",
            "yolo11n-c3k2cbam.yaml", "yolo12n-a2c2f-cga.yaml"}


def test_the_shipped_files_are_exactly_the_variants():
    assert sorted(p.name for p in FOLDER.iterdir()) == sorted(uv.variants())
    assert REQUIRED <= set(uv.variants())


@pytest.mark.parametrize("name", sorted(uv.variants()))
def test_shipped_file_equals_the_regenerated_text(name):
    assert (FOLDER / name).read_bytes() == uv.render(name).encode("utf-8"), (
        f"model_yamls/ultralytics/{name} differs from the generator; regenerate with "
        f"`python -m yolo_attn.model_yaml.ultralytics_variants`")


def test_write_all_writes_every_variant(tmp_path):
    assert uv.write_all(tmp_path) == sorted(uv.variants())
    assert all((tmp_path / n).read_bytes() == (FOLDER / n).read_bytes() for n in uv.variants())


@pytest.mark.parametrize("name, family", [("yolo11n.yaml", "yolo11"), ("yolov8n.yaml", "yolov8"),
                                          ("yolov5su.yaml", "yolov5u"), ("yolo26n.yaml", "yolo26"),
                                          ("yolo12n.yaml", "yolo12")])
def test_baselines_are_the_stock_yamls(name, family, quiet_ultralytics):
    """Same model dict as ultralytics' file, and the same model as ultralytics builds from its own name."""
    from ultralytics import YOLO
    from ultralytics.nn.tasks import DetectionModel

    assert load_model_yaml(FOLDER / name) == load_model_yaml(uv.stock_yaml(family))
    ours = DetectionModel(str(FOLDER / name), verbose=False)
    stock = YOLO(name).model
    assert [(k, v.shape) for k, v in ours.state_dict().items()] == [(k, v.shape) for k, v in stock.state_dict().items()]


@pytest.mark.parametrize("name, layer, rows, after", [
    ("yolo11n-cbam.yaml", "CBAM", [5, 8, 11], "C3k2"), ("yolo11n-se.yaml", "SE", [5, 8, 11], "C3k2"),
    ("yolo11n-eca.yaml", "ECA", [5, 8, 11], "C3k2"), ("yolo11n-coordatt.yaml", "CoordAtt", [5, 8, 11], "C3k2"),
    ("yolov8n-cbam.yaml", "CBAM", [5, 8, 11], "C2f"), ("yolov5su-cbam.yaml", "CBAM", [5, 8, 11], "C3"),
    ("yolo26n-cbam.yaml", "CBAM", [5, 8, 11], "C3k2"), ("yolo26n-se.yaml", "SE", [5, 8, 11], "C3k2"),
    ("yolo26n-coordatt.yaml", "CoordAtt", [5, 8, 11], "C3k2"), ("yolo26n-ema.yaml", "EMA", [5, 8, 11], "C3k2"),
    ("yolo26n-simam.yaml", "SimAM", [5, 8, 11], "C3k2"), ("yolo12n-cbam.yaml", "CBAM", [5, 8, 11], ("C3k2", "A2C2f")),
    ("yolo12n-se.yaml", "SE", [5, 8, 11], ("C3k2", "A2C2f")),
])
def test_stage_variants_place_the_layer_after_each_stage(name, layer, rows, after):
    d = load_model_yaml(FOLDER / name)
    all_rows = d["backbone"] + d["head"]
    assert [i for i, r in enumerate(all_rows) if r[2] == layer] == rows
    assert all(all_rows[i - 1][2] in (after if isinstance(after, tuple) else (after,)) for i in rows)
    stock = load_model_yaml(uv.stock_yaml(uv.variants()[name][0]))
    assert all_rows[-1][0] == [f + 3 for f in stock["head"][-1][0]]  # Detect reads the same rows, re-numbered


def test_yolo26_baseline_is_ultralytics_own_end_to_end_model(quiet_ultralytics):
    """The published count (ultralytics' yolo26.yaml, scale n: 2,572,280 parameters at nc=80) and the one-to-one
    branch (end2end: True, reg_max: 1) the stock file asks for; the stage variants keep it. (ultralytics 8.4.190
    builds both branches and infers with the one-to-many one plus NMS unless ``nms=False`` selects the other.)"""
    from ultralytics.nn.tasks import DetectionModel

    from yolo_attn.engines.ultralytics.model import build_model

    ours = DetectionModel(str(FOLDER / "yolo26n.yaml"), verbose=False)
    assert sum(p.numel() for p in ours.parameters()) == 2_572_280
    for name in ("yolo26n.yaml", "yolo26n-cbam.yaml"):
        head = build_model(FOLDER / name, nc=4).model[-1]
        assert head.one2one_cv2 is not None and head.reg_max == 1, name


@pytest.mark.parametrize("scale, width", [("s", 32), ("m", 64), ("l", 64), ("x", 96)])
def test_one_yaml_builds_at_every_scale(tmp_path, scale, width, quiet_ultralytics):
    """The scale letter in the file name picks the scale, as for ultralytics' own names."""
    path = tmp_path / f"yolo26{scale}-cbam.yaml"
    path.write_bytes((FOLDER / "yolo26n-cbam.yaml").read_bytes())
    from ultralytics.nn.tasks import DetectionModel

    model = DetectionModel(str(path), nc=4, verbose=False)
    assert model.model[0].conv.out_channels == width
    assert [type(m).__name__ for m in model.model].count("CBAM") == 3


def test_aff_replaces_only_the_equal_channel_concat(quiet_ultralytics):
    d = load_model_yaml(FOLDER / "yolo11n-aff.yaml")
    assert [(i, r[0]) for i, r in enumerate(d["backbone"] + d["head"]) if r[2] == "AFF"] == [(15, [-1, 4])]
    assert sum(r[2] == "Concat" for r in d["head"]) == 3
    model = _build("yolo11n-aff.yaml")
    assert model.model[15].np > 0 and model.model[16].cv1.conv.in_channels == 128  # the Concat gave 128 + 128


@pytest.mark.parametrize("name", sorted(uv.variants()))
def test_every_variant_builds_and_runs(name, quiet_ultralytics):
    import torch

    model = _build(name).eval()
    with torch.no_grad():
        y, _ = model(torch.rand(1, 3, 64, 96))
    assert y.shape[:2] == (1, 4 + 4)


# in-block variants: file -> (rows with {attn: X}, X and its hyper-parameters, the modules holding X, how many at n)
IN_BLOCK = {
    "yolo26n-c3k2cbam.yaml": ((4, 6, 8), "CBAM", "AttnBottleneck", 5),
    "yolo26n-c3k2ema.yaml": ((4, 6, 8), ["EMA", {"groups": 8}], "AttnBottleneck", 5),
    "yolo11n-c3k2cbam.yaml": ((4, 6, 8), "CBAM", "AttnBottleneck", 5),
    "yolo26n-c2psa-shsa.yaml": ((10,), ["SHSA", {"residual": False}], "PSABlock", 1),
    "yolo26n-c2psa-cga.yaml": ((10,), ["CGA", {"residual": False}], "PSABlock", 1),
    "yolo12n-a2c2f-cga.yaml": ((6, 8), ["CGA", {"residual": False}], "ABlock", 8),
}


def _inner(model):
    """(holder type, X type) of every attention inside a block."""
    from yolo_attn.registry import find_layer

    return [(type(m).__name__, type(m.attn).__name__) for m in model.modules()
            if hasattr(m, "attn") and find_layer(type(m.attn).__name__) is not None]


def test_in_block_variants_are_shipped():
    assert set(IN_BLOCK) <= set(uv.variants())
    assert {n for n in uv.variants() if uv.variants()[n][1].split("\n")[0].endswith(
        tuple(f"inside {b}." for b in ("C3k2", "C2PSA", "A2C2f")))} == set(IN_BLOCK)


@pytest.mark.parametrize("name", sorted(IN_BLOCK))
def test_in_block_variants_put_x_in_the_rows_their_header_names(name, quiet_ultralytics):
    rows, attn, holder, count = IN_BLOCK[name]
    d = load_model_yaml(FOLDER / name)
    stock = load_model_yaml(uv.stock_yaml(uv.variants()[name][0]))
    all_rows, stock_rows = d["backbone"] + d["head"], stock["backbone"] + stock["head"]
    assert [i for i, r in enumerate(all_rows) if r != stock_rows[i]] == list(rows)
    assert all(all_rows[i][3] == stock_rows[i][3] + [{"attn": attn}] for i in rows)
    header = " ".join(uv.variants()[name][1].split())
    assert f"rows {', '.join(map(str, rows))}" in header or f"row {rows[0]}" in header
    x = attn if isinstance(attn, str) else attn[0]
    assert _inner(_build(name)) == [(holder, x)] * count


@pytest.mark.parametrize("scale", [pytest.param(s, marks=pytest.mark.slow) if s in "lx" else s for s in "smlx"])
def test_in_block_variants_build_at_every_scale(tmp_path, scale, quiet_ultralytics):
    """Scale n: test_every_variant_builds_and_runs. EMA's groups (8) divide every bottleneck width, CGA / SHSA
    take every width of C2PSA and A2C2f."""
    from ultralytics.nn.tasks import DetectionModel

    for name, (_, attn, holder, _) in IN_BLOCK.items():
        path = tmp_path / name.replace("n-", f"{scale}-", 1)
        path.write_bytes((FOLDER / name).read_bytes())
        inner = _inner(DetectionModel(str(path), nc=4, verbose=False))
        assert inner and {h for h, _ in inner} == {holder}, (path.name, inner)
