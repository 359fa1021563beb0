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


def test_layers_markdown_is_the_readme_table(capsys):
    from pathlib import Path

    from yolo_attn.benchmarks.layer_table import layer_table

    with pytest.raises(SystemExit) as e:
        cli(["layers", "--markdown"])
    assert e.value.code == 0
    table = capsys.readouterr().out.strip()
    assert table == layer_table()
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert table in readme, "README's layer table is stale: paste `yolo-attn layers --markdown` into it"
