"""`yolo-attn insert`: the shipped variants come out of it, and misuse is refused clearly."""
import pytest
import yaml

from yolo_attn.cli.pipeline import run_cli
from yolo_attn.cli.insert import main
from yolo_attn.paths import MODEL_YAMLS


def _rows(path):
    d = yaml.safe_load(path.read_text())
    return {k: v for k, v in d.items()}


@pytest.mark.parametrize("layer,shipped", [("cbam", "yolov5s-cbam.yaml"), ("SE", "yolov5s-se.yaml"),
                                           ("coordatt", "yolov5s-coordatt.yaml"), ("eca", "yolov5s-eca.yaml")])
def test_insert_reproduces_the_shipped_variant(tmp_path, layer, shipped):
    out = tmp_path / "v.yaml"
    assert run_cli(main, ["--base", "yolov5s.yaml", "--layer", layer, "--after", "4", "6", "8", "--out", str(out)]) == 0
    assert _rows(out) == _rows(MODEL_YAMLS / shipped)
    assert "inserted after rows 4, 6, 8" in out.read_text().splitlines()[0]


def test_replace_concat_reproduces_the_aff_variant(tmp_path):
    out = tmp_path / "aff.yaml"
    assert run_cli(main, ["--base", "yolov5s.yaml", "--replace-concat", "aff", "--out", str(out)]) == 0
    assert _rows(out) == _rows(MODEL_YAMLS / "yolov5s-aff.yaml")


def test_args_are_passed_as_hyper_parameters(tmp_path):
    out = tmp_path / "v.yaml"
    assert run_cli(main, ["--base", "yolov5s.yaml", "--layer", "cbam", "--after", "9", "--args", "[{rd_ratio: 0.125}]",
                          "--out", str(out)]) == 0
    d = yaml.safe_load(out.read_text())
    assert d["backbone"][10] == [-1, 1, "CBAM", [{"rd_ratio": 0.125}]]
    assert d["head"][-1][0] == [17 + 1, 20 + 1, 23 + 1]


@pytest.mark.parametrize("argv,needle", [
    (["--layer", "aff", "--after", "4"], "not a registered one-input, channel-keeping layer"),
    (["--replace-concat", "cbam"], "not a registered two-input fusion layer"),
    (["--replace-concat", "attngate"], "not a registered two-input fusion layer"),
    (["--layer", "selectivekernel", "--after", "4"], "not a registered one-input, channel-keeping layer"),
    (["--layer", "cbam"], "--after"),
    (["--layer", "cbam", "--after", "24"], "must stay last"),
    (["--layer", "cbam", "--after", "4", "--args", "0.5"], "must be a YAML list"),
])
def test_misuse_is_refused_with_a_message(tmp_path, capsys, argv, needle):
    out = tmp_path / "v.yaml"
    assert run_cli(main, ["--base", "yolov5s.yaml", *argv, "--out", str(out)]) == 2
    assert needle in capsys.readouterr().err
    assert not out.exists()


def test_never_overwrites_without_force(tmp_path, capsys):
    out = tmp_path / "v.yaml"
    out.write_text("mine")
    assert run_cli(main, ["--base", "yolov5s.yaml", "--layer", "se", "--after", "4", "--out", str(out)]) == 2
    assert out.read_text() == "mine" and "exists" in capsys.readouterr().err
