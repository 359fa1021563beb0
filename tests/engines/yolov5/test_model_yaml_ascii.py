"""yolov5 reads a model YAML file as ASCII and drops every other character: a file whose data that would change is
refused with the line named (comments may hold any text)."""
import re

import pytest
import yaml

from yolo_attn.engines.yolov5.model import check_readable_as_ascii
from yolo_attn.errors import ModelConfigError
from yolo_attn.paths import MODEL_YAMLS


def test_a_non_ascii_layer_name_is_refused_naming_the_line(tmp_path):
    d = yaml.safe_load((MODEL_YAMLS / "yolov5s-cbam.yaml").read_text())
    text = yaml.safe_dump(d, sort_keys=False).replace("CBAM", "ＣＢＡＭ", 1)
    cfg = tmp_path / "wide.yaml"
    cfg.write_text(text, encoding="utf-8")
    assert yaml.safe_load(text.encode("ascii", "ignore").decode()) != yaml.safe_load(text)  # the symptom
    with pytest.raises(ModelConfigError, match=r"wide.yaml, line \d+: .*ＣＢＡＭ.* outside ASCII") as e:
        check_readable_as_ascii(cfg)
    assert "write layer names, numbers and keys in ASCII" in str(e.value)


def test_a_hash_inside_a_quoted_value_still_names_the_line(tmp_path):
    cfg = tmp_path / "quoted.yaml"
    cfg.write_text((MODEL_YAMLS / "yolov5s-cbam.yaml").read_text() + 'note: "x#ＣＢＡＭ"  # 注意\n', encoding="utf-8")
    with pytest.raises(ModelConfigError, match=r"quoted.yaml, line \d+: 'note: \"x#ＣＢＡＭ\"  # 注意'"):
        check_readable_as_ascii(cfg)


def test_comments_in_any_script_and_every_shipped_yaml_pass(tmp_path):
    cfg = tmp_path / "commented.yaml"
    cfg.write_text("# Größe × Breite —注意\n" + (MODEL_YAMLS / "yolov5s-cbam.yaml").read_text(), encoding="utf-8")
    check_readable_as_ascii(cfg)
    for shipped in sorted(MODEL_YAMLS.glob("*.yaml")):
        check_readable_as_ascii(shipped)


def test_train_refuses_it_before_yolov5_runs(tmp_path):
    from yolo_attn.cli import train
    from yolo_attn.cli.pipeline import run_cli

    d = yaml.safe_load((MODEL_YAMLS / "yolov5s-cbam.yaml").read_text())
    cfg = tmp_path / "wide.yaml"
    cfg.write_text(yaml.safe_dump(d, sort_keys=False).replace("CBAM", "ＣＢＡＭ", 1), encoding="utf-8")
    assert run_cli(train.main, ["--cfg", str(cfg), "--project", str(tmp_path / "runs")]) == 2
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("text, match", [
    ("nc: 2\nbackbone: [[-1, 1, Conv, [64, 3]]\nhead: [\n", r"bad.yaml: not valid YAML at line \d+, column \d+"),
    ("nc: 2\nbackbone: !!python/object/apply:os.system ['touch {marker}']\nhead: []\n",
     r"bad.yaml: !!python/object/apply:os.system \(line 2, column 11\) is refused"),
])
def test_train_refuses_a_yaml_syntax_error_or_a_python_tag_with_a_message(tmp_path, capsys, text, match):
    """Issue 22: given to train, these were yolov5's yaml traceback."""
    from yolo_attn.cli import train
    from yolo_attn.cli.pipeline import run_cli

    marker = tmp_path / "PWNED"
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text.format(marker=marker))
    assert run_cli(train.main, ["--cfg", str(cfg), "--project", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert re.search(match, err) and "Traceback" not in err, err
    assert not (tmp_path / "runs").exists() and not marker.exists()
