"""Reading the rows of a YOLO model YAML, the same for every engine: literal args only (nothing is evaluated),
``from`` indices checked, and the channel rules of registered layers.

A row is ``[from, number, module, args]``. Engines (``yolo_attn.engines.*``) resolve their own layer names and
build the model; what concerns registered layers is here so that every engine wires them identically.
"""
import ast
import math
import re

from torch import nn

from yolo_attn.errors import ModelConfigError
from yolo_attn.registry.factory import build
from yolo_attn.registry.layers import layer_names, suggest

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def make_divisible(x, divisor=8):
    """The smallest multiple of ``divisor`` that is >= x (yolov5's and ultralytics' channel rounding)."""
    return math.ceil(x / divisor) * divisor


def torch_layer(name):
    """``nn.Upsample`` -> torch.nn.Upsample (only nn.Module classes), else None."""
    if not (isinstance(name, str) and name.startswith("nn.")):
        return None
    obj = getattr(nn, name[3:], None)
    return obj if isinstance(obj, type) and issubclass(obj, nn.Module) else None


def row_label(i, n_backbone):
    section, k = ("backbone", i) if i < n_backbone else ("head", i - n_backbone)
    return f"layer {i} ({section} row {k})"


def resolve_arg(value, symbols, where):
    """A YAML arg as a Python value: literals pass through, known symbols are substituted, nothing is eval'd."""
    if isinstance(value, list):
        return [resolve_arg(v, symbols, where) for v in value]
    if isinstance(value, dict):
        return {k: resolve_arg(v, symbols, where) for k, v in value.items()}
    if not isinstance(value, str):
        return value
    if value in symbols:
        return symbols[value]
    if _IDENTIFIER.match(value):
        return value  # a plain word such as 'nearest' or 'relu': a string argument, as in yolov5
    raise ModelConfigError(
        f"{where}: argument {value!r} looks like a Python expression; yolo-attn never evaluates YAML text. "
        f"Write the value itself (a number, list or quoted word) or one of the symbols {', '.join(symbols)}.")


def resolve_activation(text):
    """The YAML ``activation:`` key, e.g. ``nn.SiLU()`` or ``nn.LeakyReLU(0.1)``, parsed without eval."""
    where = "model YAML 'activation:'"
    try:
        call = ast.parse(str(text).strip(), mode="eval").body
    except SyntaxError:
        call = None
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
            and isinstance(call.func.value, ast.Name) and call.func.value.id == "nn"):
        raise ModelConfigError(f"{where}: expected a torch activation such as nn.SiLU() or nn.LeakyReLU(0.1), "
                               f"got {text!r}")
    cls = torch_layer(f"nn.{call.func.attr}")
    try:
        args = [ast.literal_eval(a) for a in call.args]
        kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
    except ValueError:
        cls = None
    if cls is None:
        raise ModelConfigError(f"{where}: {text!r} is not a torch.nn layer with literal arguments")
    try:
        return cls(*args, **kwargs)
    except (TypeError, ValueError) as e:
        raise ModelConfigError(f"{where}: cannot build {text!r}: {e}") from None


def check_from(f, i, where):
    """``from`` must name the image (row 0) or earlier rows."""
    sources = f if isinstance(f, list) else [f]
    if not sources or not all(isinstance(j, int) and not isinstance(j, bool) for j in sources):
        raise ModelConfigError(f"{where}: 'from' must be an integer or a list of integers, got {f!r}")
    for j in sources:
        if j == -1 and i == 0:
            continue  # the image
        if not (-i <= j < i):
            if i == 0:
                raise ModelConfigError(f"{where}: 'from' index {j} does not name an earlier layer; the first layer "
                                       f"reads the input image: write -1.")
            raise ModelConfigError(
                f"{where}: 'from' index {j} does not name an earlier layer; layer {i} can take "
                f"-1..-{i} (relative) or 0..{i - 1} (absolute).")


def check_row(row, i, where):
    """Shape of row ``i``: [from, number, module, args] with valid ``from`` and ``number`` and a named module."""
    if not (isinstance(row, (list, tuple)) and len(row) == 4 and isinstance(row[3], list)):
        raise ModelConfigError(f"{where}: expected [from, number, module, args], got {row!r}")
    f, n, name, _ = row
    check_from(f, i, where)
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ModelConfigError(f"{where}: 'number' must be a positive integer, got {n!r}")
    if not isinstance(name, str):
        raise ModelConfigError(f"{where}: the layer type must be a name, got {name!r}")


def unknown_layer(name, where, engine_layers, engine):
    """The error for a layer name that is neither registered nor the engine's own."""
    known = layer_names()
    return ModelConfigError(
        f"{where}: unknown layer type {name!r}.{suggest(name, known + sorted(engine_layers))}\n"
        f"  attention layers (yolo-attn): {', '.join(known)}\n"
        f"  {engine} layers: {', '.join(sorted(engine_layers))}\n"
        f"  torch layers: nn.<Name>, e.g. nn.Upsample\n"
        f"  Fix the name in the YAML (attention names are case-insensitive), or register your own layer with "
        f"yolo_attn.register().")


def split_kwargs(args):
    """YAML args: positional values, optionally ending with a mapping of keyword hyper-parameters."""
    if args and isinstance(args[-1], dict):
        return list(args[:-1]), dict(args[-1])
    return list(args), {}


def attention_channels(spec, f, n, args, ch, i, gw, where):
    """(constructor args, kwargs, output channels) of a registered layer's row; ``ch`` holds the channels of
    the rows so far (``ch[-1]``: the previous row), ``gw`` the width multiple."""
    args, kwargs = split_kwargs(args)
    if spec.inputs == 2:
        if not (isinstance(f, list) and len(f) == 2):
            kind = f"{spec.name} takes 'from' as [skip, gate]" if spec.out_from_first else \
                "a fusion layer takes 'from' as [a, b]"
            raise ModelConfigError(f"{where}: {kind} (two inputs), got {f!r}")
        (ca, cb), src = (ch[f[0]], ch[f[1]]), [x if x >= 0 else i + x for x in f]
        if spec.out_from_first:
            if src[0] == src[1]:
                raise ModelConfigError(
                    f"{where}: both inputs are layer {src[0]}. {spec.name} takes [skip, gate]: the feature to gate "
                    f"and a signal from a coarser (deeper) layer, e.g. from: [6, 10] in yolov5s; gating a map with "
                    f"itself loses the idea of the gate.")
            if n != 1:
                raise ModelConfigError(f"{where}: a two-input layer cannot be repeated ('number' must be 1, got {n})")
            return [ca, cb, *args], kwargs, ca
        if ca != cb:
            raise ModelConfigError(
                f"{where}: inputs have different channel counts: layer {src[0]} gives {ca}, layer {src[1]} "
                f"gives {cb}. {spec.name} fuses equal-channel maps; pick inputs with equal channels or add a Conv "
                f"to match them.")
        if n != 1:
            raise ModelConfigError(f"{where}: a fusion layer cannot be repeated ('number' must be 1, got {n})")
        c1 = ca
    else:
        if not isinstance(f, int):
            raise ModelConfigError(f"{where}: a single-input layer takes one 'from' index, got {f!r}")
        c1 = ch[f]
    if spec.changes_channels:
        if not args or not isinstance(args[0], int) or isinstance(args[0], bool):
            raise ModelConfigError(f"{where}: {spec.name} takes its output channels as the first arg")
        c2 = make_divisible(args[0] * gw, 8)
        return [c1, c2, *args[1:]], kwargs, c2
    return [c1, *args], kwargs, c1


def identity_rows_of(d, n_rows):
    """The yolo-attn YAML key ``identity_start: [rows]``: attention rows that start as the identity."""
    rows = d.get("identity_start") or []
    if not (isinstance(rows, list) and all(isinstance(r, int) and 0 <= r < n_rows for r in rows)):
        raise ModelConfigError(f"model YAML 'identity_start:' must be a list of row indices 0..{n_rows - 1}, "
                               f"got {rows!r}")
    return set(rows)


def build_row(cls, args, kwargs, n, where, spec=None, given=None):
    """``n`` instances (an nn.Sequential when n > 1); constructor errors become a ModelConfigError for the row."""
    try:
        modules = [build(spec, *args, **kwargs) if spec is not None else cls(*args, **kwargs) for _ in range(n)]
    except (TypeError, ValueError) as e:
        hint = ""
        if spec is not None:
            hint = (f" {spec.name} takes the hyper-parameters "
                    f"{', '.join(f'{k}={v!r}' for k, v in spec.hyper_parameters.items())}.")
        raise ModelConfigError(f"{where}: cannot build it with args {given!r}: {e}.{hint}") from None
    return nn.Sequential(*modules) if n > 1 else modules[0]
