"""Issue 22's gadget: a checkpoint made only of NEWOBJ + BUILD of allowed classes (no call, no hook) whose model is
a yolov5 DetectMultiBackend with the TFLite flags set and an AutoShape as its interpreter's ``set_tensor``: detect
fetched a URL stored in the file. Refused, and so is every smaller step of it: a class that is never part of a
saved model, a module object anywhere but a model's ``_modules``, a model that is not a model class, a class named
through a module that only imports it."""

import pytest
import torch
from torch import nn

from checkpoint_gadgets import with_data_pkl
from tiny_models import tiny_yolov5
from yolo_attn.checkpoints import classes, load_checkpoint
from yolo_attn.errors import UsageError

@pytest.fixture(scope="module")
def model():
    return tiny_yolov5()


def empty(cls):
    """An object of ``cls`` as a pickle's NEWOBJ makes it, with nn.Module's own empty state (no __init__ of cls)."""
    obj = cls.__new__(cls)
    nn.Module.__init__(obj)
    return obj


def issue_gadget(url):
    """The issue's checkpoint: only NEWOBJ + BUILD of yolov5 classes."""
    from yolov5.models.common import AutoShape, DetectMultiBackend

    shape = empty(AutoShape)
    shape.model = empty(nn.Identity)
    interpreter = empty(nn.Identity)
    interpreter.__dict__["set_tensor"] = shape  # an attribute, not a submodule: what the scan did not look at
    backend = empty(DetectMultiBackend)
    backend.__dict__.update(pt=False, jit=False, dynamic=False, onnx=False, xml=False, engine=False, coreml=False,
                            saved_model=False, pb=False, tflite=True, edgetpu=False, tfjs=False, paddle=False,
                            triton=False, fp16=False, nhwc=True, stride=32, names={0: "a"},
                            input_details=[{"index": url, "dtype": "uint8"}], output_details=[],
                            interpreter=interpreter)
    return {"model": backend, "epoch": -1}


def refusal(path):
    with pytest.raises(UsageError) as e:
        load_checkpoint(path)
    message = str(e.value)
    assert f"refusing to load {path}" in message and "nothing of this file has run" in message
    return message


def test_the_issue_gadget_is_refused_by_name(tmp_path):
    torch.save(issue_gadget("http://127.0.0.1:9/pwned"), tmp_path / "gadget.pt")
    message = refusal(tmp_path / "gadget.pt")
    assert "yolov5.models.common.AutoShape, yolov5.models.common.DetectMultiBackend, which are never part of a " \
           "saved model" in message


def test_without_the_name_list_the_gadget_is_still_refused_by_where_its_modules_are(tmp_path, monkeypatch):
    """Every layer holds alone: with NOT_IN_A_CHECKPOINT emptied, the model is not a model class, and the module in
    an attribute is refused."""
    monkeypatch.setattr(classes, "NOT_IN_A_CHECKPOINT", frozenset())
    torch.save(issue_gadget("http://127.0.0.1:9/pwned"), tmp_path / "gadget.pt")
    assert "the checkpoint's 'model' is a yolov5.models.common.DetectMultiBackend object, which is not a model " \
           "class" in refusal(tmp_path / "gadget.pt")
    from yolov5.models.common import AutoShape

    inside = {"model": empty(nn.Identity)}
    inside["model"].__dict__["set_tensor"] = empty(AutoShape)
    torch.save(inside, tmp_path / "inside.pt")
    assert "is not a model class" in refusal(tmp_path / "inside.pt")


def test_a_real_model_with_a_module_in_an_attribute_is_refused(tmp_path, model):
    """Allowed classes only, the model a real DetectionModel: a module stored as a plain attribute (where yolov5 or
    ultralytics code might call it) instead of in _modules."""
    from yolov5.models.common import Conv

    hidden = type(model).__new__(type(model))
    hidden.__dict__.update(model.__dict__)
    hidden.__dict__["interpreter"] = Conv(3, 3)
    torch.save({"model": hidden, "epoch": -1}, tmp_path / "hidden.pt")
    assert "the checkpoint's 'model' (yolov5.models.yolo.DetectionModel).interpreter holds a " \
           "yolov5.models.common.Conv object; a model's modules are only in its _modules" in refusal(tmp_path /
                                                                                                      "hidden.pt")
    ok = type(model).__new__(type(model))
    ok.__dict__.update(model.__dict__)
    torch.save({"model": ok, "epoch": -1}, tmp_path / "ok.pt")
    assert load_checkpoint(tmp_path / "ok.pt")["model"] is not None  # the same model without it loads


@pytest.mark.parametrize("ckpt, match", [
    (lambda m: {"model": nn.Sequential(nn.Conv2d(3, 3, 1))}, r"'model' is a torch.nn.modules.container.Sequential "
                                                              r"object, which is not a model class"),
    (lambda m: {"model": m, "extra": nn.Conv2d(3, 3, 1)}, r"the checkpoint's 'extra' is a .*Conv2d object; only "
                                                          r"'model' and 'ema' hold a model"),
    (lambda m: {"model": m, "names": [nn.Identity()]}, r"the checkpoint's 'names' holds a .*Identity object"),
])
def test_modules_only_where_a_model_has_them(tmp_path, model, ckpt, match):
    torch.save(ckpt(model), tmp_path / "x.pt")
    assert __import__("re").search(match, refusal(tmp_path / "x.pt"))


def test_a_class_named_through_a_module_that_imports_it_is_refused(tmp_path, model):
    """``yolov5.models.yolo`` imports DetectMultiBackend's module namespace; the GLOBAL must name where a class is
    defined."""
    torch.save({"model": model, "epoch": -1}, tmp_path / "m.pt")
    via = with_data_pkl(tmp_path / "m.pt", tmp_path / "via.pt",
                        lambda d: d.replace(b"yolov5.models.common\nConv\n", b"yolov5.models.yolo\nConv\n"))
    assert "yolov5.models.yolo.Conv, which is not a yolov5/yolo-attn/torch.nn model class" in refusal(via)
