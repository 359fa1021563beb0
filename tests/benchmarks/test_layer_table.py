"""The README's layer table: generated from the registry and the shipped YAMLs, numbers checked independently."""
import re

import pytest

import yolo_attn
from yolo_attn.modules import SE
from yolo_attn.benchmarks import layer_table as docs


@pytest.fixture(scope="module")
def table():
    return docs.layer_table()


def _row(table, name):
    return next(line for line in table.splitlines() if line.startswith(f"| `{name}"))


def test_every_registered_layer_has_one_row_between_the_markers(table):
    lines = table.splitlines()
    assert lines[0] == docs.BEGIN and lines[-1] == docs.END
    body = [line for line in lines if line.startswith("| `")]
    assert [re.match(r"\| `([^` /]+)", line).group(1) for line in body] == yolo_attn.layer_names()
    for spec in yolo_attn.registered_layers():
        row = _row(table, spec.name)
        assert spec.paper in row
        for alias in spec.aliases:
            assert f" / {alias}" in row


def test_yaml_rows_are_the_ones_in_the_shipped_files(table):
    from pathlib import Path

    shipped = Path(__file__).resolve().parents[2] / "model_yamls"
    for spec in yolo_attn.registered_layers():
        row = _row(table, spec.name)
        yaml_row = re.search(r"\| `(\[[^`]*\])`", row).group(1)
        if spec.name == "Chain":
            assert yaml_row == "[-1, 1, Chain, [se, cbam]]" and "sum of its members" in row
            continue
        file = f"yolov5s-{spec.name.lower()}.yaml"
        assert f"(`{file}`)" in row
        assert f"{yaml_row}," in (shipped / file).read_text()


def test_params_column_matches_the_modules_at_their_yolov5s_widths(table):
    se = sum(sum(p.numel() for p in SE(c).parameters()) for c in (128, 256, 512))  # after the C3s at P3, P4, P5
    assert se == 43_960 and "| +43,960 |" in _row(table, "SE")
    assert "| +384 |" in _row(table, "SGE")  # 2 parameters per group, 64 groups, three places
    assert "7,235,389" in table and "stock 16.43" in table  # yolov5s: 7,235,389 params, 16.4 GFLOPs fused


def test_cost_column_counts_the_nonlocal_affinity(table):
    # P5 of yolov5s at 640 px: 20×20 positions, C = 512, C' = 256: four 1x1 convs + two (HW)²·C' matrix products
    hw, c, ci = 400, 512, 256
    flops = 2 * (4 * c * ci * hw + 2 * hw * hw * ci)
    assert f"({flops / 1e9:+.4f})" in _row(table, "NonLocal")
    assert _row(table, "NonLocal").endswith("| 17.02 (+0.5833) |")


def test_model_cost_is_yolov5s_own_figure():
    params, flops = docs.model_cost(docs.variant_dict("yolov5s.yaml"))
    assert params == 7_235_389 and round(flops / 1e9, 1) == 16.4
