"""YAML args as Python values, literal only: nothing a model YAML says is evaluated. The symbols an engine's YAMLs
use (``nc``, ``anchors``...) are substituted, plain words stay strings; ``activation:`` and ``nn.Upsample`` rows are
read and checked without building anything from text."""
import ast
import difflib
import re

from torch import nn

from yolo_attn.errors import ModelConfigError
from yolo_attn.yaml_rows.checks import _positive_number

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


UPSAMPLE_MODES = ("nearest", "linear", "bilinear", "bicubic", "trilinear", "area", "nearest-exact")


def check_upsample(args, kwargs, where):
    """nn.Upsample(size, scale_factor, mode, align_corners, recompute_scale_factor), checked before it is built (a
    bad mode would only fail at the first forward, deep inside F.interpolate)."""
    names = ("size", "scale_factor", "mode", "align_corners", "recompute_scale_factor")
    if len(args) > len(names):
        raise ModelConfigError(f"{where}: nn.Upsample takes at most {len(names)} args ({', '.join(names)}), got {args!r}")
    given = dict(zip(names, args), **kwargs)
    unknown = set(given) - set(names)
    if unknown:
        raise ModelConfigError(f"{where}: nn.Upsample has no argument {sorted(unknown)[0]!r}; it takes "
                               f"{', '.join(names)}")
    mode = given.get("mode", "nearest")
    if mode not in UPSAMPLE_MODES:
        close = difflib.get_close_matches(str(mode), UPSAMPLE_MODES, n=1)
        raise ModelConfigError(f"{where}: nn.Upsample mode {mode!r} is not an interpolation mode; use one of "
                               f"{', '.join(UPSAMPLE_MODES)}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    size, scale = given.get("size"), given.get("scale_factor")
    if (size is None) == (scale is None):
        raise ModelConfigError(f"{where}: nn.Upsample takes either size or scale_factor (yolov5: [None, 2, nearest]), "
                               f"got size={size!r}, scale_factor={scale!r}")
    values = size if isinstance(size, list) else scale if isinstance(scale, list) else [size if scale is None else scale]
    bound = 8192 if scale is None else 64
    if not (1 <= len(values) <= 2 and all(_positive_number(v) and v <= bound for v in values)
            and (scale is not None or all(isinstance(v, int) for v in values))):
        what = "an output size (integers up to 8192)" if scale is None else "a scale factor above 0, at most 64"
        raise ModelConfigError(f"{where}: nn.Upsample {'size' if scale is None else 'scale_factor'} "
                               f"{size if scale is None else scale!r} must be {what}")
    align = given.get("align_corners")
    if align is not None and (not isinstance(align, bool) or mode not in ("linear", "bilinear", "bicubic", "trilinear")):
        raise ModelConfigError(f"{where}: nn.Upsample align_corners must be true/false and only with the linear "
                               f"modes (linear, bilinear, bicubic, trilinear), got {align!r} with mode {mode!r}")
