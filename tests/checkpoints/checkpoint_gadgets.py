"""Malicious checkpoints for the loader tests. Each one, loaded by a loader that lets an allowed class be called (or
given hooks, or its own __setstate__), runs a command that only creates a marker file.

``Shell`` and ``SetState`` stand for any model class that does work outside ``forward``: a user's registered layer,
or yolov5's own ``DetectMultiBackend`` (which opens another file named by its argument and, before the
``no_metadata_eval`` patch, evaluated text from it). ``register()`` makes them allowed classes, as a user's
``yolo_attn.register(...)`` would.
"""
import io
import os
import zipfile
from pathlib import Path

import torch
from torch import nn


class Shell(nn.Module):
    """Runs ``command`` when constructed, and (as a hook or a layer) when called."""

    def __init__(self, command="true"):
        super().__init__()
        self.command = command
        os.system(command)

    def forward(self, *args):
        os.system(self.command)
        return None


class SetState(nn.Module):
    """Runs the command in its state when unpickled (its own __setstate__)."""

    def __setstate__(self, state):
        os.system(state.get("command", "true"))
        super().__setstate__(state)

    def forward(self, x):
        return x


def register():
    import yolo_attn

    for cls in (Shell, SetState):
        if yolo_attn.registry.find_layer(f"test-{cls.__name__}") is None:
            yolo_attn.registry.register(yolo_attn.LayerSpec(f"test-{cls.__name__}", cls, 1, "test", "test"))


class Call:
    """Pickles as ``func(*args)`` (a REDUCE of ``func``)."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


class NewWithArgs:
    """Pickles as ``cls.__new__(cls, *args)`` (a NEWOBJ with arguments)."""

    def __init__(self, cls, *args):
        self.cls, self.args = cls, args

    @property
    def __class__(self):  # what the pickler checks NEWOBJ's class against
        return self.cls

    def __reduce__(self):
        import copyreg

        return copyreg.__newobj__, (self.cls, *self.args)


def touch(marker):
    return f"touch {marker}"


def onnx_with_names(path, names):
    """A tiny ONNX model whose metadata 'names' is ``names`` (yolov5's DetectMultiBackend reads it with eval)."""
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 64, 64])
    y = helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 3, 64, 64])
    graph = helper.make_graph([helper.make_node("Identity", ["images"], ["output0"])], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for key, value in {"stride": "32", "names": names}.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))
    return Path(path)


def gadgets(folder, marker, model):
    """{file name: a checkpoint whose loading runs ``touch marker`` unless the loader stops it}. ``model``: a real
    yolov5 model to hide the gadgets in."""
    from yolov5.models.common import DetectMultiBackend

    folder = Path(folder)
    onnx = onnx_with_names(folder / "names.onnx", f"__import__('os').system('touch {marker}') or {{0: 'a'}}")
    hooked = Shell()
    hooked.command = touch(marker)  # runs when the model runs
    with_hook = type(model).__new__(type(model))
    with_hook.__dict__.update(model.__dict__)
    with_hook._forward_pre_hooks = type(model._forward_pre_hooks)({0: hooked})
    stateful = SetState()
    stateful.command = touch(marker)
    files = {
        # yolov5's own class, called with a file name: it opens the ONNX file and evaluates its metadata
        "detect_multi_backend.pt": {"model": model, "ema": Call(DetectMultiBackend, str(onnx))},
        # os.system through an allowed class's constructor
        "allowed_class_call.pt": {"model": Call(Shell, touch(marker))},
        # the call hidden in torch's own allowed rebuild function, which calls its first argument
        "rebuild_from_type.pt": {"model": model, "x": Call(torch._tensor._rebuild_from_type_v2, Shell, torch.Tensor,
                                                             (touch(marker),), {})},
        # the class first made the legitimate way, then called through the memo (BINGET of the same GLOBAL)
        "memoised_call.pt": {"model": nn.Sequential(hooked), "x": Call(Shell, touch(marker))},
        # a model object given a forward hook that runs the command when the model runs
        "forward_hook.pt": {"model": with_hook},
        # a class whose own __setstate__ runs on load
        "own_setstate.pt": {"model": nn.Sequential(stateful)},
        # a module class made with arguments to __new__
        "new_with_args.pt": {"model": NewWithArgs(Shell, touch(marker))},
    }
    paths = {}
    for name, obj in files.items():
        torch.save(obj, folder / name)
        paths[name] = folder / name
    torch.save({"model": Call(Shell, touch(marker))}, folder / "protocol4.pt", pickle_protocol=4)
    paths["protocol4.pt"] = folder / "protocol4.pt"
    return paths


def with_data_pkl(source, target, edit):
    """A copy of the torch.save archive ``source`` whose data.pkl is ``edit(data.pkl bytes)``."""
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as zout:
        for name in zin.namelist():
            data = zin.read(name)
            zout.writestr(name, edit(data) if name.endswith("/data.pkl") else data)
    return Path(target)


def data_pkl(path):
    with zipfile.ZipFile(path) as z:
        return io.BytesIO(z.read(next(n for n in z.namelist() if n.endswith("/data.pkl")))).getvalue()
