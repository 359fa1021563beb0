"""Issue 22 item 2: checkpoints are read as data. No module object of a checkpoint is made as the class it names;
the model is rebuilt from the YAML it stores and the saved weights are loaded into it. What the file says besides
tensors and a few checked plain values (a row's ``f``, the strides, a head's flags) does not reach the engine."""
import copy

import pytest
import torch
from torch import nn

from tiny_models import tiny_yolov5
from yolo_attn import checkpoints
from yolo_attn.checkpoints import load_checkpoint
from yolo_attn.checkpoints.saved import SavedObject
from yolo_attn.errors import UsageError


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = tiny_yolov5()
    with torch.no_grad():  # trained-looking statistics, so that a wrong wiring shows in the output
        for b in m.modules():
            if isinstance(b, nn.BatchNorm2d):
                b.running_mean.uniform_(-0.1, 0.1)
                b.running_var.uniform_(0.8, 1.2)
    m.names = {0: "cat", 1: "dog"}
    m.nc = 2
    return m.eval()


@pytest.fixture(scope="module")
def ultralytics_model():
    from yolo_attn.engines.ultralytics.model import build_model

    torch.manual_seed(0)
    m = build_model("yolo26n.yaml", nc=3).eval()
    with torch.no_grad():  # away from the head's initial biases, so that the output depends on the features
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    m.names, m.nc = {0: "a", 1: "b", 2: "c"}, 3
    return m


def out(m, size=64):
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = m.float().eval()(x)
    return y[0] if isinstance(y, (tuple, list)) else y


def save(tmp_path, m, name="x.pt", **extra):
    torch.save({"model": m, "epoch": -1, **extra}, tmp_path / name)
    return tmp_path / name


def refusal(path, *parts):
    with pytest.raises(UsageError) as e:
        load_checkpoint(path)
    message = str(e.value)
    assert f"refusing to load {path}" in message and "YOLO_ATTN_TRUST_CHECKPOINTS=1" in message, message
    for part in parts:
        assert part in message, message
    return message


def test_no_class_the_file_names_is_made_or_given_state(tmp_path, model, monkeypatch):
    """Unpickling never makes an object of a class the checkpoint names: nn.Module's ``__setstate__`` (what torch's
    unpickler calls on every module it makes) is not called while the file is unpickled, which gives inert records;
    the model still comes back whole, with the saved dtypes."""
    calls, unpickled = [], []
    original_setstate, original_unpickle = nn.Module.__setstate__, checkpoints._unpickle

    def recording_unpickle(*args):
        monkeypatch.setattr(nn.Module, "__setstate__", lambda self, state: calls.append(type(self)) or
                            original_setstate(self, state))
        try:
            ckpt = original_unpickle(*args)
        finally:
            monkeypatch.setattr(nn.Module, "__setstate__", original_setstate)
        unpickled.append(type(ckpt["model"]))
        return ckpt

    monkeypatch.setattr(checkpoints, "_unpickle", recording_unpickle)
    loaded = load_checkpoint(save(tmp_path, copy.deepcopy(model).half()))["model"]
    assert calls == [] and len(unpickled) == 1 and issubclass(unpickled[0], SavedObject)
    assert unpickled[0].saved_class == "yolov5.models.yolo.DetectionModel"
    assert type(loaded) is type(model)
    assert next(loaded.parameters()).dtype is torch.float16  # the saved dtypes are kept
    assert torch.equal(out(loaded), out(copy.deepcopy(model).half()))
    assert loaded.names == {0: "cat", 1: "dog"} and loaded.nc == 2


def test_wiring_and_strides_come_from_the_yaml_not_the_file(tmp_path, model):
    """A file that rewires a row (``f``: row 10 reads row 8, which ``save`` keeps) and doubles the strides: the
    model as the file gives it computes something else; the loaded model is the one its YAML builds."""
    tampered = copy.deepcopy(model)
    tampered.model[10].f = 8
    tampered.save = sorted({*tampered.save, 8})
    tampered.stride = tampered.stride * 2
    tampered.model[-1].stride = tampered.model[-1].stride * 2
    tampered.model[-1].export = True
    assert not torch.equal(out(copy.deepcopy(tampered))[0], out(model)[0])  # the file's own wiring differs
    loaded = load_checkpoint(save(tmp_path, tampered))["model"]
    assert loaded.model[10].f == -1 and 8 not in loaded.save and loaded.model[-1].export is False
    assert torch.equal(loaded.stride, model.stride)
    assert torch.equal(out(loaded), out(model))


@pytest.mark.parametrize("edit, says", [
    (lambda m: m.model.__setitem__(11, nn.Identity()),
     "holds a torch.nn.modules.linear.Identity at model.11, where its YAML builds "
     "torch.nn.modules.upsampling.Upsample"),
    (lambda m: m.model[0].add_module("extra", nn.ReLU()),
     "holds a torch.nn.modules.activation.ReLU at model.0.extra, which its YAML does not build"),
    (lambda m: m.model[0].__delattr__("bn"), "has no module at model.0.bn, where its YAML builds BatchNorm2d"),
    (lambda m: setattr(m.model[0].conv, "weight", nn.Parameter(torch.zeros(3, 3, 1, 1))),
     "holds weights that do not fit the model its YAML builds"),
    (lambda m: m.yaml["backbone"].__setitem__(0, [-1, 1, "NoSuchLayer", [8]]),
     "stores a model YAML that does not build"),
    (lambda m: m.__dict__.pop("yaml"), "stores no model YAML"),
    (lambda m: setattr(m, "nc", 5), "says it has 5 classes but its YAML builds a head for 2"),
    (lambda m: m.model[0].__dict__.__setitem__("_modules", 5),
     "model.0 (yolov5.models.common.Conv)._modules is a int value, not a dict"),  # the scan's refusal
    (lambda m: m.model[0].conv.__dict__["_parameters"].__setitem__("weight", 3),
     "has a _parameters at model.0.conv that is not a table of names to tensors"),
    (lambda m: m.model[0].bn.__dict__.__setitem__("_non_persistent_buffers_set", [1]),
     "has a _non_persistent_buffers_set at model.0.bn that is not a set"),
])
def test_a_model_that_is_not_what_its_yaml_builds_is_refused(tmp_path, model, edit, says):
    m = copy.deepcopy(model)
    edit(m)
    refusal(save(tmp_path, m), says)


def test_ema_and_model_are_both_rebuilt(tmp_path, model):
    other = copy.deepcopy(model)
    with torch.no_grad():
        other.model[0].conv.weight.mul_(2)
    ckpt = load_checkpoint(save(tmp_path, copy.deepcopy(model), ema=other))
    assert ckpt["model"] is not ckpt["ema"]
    assert torch.equal(ckpt["model"].model[0].conv.weight, model.model[0].conv.weight)
    assert torch.equal(ckpt["ema"].model[0].conv.weight, other.model[0].conv.weight)


def test_ultralytics_keeps_the_head_choice_and_refuses_bad_values(tmp_path, ultralytics_model):
    m = copy.deepcopy(ultralytics_model)
    m.end2end = True  # YOLO26's one-to-one branch, as a user selects it before saving
    m.model[-1].max_det = 50
    m.model[-1].export = True  # not carried: a flag of the file's choosing
    m.args = {"imgsz": 64}
    loaded = load_checkpoint(save(tmp_path, m, train_args={"imgsz": 64}))["model"]
    assert loaded.end2end is True and loaded.model[-1].max_det == 50 and loaded.model[-1].export is False
    assert loaded.args == {"imgsz": 64} and loaded.names == {0: "a", 1: "b", 2: "c"}
    assert torch.equal(out(loaded), out(m.model[-1].__setattr__("export", False) or m))
    bad = copy.deepcopy(ultralytics_model)
    bad.model[-1].max_det = "all"
    refusal(save(tmp_path, bad, "bad.pt"), "gives its head's max_det the value str 'all'")


@pytest.mark.parametrize("sync", ["torch", "yolo_attn"])
def test_a_sync_bn_checkpoint_loads_as_the_batch_norms_its_yaml_builds(tmp_path, sync):
    """DDP training with --sync-bn saves its batch norms converted (torch's SyncBatchNorm, or yolo-attn's conversion
    for CPU runs, which also turns MSCAM's PooledBatchNorm2d into a SyncPooledBatchNorm2d): they load into the batch
    norms the YAML builds, with the same weights and output; a synchronised BN where no BN is built is refused."""
    from yolo_attn.modules import sync_bn
    from yolo_attn.modules._common import PooledBatchNorm2d

    model = tiny_yolov5(cfg="yolov5s-mscam.yaml").eval()
    plain = (lambda bn: nn.SyncBatchNorm.convert_sync_batchnorm(bn)) if sync == "torch" else None
    synced = sync_bn.convert_sync_batchnorm(copy.deepcopy(model), plain)
    kinds = {type(m) for m in synced.modules()}
    assert sync_bn.SyncPooledBatchNorm2d in kinds and (nn.SyncBatchNorm if plain else sync_bn.SyncBatchNorm) in kinds
    loaded = load_checkpoint(save(tmp_path, synced))["model"]
    assert {type(m) for m in loaded.modules()} == {type(m) for m in model.modules()}
    assert any(type(m) is PooledBatchNorm2d for m in loaded.modules())
    assert torch.equal(out(loaded), out(model))
    synced.model[0].conv = sync_bn.SyncBatchNorm(synced.model[0].conv.out_channels)
    refusal(save(tmp_path, synced, "conv.pt"), "holds a yolo_attn.modules.sync_bn.SyncBatchNorm at model.0.conv, "
                                                "where its YAML builds torch.nn.modules.conv.Conv2d")


def test_the_engines_own_loaders_get_the_rebuilt_model(tmp_path, model, ultralytics_model):
    """yolov5's attempt_load (detect, val, export, hub) and ultralytics' load_checkpoint (YOLO(pt), pretrained=,
    resume, val, predict, export) read through the same loader: a rewired file computes what its YAML builds there
    too (row 10 made to read row 8, which gives the same channels at the same resolution in both models)."""
    from ultralytics.nn.tasks import load_checkpoint as ultralytics_load
    from yolov5.models.experimental import attempt_load

    for reference, name in ((model, "v5.pt"), (ultralytics_model, "ul.pt")):
        tampered = copy.deepcopy(reference)
        tampered.model[10].f, tampered.save = 8, sorted({*tampered.save, 8})
        assert not torch.equal(out(copy.deepcopy(tampered)), out(reference))
        path = str(save(tmp_path, tampered, name))
        loaded = attempt_load(path, device="cpu", fuse=False) if name == "v5.pt" else ultralytics_load(path)[0]
        assert loaded.model[10].f == -1 and torch.equal(out(loaded), out(reference))
