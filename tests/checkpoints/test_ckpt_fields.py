"""Tampered fields of a checkpoint (issue 22: malformed ultralytics checkpoint fields were tracebacks inside the
engine) are a UsageError naming the field; the model YAML stored in a checkpoint is held to the model-YAML bounds."""
import copy

import pytest
import torch
import yaml

from tiny_models import tiny_yolov5
from yolo_attn.checkpoints import load_checkpoint
from yolo_attn.errors import UsageError

@pytest.fixture(scope="module")
def model():
    return tiny_yolov5()


def with_model_attr(model, **attrs):
    m = copy.deepcopy(model)
    m.__dict__.update(attrs)
    return m


BOMB = yaml.safe_load("\n".join(["a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"] + [
    f"{x}: &{x} [{', '.join([f'*{p}'] * 10)}]" for p, x in zip("abcdefgh", "bcdefghi")]))["i"]


@pytest.mark.parametrize("edit, match", [
    (lambda m: {"model": m, "epoch": "10"}, r"its 'epoch' is str '10', not an integer"),
    (lambda m: {"model": m, "train_args": [1, 2]}, r"its 'train_args' is list \[1, 2\], not a mapping"),
    (lambda m: {"model": m, "optimizer": "sgd"}, r"its 'optimizer' is str 'sgd', not an optimizer state dict"),
    (lambda m: {"model": with_model_attr(m, names=5)}, r"its 'model'.names is int 5, not class names"),
    (lambda m: {"model": with_model_attr(m, stride="32")}, r"its 'model'.stride is str '32', not the strides"),
    (lambda m: {"model": with_model_attr(m, nc=-1)}, r"its 'model'.nc is int -1, not a positive integer"),
    (lambda m: {"model": with_model_attr(m, yaml={**m.yaml, "backbone": [[-1, 1, "Conv", [64, BOMB]]]})},
     r"the model YAML stored in its 'model': model YAML: more than 100,000 values"),
])
def test_a_tampered_field_is_named(tmp_path, model, edit, match):
    torch.save(edit(model), tmp_path / "x.pt")
    t = __import__("time").perf_counter()
    with pytest.raises(UsageError, match=match):
        load_checkpoint(tmp_path / "x.pt")
    assert __import__("time").perf_counter() - t < 5
    torch.save({"model": model, "epoch": 3, "train_args": {"imgsz": 64}}, tmp_path / "ok.pt")
    assert load_checkpoint(tmp_path / "ok.pt")["epoch"] == 3
