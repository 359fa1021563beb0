"""The layer table of docs/layers.md: generated from the registry and the shipped YAMLs, numbers checked independently."""
import contextlib
import io
import re
from pathlib import Path

import pytest

import yolo_attn
from yolo_attn.cli.main import cli
from yolo_attn.modules import SE
from yolo_attn.benchmarks import layer_table as docs

pytestmark = pytest.mark.slow  # builds every shipped model and counts its FLOPs (~20 s)


@pytest.fixture(scope="module")
def table():
    """The table as ``yolo-attn layers --markdown`` prints it (computed once for this file)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as e:
        cli(["layers", "--markdown"])
    assert e.value.code == 0
    return out.getvalue().strip()


def test_the_printed_table_is_the_one_in_docs_layers_md(table):
    assert table.startswith(docs.BEGIN)
    doc = (Path(__file__).resolve().parents[2] / "docs" / "layers.md").read_text()
    assert table in doc, "the layer table of docs/layers.md is stale: paste `yolo-attn layers --markdown` into it"


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
    assert "7,235,389" in table and "stock 16.50" in table  # yolov5s: 7,235,389 params, 16.50 GFLOPs by the bench rule


def test_cost_column_counts_the_nonlocal_block_by_the_bench_rule(table):
    # P5 of yolov5s at 640 px: 20×20 positions, C = 512, C' = 256. Four 1x1 convs (θ with a bias), the two
    # (HW)²·C' matrix products, the 1/sqrt(C') scaling of the (HW)² logits (1 per element; use_scale, the default),
    # the softmax over (HW)² (3 per element), the block's BN (2 per element; yolov5's fuse() folds only its own
    # Conv+BN) and the residual add (1 per element).
    hw, c, ci = 400, 512, 256
    flops = 2 * 4 * c * ci * hw + ci * hw + 2 * 2 * hw * hw * ci + hw * hw + 3 * hw * hw + 2 * c * hw + c * hw
    assert f"({flops / 1e9:+.4f})" in _row(table, "NonLocal")
    assert _row(table, "NonLocal").endswith("| 17.08 (+0.5846) |")


def test_model_cost_is_the_bench_figure_for_yolov5s():
    params, flops = docs.model_cost(docs.variant_dict("yolov5s.yaml"))
    assert params == 7_235_389 and round(flops / 1e9, 2) == 16.50  # convs 16.43 + biases, activations, BN...


def test_layer_table_and_bench_print_the_same_figures(table, tmp_path):
    """One FLOP counter: scripts/bench.sh at 640 px and the docs/layers.md table agree for the same models."""
    import json

    from yolo_attn.cli import bench

    bench.main(["--quick", "--imgsz", "640", "--rounds", "1", "--cfgs", "yolov5s-cbam.yaml", "yolov5s-nonlocal.yaml",
                "--device", "cpu", "--threads", "1", "--out", str(tmp_path)])
    rows = {r["model"]: r for r in json.loads((tmp_path / "ablation.json").read_text())["rows"]}
    base = rows["yolov5s"]
    assert f"stock {base['gflops']:.2f}" in table and f"yolov5s ({base['params']:,} at nc=80)" in table
    for layer in ("CBAM", "NonLocal"):
        row = rows[f"yolov5s-{layer.lower()}"]
        params, flops = docs.model_cost(docs.variant_dict(f"yolov5s-{layer.lower()}.yaml"))
        assert (params, flops / 1e9) == (row["params"], pytest.approx(row["gflops"], abs=1e-12))
        cells = f"| {row['params'] - base['params']:+,} | {row['gflops']:.2f} ({row['gflops'] - base['gflops']:+.4f}) |"
        assert _row(table, layer).endswith(cells)
