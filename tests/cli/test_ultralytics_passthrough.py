"""``yolo-attn ultralytics ARGS``: ultralytics' own command line with the layers installed; shipped YAMLs by name;
its argument errors as one message (exit 2), not a traceback."""
import pytest

import yolo_attn  # noqa: F401
from yolo_attn import paths
from yolo_attn.cli.main import cli
from yolo_attn.engines.ultralytics.commands.tool import with_shipped_models
from yolo_attn.runs import resolve_data

SHIPPED = paths.MODEL_YAMLS / "ultralytics"


def test_shipped_names_become_paths_and_the_rest_is_left_alone(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    got = with_shipped_models(["train", "model=yolo26n-cbam.yaml", "data=coco8.yaml", "epochs=3"])
    assert got == ["train", f"model={(SHIPPED / 'yolo26n-cbam.yaml').resolve()}", "data=coco8.yaml", "epochs=3"]
    (tmp_path / "yolo26n-cbam.yaml").write_text("mine")  # a file of that name here is the user's: left to ultralytics
    kept = ["model=yolo26n-cbam.yaml", "model=yolo26n.pt", "model=yolov8s.yaml", "model=sub/yolo26n-se.yaml"]
    assert with_shipped_models(kept) == kept


@pytest.mark.parametrize("argv, expected", [
    (["train", "model=yolo26n-cbam.yaml", "epoch=1"], "'epoch' is not a valid YOLO argument"),
    (["trian", "model=yolo26n-cbam.yaml"], "'trian' is not a valid YOLO argument"),
    (["train", "model=yolo26n-cbam.yaml", "imgsz"], "'imgsz' is a valid YOLO argument but is missing an '=' sign"),
])
def test_a_bad_argument_is_a_message_not_a_traceback(argv, expected, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        cli(["ultralytics", *argv])
    err = capsys.readouterr().err
    assert e.value.code == 2 and expected in err and "Traceback" not in err, err
    assert "Arguments received" not in err  # ultralytics' whole usage text is left out
    assert not (tmp_path / "runs").exists()


def test_no_arguments_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        cli(["ultralytics"])
    assert e.value.code == 2 and "yolo-attn ultralytics train model=" in capsys.readouterr().err


@pytest.mark.slow
def test_ultralytics_train_with_a_shipped_attention_yaml(run_cli, tmp_path):
    """``yolo train model=yolo26n-cbam.yaml ...`` in a fresh process: ultralytics' run folder, a checkpoint whose
    model has the three CBAM rows of the shipped file."""
    from yolo_attn import engines

    r = run_cli("ultralytics", "train", "model=yolo26n-cbam.yaml", f"data={resolve_data(None)}", "epochs=1",
                "imgsz=64", "batch=8", "fraction=0.05", "workers=0", "device=cpu", "val=False", "plots=False",
                f"project={tmp_path / 'runs'}", "name=cbam", timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    best = tmp_path / "runs" / "cbam" / "weights" / "last.pt"
    model, _ = engines.get("ultralytics").load_model(best)
    assert [type(m).__name__ for m in model.model].count("CBAM") == 3
    assert model.model[-1].one2one_cv2 is not None  # YOLO26's end-to-end branch, trained
