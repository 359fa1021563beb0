"""Reading the rows of a YOLO model YAML, the same for every engine: literal args only (nothing is evaluated),
``from`` indices checked, and the channel rules of registered layers.

A row is ``[from, number, module, args]``. Engines (``yolo_attn.engines.*``) resolve their own layer names and
build the model; what concerns registered layers is here so that every engine wires them identically.
"""
import ast
import difflib
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


# --- bounds: a model YAML is data; none of these is near a real YOLO model ---------------------------------------
MAX_VALUES = 100_000  # scalars + containers in the whole model YAML, aliases expanded (yolov5x6: ~600)
MAX_REPEATS = 100  # 'number' of a row, as written and after depth_multiple (yolov5x: 12)
MAX_MULTIPLE = 8.0  # depth_multiple and width_multiple (yolov5x: 1.33, 1.25)
MAX_CHANNELS = 16384  # the channels of any row (yolov5x: 1280)
MAX_NC = 100_000


def check_size(d, where="model YAML", limit=MAX_VALUES):
    """Count the values of ``d`` as a reader would see them, every alias expanded (and a cycle endlessly), and stop
    at ``limit``: a YAML alias bomb (billion laughs) or a self-referencing anchor is refused before anything walks it."""
    count, stack = 0, [d]
    while stack:
        node = stack.pop()
        count += 1
        if count > limit:
            raise ModelConfigError(
                f"{where}: more than {limit:,} values once its YAML aliases (&anchor / *alias) are expanded, or an "
                f"anchor that contains itself; a model YAML is a few hundred plain values. Write the rows out "
                f"without nested aliases.")
        if isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, (list, tuple)):
            stack.extend(node)


def _positive_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0


def check_model_fields(d):
    """``nc``, ``depth_multiple``, ``width_multiple`` and ``anchors`` must be what every YOLO model YAML gives."""
    for key in ("depth_multiple", "width_multiple"):
        v = d[key]
        if not _positive_number(v) or v > MAX_MULTIPLE:
            raise ModelConfigError(f"model YAML '{key}: {v!r}': must be a number above 0 and at most {MAX_MULTIPLE:g} "
                                   f"(yolov5n/s/m/l/x use 0.33/0.33/0.67/1.0/1.33 for depth and "
                                   f"0.25/0.5/0.75/1.0/1.25 for width)")
    nc = d["nc"]
    if not (isinstance(nc, int) and not isinstance(nc, bool) and 1 <= nc <= MAX_NC):
        raise ModelConfigError(f"model YAML 'nc: {nc!r}': must be the number of classes, an integer from 1 to {MAX_NC}")
    anchors = d["anchors"]
    if isinstance(anchors, int) and not isinstance(anchors, bool):
        ok = 1 <= anchors <= 16
    else:
        ok = isinstance(anchors, list) and 1 <= len(anchors) <= 16 and all(
            isinstance(a, list) and a and len(a) % 2 == 0 and len(a) == len(anchors[0]) and len(a) <= 32
            and all(_positive_number(v) for v in a) for a in anchors)
    if not ok:
        raise ModelConfigError(f"model YAML 'anchors: {anchors!r}': expected one list of w, h pairs (positive "
                               f"numbers) per detection level, e.g. [10, 13, 16, 30, 33, 23], or a number of "
                               f"anchors per level from 1 to 16")


def check_repeats(n, gd, where):
    """``number`` as written and after depth_multiple must stay below MAX_REPEATS."""
    if n > MAX_REPEATS or max(round(n * gd), 1) > MAX_REPEATS:
        raise ModelConfigError(f"{where}: 'number' {n} (×{gd} depth_multiple) repeats the layer more than "
                               f"{MAX_REPEATS} times; yolov5 uses 1 to 9 (yolov5x: up to 12 after depth_multiple)")


def check_channels(c2, where):
    if not (isinstance(c2, int) and not isinstance(c2, bool) and 1 <= c2 <= MAX_CHANNELS):
        raise ModelConfigError(f"{where}: gives {c2!r} channels; a row's channel count must be an integer from 1 to "
                               f"{MAX_CHANNELS} (yolov5x's widest is 1280). Check the first arg and width_multiple.")


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


# --- other projects' spelling of channel-keeping attention rows ------------------------------------------------------

def _flow(x):
    import yaml

    return yaml.safe_dump(x, default_flow_style=True, width=10_000).strip()


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def foreign_channel_args(spec, f, n, args, channels, where):
    """(args in yolo-attn's spelling, message or None) for a registered layer's row written as other projects do.

    Popular forks pass a channel-keeping attention layer its channel count first: ``[-1, 1, CBAM, [1024]]``,
    ``[-1, 1, SE, [1024]]``, ``[-1, 1, ECA, [1024, 3]]``. Here such layers take their channels from ``from``, and the
    first positional arg would be the first hyper-parameter (rd_ratio = 1024: a billion-parameter layer). A leading
    integer equal to the row's input channels (``channels``: as written before width_multiple, and after it) is that
    convention: it is dropped and the positional args after it are read as the layer declares
    (``LayerInfo.foreign_args``: CBAM's next one is its spatial kernel size; ``reduction`` is an integer r, read as
    rd_ratio = 1/r). The message states the equivalent row in yolo-attn's spelling. A leading integer that is neither
    the channel count nor a valid value of the first hyper-parameter is a ModelConfigError naming both readings.
    """
    from yolo_attn.modules._params import invalid

    if spec.members or spec.changes_channels or spec.out_from_first:
        return args, None
    positional, kwargs = split_kwargs(args)
    if not positional or not _is_int(positional[0]):
        return args, None
    lead, rest = positional[0], positional[1:]
    written, scaled = channels
    params = list(spec.hyper_parameters)
    if lead in (written, scaled):
        names = list(spec.foreign_args) or params
        if len(rest) > len(names):
            raise ModelConfigError(f"{where}: {lead} reads as the input channel count (other projects' spelling), but "
                                   f"then {rest!r} are more args than {spec.name} takes ({', '.join(names)})")
        read = {}
        for name, value in zip(names, rest):
            if name == "reduction":
                if not (_is_int(value) and 1 <= value <= max(scaled, 1)):
                    raise ModelConfigError(f"{where}: after the channel count {lead}, {value!r} reads as the reduction "
                                           f"r (rd_ratio = 1/r), which must be an integer from 1 to {scaled}")
                name, value = "rd_ratio", 1 / value
            if name in kwargs:
                raise ModelConfigError(f"{where}: {name} is given twice: {value!r} (after the channel count) and "
                                       f"{kwargs[name]!r} (in the mapping)")
            read[name] = value
        ours = {**read, **kwargs}
        row = _flow([f, n, spec.name, [ours] if ours else []])
        parts = [f"{lead} as the input channel count (the row's {written} channels"
                 + (f", {scaled} after width_multiple" if scaled != written else "") + "), dropped"]
        parts += [f"{value!r} as {name}" for name, value in zip(names, rest)]
        return ([ours] if ours else []), (f"{where}: read {_flow(args)} as other projects write it: "
                                          f"{'; '.join(parts)}. In yolo-attn's spelling: {row}")
    first = params[0] if params else None
    if first is not None and invalid(first, lead, scaled) is None:
        return args, None
    meaning = (f"as {first} (its first hyper-parameter) it must be {invalid(first, lead, scaled)}" if first
               else f"{spec.name} has no hyper-parameter to give it")
    raise ModelConfigError(
        f"{where}: the first arg {lead} is neither this row's input channel count ({written} as written"
        + (f", {scaled} after width_multiple" if scaled != written else "")
        + f"), which other projects' YAMLs put first, nor a valid value: {meaning}. {spec.name} takes its channels "
        f"from 'from' and keeps them: write {_flow([f, n, spec.name, []])}"
        + (f", or name the hyper-parameter, e.g. {_flow([f, n, spec.name, [{first: spec.hyper_parameters[first]}]])}"
           if first else "") + ".")
