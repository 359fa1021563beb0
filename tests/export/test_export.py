"""Export of every model_yamls/ variant through yolov5's own export.run, run in onnxruntime / torch.jit and compared
with the PyTorch model; the export command; the dynamo-exporter compatibility patch."""
import copy
import re
import inspect
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
import yaml

import yolo_attn  # noqa: F401
from yolo_attn.engines.yolov5.model import save_checkpoint
from yolo_attn.cli import export as export_cli
from yolo_attn.cli.pipeline import run_cli
from yolo_attn.parity import formats

REPO = Path(__file__).resolve().parents[2]
VARIANTS = sorted(p.stem for p in (REPO / "model_yamls").glob("*.yaml"))
TOLERANCE = 1e-4  # max |onnx - torch| / max |torch|
IMGSZ = 64


def randomize_norms(model, seed=0):
    """Random BN statistics and affine parameters (a fresh model's are 0/1: BN would be the identity, and a folded
    or dropped BN, e.g. after global pooling, would go unnoticed)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._NormBase) and m.running_mean is not None:
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.2)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return model


def build_checkpoint(variant, folder, quiet):
    """model_yamls/<variant>.yaml at nc=4 with random weights, saved as training's final best.pt (FP16 weights).
    Returns (checkpoint path, the FP32 model with exactly those weights, fused and in eval mode as yolov5 exports)."""
    from yolov5.models.yolo import Model

    torch.manual_seed(0)
    d = yaml.safe_load((REPO / "model_yamls" / f"{variant}.yaml").read_text())
    model = randomize_norms(Model(d, ch=3, nc=4)).eval()
    path = save_checkpoint(model, Path(folder) / variant / "best.pt", opt={"imgsz": IMGSZ})
    reference = copy.deepcopy(model).half().float().fuse().eval()  # the weights the file holds, fused like attempt_load
    return path, reference


def relative_difference(got, expected):
    assert got.shape == expected.shape, (got.shape, expected.shape)
    return float(np.abs(got - expected).max() / np.abs(expected).max())


def onnx_run(path, x):
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"images": x.numpy()})[0]


def torch_out(model, x):
    with torch.no_grad():
        return model(x)[0].numpy()


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_exports_to_onnx_and_matches_pytorch(variant, tmp_path, quiet_yolov5):
    from yolov5 import export

    path, reference = build_checkpoint(variant, tmp_path, quiet_yolov5)
    files = export.run(weights=str(path), include=["onnx"], imgsz=[IMGSZ], opset=12)  # export.run's own defaults
    assert files == [str(path.with_suffix(".onnx"))], f"{variant}: yolov5 reported an export failure"
    proto = onnx.load(files[0])
    assert {o.domain: o.version for o in proto.opset_import}.get("", None) == 12  # the opset yolov5 asked for
    assert not [n.op_type for n in proto.graph.node if n.domain not in ("", "ai.onnx")]  # standard ops only
    x = torch.rand(1, 3, IMGSZ, IMGSZ, generator=torch.Generator().manual_seed(1))
    expected = torch_out(reference, x)
    assert expected.shape == (1, 3 * (8 * 8 + 4 * 4 + 2 * 2), 5 + 4)  # 3 anchors on P3/P4/P5 at 64 px, nc=4
    diff = relative_difference(onnx_run(files[0], x), expected)
    print(f"{variant}: onnx max relative difference {diff:.1e}")
    assert diff <= TOLERANCE


@pytest.mark.slow
def test_export_command_dynamic_onnx_and_torchscript(tmp_path, quiet_yolov5, capsys):
    """The command (in-process): both formats, dynamic ONNX axes; then other batch sizes and (non-square) image sizes
    in onnxruntime. CoordAtt pools rows and columns separately and splits the result at the input height: the
    shape-dependent variant (scripts/detect.sh runs the scripts end to end, tests/cli/test_detect.py)."""
    path, reference = build_checkpoint("yolov5s-coordatt", tmp_path, quiet_yolov5)
    assert run_cli(export_cli.main, ["--weights", str(path), "--include", "onnx,torchscript", "--dynamic"]) == 0
    out = capsys.readouterr().out
    assert out.count("(ok, limit 0.0001)") == 2, out[-2000:]
    # both sizes reported, each with its difference: the training size (from the checkpoint) and a larger one
    assert re.search(r"onnxruntime vs PyTorch on 1x3x64x64 \d\.\de-\d\d, 2x3x96x128 \d\.\de-\d\d: max", out), out[-2000:]
    assert f"exported {path.with_suffix('.onnx')}" in out and f"exported {path.with_suffix('.torchscript')}" in out
    onnx_file, ts_file = path.with_suffix(".onnx"), path.with_suffix(".torchscript")
    dims = onnx.load(onnx_file).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", 3, "height", "width"]
    for shape in [(1, 3, 64, 64), (2, 3, 96, 128), (1, 3, 160, 96)]:
        x = torch.rand(shape, generator=torch.Generator().manual_seed(2))
        expected = torch_out(reference, x)
        assert relative_difference(onnx_run(onnx_file, x), expected) <= TOLERANCE, shape
    x = torch.rand(1, 3, IMGSZ, IMGSZ)  # the checkpoint's training size (opt.imgsz), the traced size
    scripted = torch.jit.load(str(ts_file))
    assert relative_difference(scripted(x)[0].detach().numpy(), torch_out(reference, x)) <= TOLERANCE


def test_export_command_refuses_what_it_cannot_export(tmp_path, capsys):
    garbage = tmp_path / "notes.pt"
    garbage.write_text("not a checkpoint")
    assert run_cli(export_cli.main, ["--weights", str(garbage)]) == 2
    err = capsys.readouterr().err
    assert f"{garbage} is not a yolov5/yolo-attn checkpoint: it is not a PyTorch checkpoint" in err
    assert "Traceback" not in err
    assert run_cli(export_cli.main, ["--weights", str(tmp_path / "missing.pt")]) == 2
    err = capsys.readouterr().err
    assert "missing.pt" in err and ("not found" in err or "does not exist" in err)
    opt, rest = export_cli.parser().parse(["--weights", "w.pt", "--include", "ONNX,torchscript", "--dynamic"])
    assert formats(opt.include) == ["onnx", "torchscript"] and rest == ["--dynamic"]
    with pytest.raises(yolo_attn.errors.UsageError, match="yolo-attn exports onnx and torchscript"):
        formats(["tflite"])


def test_export_command_refuses_half_where_yolov5_cannot_trace_it(tmp_path, quiet_yolov5, capsys):
    """yolov5 traces --half on a GPU only and at a fixed size: refused before yolov5 starts, with the fix (exit 2)."""
    path, _ = build_checkpoint("yolov5s-se", tmp_path, quiet_yolov5)
    assert run_cli(export_cli.main, ["--weights", str(path), "--half", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "--half: yolov5 traces a float16 model on a GPU only" in err and "--half --device 0" in err, err
    assert "Traceback" not in err and not path.with_suffix(".onnx").exists()
    if not torch.cuda.is_available():
        assert run_cli(export_cli.main, ["--weights", str(path), "--half"]) == 2
        assert "no CUDA GPU on this machine" in capsys.readouterr().err
    else:
        assert run_cli(export_cli.main, ["--weights", str(path), "--half", "--dynamic"]) == 2
        assert "--half with --dynamic" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------------------------
# compat: torch >= 2.9 exports with the dynamo exporter unless told otherwise


def test_yolov5_export_calls_get_the_torchscript_exporter(monkeypatch):
    """torch >= 2.9 defaults to the dynamo exporter, which implements opset >= 18 only: yolov5's opset 12/17 requests
    were exported as 18 after a failed down-conversion (the opset assertion above catches that). yolov5's export
    module gets dynamo=False unless it chooses; torch.onnx.export itself is unchanged for every other caller."""
    import yolov5.export as yolov5_export

    real = torch.onnx.export
    assert real.__module__.startswith("torch.onnx") and inspect.signature(real).parameters["dynamo"].default is True
    calls = []
    monkeypatch.setattr(torch.onnx, "export", lambda *a, **k: calls.append(k.get("dynamo", "default")))
    from yolo_attn.engines import yolov5 as engine

    engine.uninstall()
    engine.install()  # re-wraps the recording stand-in (monkeypatch restores the real export afterwards)
    try:
        yolov5_export.torch.onnx.export(None, (), "x.onnx")  # from inside yolov5
        yolov5_export.torch.onnx.export(None, (), "x.onnx", dynamo=True)  # from inside yolov5, choosing
        torch.onnx.export(None, (), "y.onnx")  # from anywhere else
    finally:
        monkeypatch.undo()
        engine.uninstall()
        engine.install()
    assert calls == [False, True, "default"]
    assert yolov5_export.torch.onnx.export.__wrapped__ is real
