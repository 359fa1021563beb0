"""The plain fields of a loaded checkpoint, checked before yolov5's or ultralytics' code reads them.

The pickle scan makes sure a checkpoint holds only data, tensors and model objects; this checks that the fields the
engines read are the data they expect (an ``epoch`` that is a number, ``train_args`` a mapping, a model's ``names``
a mapping of class names, its ``yaml`` a model YAML within the bounds of ``yolo_attn.yaml_rows.bounds``, ...), so a
tampered field is a message naming it, not a traceback from inside an engine.
"""
import argparse
import numbers

import numpy as np
import torch

from yolo_attn.errors import ModelConfigError, UsageError


def _int(v):
    return v is None or (isinstance(v, numbers.Integral) and not isinstance(v, bool))


def _number(v):
    numeric = (numbers.Number, np.ndarray, np.generic, torch.Tensor)
    return v is None or isinstance(v, numeric) and not isinstance(v, bool)


def _text(v):
    return v is None or isinstance(v, str)


def _mapping(v):
    return v is None or isinstance(v, (dict, argparse.Namespace)) or type(v).__name__ == "IterableSimpleNamespace"


def _names(v):
    if isinstance(v, dict):
        return all(isinstance(k, numbers.Integral) and isinstance(n, str) for k, n in v.items())
    return isinstance(v, (list, tuple)) and all(isinstance(n, str) for n in v)


def _stride(v):
    return isinstance(v, torch.Tensor) or (isinstance(v, (list, tuple, numbers.Number)) and not isinstance(v, bool))


FIELDS = {"epoch": (_int, "an integer"), "updates": (_int, "an integer"), "best_fitness": (_number, "a number"),
          "optimizer": (lambda v: v is None or isinstance(v, dict), "an optimizer state dict"),
          "opt": (_mapping, "a mapping of training options"), "train_args": (_mapping, "a mapping of training options"),
          "date": (_text, "text"), "version": (_text, "text"), "yolov5pip_version": (_text, "text"),
          "git": (lambda v: v is None or isinstance(v, (dict, str)), "a mapping"),
          "train_metrics": (lambda v: v is None or isinstance(v, dict), "a mapping"),
          "train_results": (lambda v: v is None or isinstance(v, dict), "a mapping")}
MODEL_FIELDS = {"names": (_names, "class names (a mapping of index to name, or a list)"),
                "nc": (lambda v: _int(v) and (v is None or v > 0), "a positive integer"),
                "stride": (_stride, "the strides (a tensor)"), "yaml_file": (_text, "a file name"),
                "task": (_text, "a task name"), "args": (_mapping, "a mapping of settings"),
                "hyp": (_mapping, "a mapping of hyper-parameters"),
                "class_weights": (lambda v: v is None or isinstance(v, torch.Tensor) and v.dim() == 1
                                  and v.is_floating_point(), "a vector of class weights"),
                "yaml": (lambda v: isinstance(v, dict), "a model YAML mapping")}


def check_fields(ckpt, path):
    """UsageError naming the first field of the checkpoint (or of its models) that is not what the engines read."""
    def bad(where, value, what):
        return UsageError(f"{path}: its {where} is {type(value).__name__} {value!r:.80}, not {what}; the checkpoint "
                          f"was changed after training. Use the file training wrote.")

    for key, (ok, what) in FIELDS.items():
        if key in ckpt and not ok(ckpt[key]):
            raise bad(f"'{key}'", ckpt[key], what)
    for key in ("model", "ema"):
        model = ckpt.get(key)
        if model is None:
            continue
        for name, (ok, what) in MODEL_FIELDS.items():
            if name in vars(model) and not ok(vars(model)[name]):
                raise bad(f"'{key}'.{name}", vars(model)[name], what)
        if isinstance(vars(model).get("yaml"), dict):
            from yolo_attn.yaml_rows.bounds import check_model_yaml

            try:
                check_model_yaml(vars(model)["yaml"])
            except ModelConfigError as e:
                raise UsageError(f"{path}: the model YAML stored in its '{key}': {e}") from None
