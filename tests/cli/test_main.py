"""The ``yolo-attn`` entry point reaches every command module."""
import importlib

import pytest

from yolo_attn.cli.main import COMMANDS, cli


@pytest.mark.parametrize("name", [n for n, (module, _) in COMMANDS.items() if module])
def test_every_command_module_has_a_main(name):
    module = importlib.import_module(f"yolo_attn.cli.{COMMANDS[name][0]}")
    assert callable(module.main)


def test_unknown_command_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as e:
        cli(["trian"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "unknown command 'trian'" in err and "train" in err and "heatmap" in err


def test_generate_yamls_writes_every_variant_and_keeps_a_users_edits(tmp_path, capsys):
    from yolo_attn.model_yaml.variants import render, variants

    out = tmp_path / "yamls"
    with pytest.raises(SystemExit) as e:
        cli(["generate-yamls", "--out", str(out)])
    assert e.value.code == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(variants())
    edited = out / "yolov5s-cbam.yaml"
    edited.write_text(edited.read_text() + "# my note\n")
    with pytest.raises(SystemExit) as e:
        cli(["generate-yamls", "--out", str(out)])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "yolov5s-cbam.yaml" in err and "--force" in err and "Traceback" not in err
    assert edited.read_text().endswith("# my note\n")  # untouched
    with pytest.raises(SystemExit) as e:
        cli(["generate-yamls", "--out", str(out), "--force"])
    assert e.value.code == 0 and edited.read_text() == render("yolov5s-cbam.yaml")


def test_help_is_help_not_a_folder_name(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        cli(["generate-yamls", "--help"])
    assert e.value.code == 0 and "--force" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []


def test_train_help_lists_ours_and_yolov5s_flags(capsys):
    with pytest.raises(SystemExit) as e:
        cli(["train", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "--attention-init" in out and "--resume" in out  # ours
    assert "yolov5's train.py" in out and "--epochs" in out and "--batch-size" in out  # yolov5's, passed through
