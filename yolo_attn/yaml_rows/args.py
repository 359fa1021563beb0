"""YAML args as Python values, literal only: nothing a model YAML says is evaluated. The symbols an engine's YAMLs
use (``nc``, ``anchors``...) are substituted, plain words stay strings; ``activation:`` and ``nn.Upsample`` rows are
read and checked without building anything from text."""
import ast
import re

from torch import nn

from yolo_attn.errors import ModelConfigError
from yolo_attn.yaml_rows.bounds import UPSAMPLE_MODES, check_upsample  # noqa: F401  (bounds of every engine)

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def torch_layer(name):
    """``nn.Upsample`` -> torch.nn.Upsample (only nn.Module classes), else None."""
    if not (isinstance(name, str) and name.startswith("nn.")):
        return None
    obj = getattr(nn, name[3:], None)
    return obj if isinstance(obj, type) and issubclass(obj, nn.Module) else None

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

def split_kwargs(args):
    """YAML args: positional values, optionally ending with a mapping of keyword hyper-parameters."""
    if args and isinstance(args[-1], dict):
        return list(args[:-1]), dict(args[-1])
    return list(args), {}


