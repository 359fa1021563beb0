"""A safe replacement for yolov5's ``parse_model``: no ``eval``, registered attention layers, clear errors.

yolov5 builds every model (train, val, detect, export, hub) through ``yolov5.models.yolo.parse_model``,
which ``eval``s layer names and args from the YAML. ``install()`` swaps in ``parse_model`` below, which
resolves names through the registry, yolov5's own layer set and ``torch.nn``, accepts only literal args
and the symbols yolov5's YAMLs use, validates every row before building anything, and keeps yolov5's
channel rules, printout and module attributes (``i``, ``f``, ``type``, ``np``) so checkpoints and
tooling see the same model they always did.
"""
import ast
import inspect
import re

from torch import nn

from yolo_attn.errors import ModelConfigError
from yolo_attn.registry.layers import find_layer, layer_names, suggest
from yolo_attn.transfer.identity import IdentityStart

# yolov5 layers whose first arg is the output channel count (scaled by width_multiple); the names are
# resolved from yolov5.models.common at parse time, exactly as yolov5's parse_model lists them.
_CONV_LIKE = ("Conv", "GhostConv", "Bottleneck", "GhostBottleneck", "SPP", "SPPF", "DWConv", "MixConv2d", "Focus",
              "CrossConv", "BottleneckCSP", "C3", "C3TR", "C3SPP", "C3Ghost", "nn.ConvTranspose2d",
              "DWConvTranspose2d", "C3x")
_REPEATED = ("BottleneckCSP", "C3", "C3TR", "C3Ghost", "C3x")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _yolov5_layers():
    """Every nn.Module class yolov5's own parse_model can name (its module namespace), by name."""
    import yolov5.models.common as common
    import yolov5.models.experimental as experimental
    import yolov5.models.yolo as yolo

    layers = {}
    for module in (common, experimental, yolo):
        for name, obj in vars(module).items():
            if inspect.isclass(obj) and issubclass(obj, nn.Module) and obj.__module__.startswith("yolov5."):
                layers.setdefault(name, obj)
    return layers


def _torch_layer(name):
    obj = getattr(nn, name[3:], None)
    return obj if inspect.isclass(obj) and issubclass(obj, nn.Module) else None


def resolve_layer(name, where, yolov5_layers):
    """(kind, class-or-spec) for a YAML layer name; kind is 'attention', 'yolov5' or 'torch'."""
    if not isinstance(name, str):
        raise ModelConfigError(f"{where}: the layer type must be a name, got {name!r}")
    if name.startswith("nn."):
        cls = _torch_layer(name)
        if cls is not None:
            return "torch", cls
    elif name in yolov5_layers:
        return "yolov5", yolov5_layers[name]
    spec = find_layer(name)
    if spec is not None:
        return "attention", spec
    known = layer_names()
    raise ModelConfigError(
        f"{where}: unknown layer type {name!r}.{suggest(name, known + sorted(yolov5_layers))}\n"
        f"  attention layers (yolo-attn): {', '.join(known)}\n"
        f"  yolov5 layers: {', '.join(sorted(yolov5_layers))}\n"
        f"  torch layers: nn.<Name>, e.g. nn.Upsample\n"
        f"  Fix the name in the YAML (attention names are case-insensitive), or register your own layer with "
        f"yolo_attn.registry.register().")


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
    cls = _torch_layer(f"nn.{call.func.attr}")
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


def _row_label(i, n_backbone):
    section, k = ("backbone", i) if i < n_backbone else ("head", i - n_backbone)
    return f"layer {i} ({section} row {k})"


def _check_from(f, i, where):
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


def _validate_rows(d):
    """Check every row's shape, layer name, args and 'from' indices before anything is built."""
    for key in ("backbone", "head", "nc", "depth_multiple", "width_multiple", "anchors"):
        if key not in d:
            raise ModelConfigError(f"model YAML: the '{key}:' field is missing (see model_yamls/yolov5s.yaml)")
    rows = list(d["backbone"] or []) + list(d["head"] or [])
    n_backbone = len(d["backbone"] or [])
    yolov5_layers = _yolov5_layers()
    symbols = {"nc": d["nc"], "anchors": d["anchors"], "None": None, "True": True, "False": False}
    resolved = []
    for i, row in enumerate(rows):
        where = _row_label(i, n_backbone)
        if not (isinstance(row, (list, tuple)) and len(row) == 4 and isinstance(row[3], list)):
            raise ModelConfigError(f"{where}: expected [from, number, module, args], got {row!r}")
        f, n, name, args = row
        where = f"{where}, {name}"
        _check_from(f, i, where)
        if not isinstance(n, int) or n < 1:
            raise ModelConfigError(f"{where}: 'number' must be a positive integer, got {n!r}")
        kind, layer = resolve_layer(name, where, yolov5_layers)
        args = [resolve_arg(a, symbols, where) for a in args]
        resolved.append((where, f, n, kind, layer, args))
    return resolved


def _split_kwargs(args):
    """YAML args: positional values, optionally ending with a mapping of keyword hyper-parameters."""
    if args and isinstance(args[-1], dict):
        return list(args[:-1]), dict(args[-1])
    return list(args), {}


def _two_channel_layer(spec, src, n, args, kwargs, ca, cb, where):
    """A two-input layer whose inputs may differ (e.g. an attention gate [skip, gate]); output: the first's channels."""
    if src[0] == src[1]:
        raise ModelConfigError(
            f"{where}: both inputs are layer {src[0]}. {spec.name} takes [skip, gate]: the feature to gate and a "
            f"signal from a coarser (deeper) layer, e.g. from: [6, 10] in yolov5s; gating a map with itself loses "
            f"the idea of the gate.")
    if n != 1:
        raise ModelConfigError(f"{where}: a two-input layer cannot be repeated ('number' must be 1, got {n})")
    return [ca, cb, *args], kwargs, ca


def _attention_layer(spec, f, n, args, ch, i, gw, where):
    """(constructor args, kwargs, output channels) for a registered attention row."""
    from yolov5.utils.general import make_divisible

    args, kwargs = _split_kwargs(args)
    if spec.inputs == 2:
        if not (isinstance(f, list) and len(f) == 2):
            if spec.out_from_first:
                raise ModelConfigError(f"{where}: {spec.name} takes 'from' as [skip, gate] (two inputs), got {f!r}")
            raise ModelConfigError(f"{where}: a fusion layer takes 'from' as [a, b] (two inputs), got {f!r}")
        (a, b), (ca, cb) = f, (ch[f[0]], ch[f[1]])
        src = [x if x >= 0 else i + x for x in f]
        if spec.out_from_first:
            return _two_channel_layer(spec, src, n, args, kwargs, ca, cb, where)
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
        if not args or not isinstance(args[0], int):
            raise ModelConfigError(f"{where}: {spec.name} takes its output channels as the first arg")
        c2 = make_divisible(args[0] * gw, 8)
        return [c1, c2, *args[1:]], kwargs, c2
    return [c1, *args], kwargs, c1


def _identity_rows(d, n_rows):
    """The yolo-attn YAML key ``identity_start: [rows]``: attention rows that start as the identity."""
    rows = d.get("identity_start") or []
    if not (isinstance(rows, list) and all(isinstance(r, int) and 0 <= r < n_rows for r in rows)):
        raise ModelConfigError(f"model YAML 'identity_start:' must be a list of row indices 0..{n_rows - 1}, "
                               f"got {rows!r}")
    return set(rows)


def _build(cls, args, kwargs, n, where, spec=None, given=None):
    try:
        modules = [cls(*args, **kwargs) for _ in range(n)]
    except (TypeError, ValueError) as e:
        hint = ""
        if spec is not None:
            hint = (f" {spec.name} takes the hyper-parameters "
                    f"{', '.join(f'{k}={v!r}' for k, v in spec.hyper_parameters.items())}.")
        raise ModelConfigError(f"{where}: cannot build it with args {given!r}: {e}.{hint}") from None
    return nn.Sequential(*modules) if n > 1 else modules[0]


def parse_model(d, ch):
    """Drop-in replacement for ``yolov5.models.yolo.parse_model(model_dict, [input_channels])``.

    The YAML's ``activation:`` applies to the model being built only: yolov5 left ``Conv.default_act`` set
    class-wide afterwards, so every model built later in the same process silently used that activation too.
    """
    from yolov5.models.common import Conv

    default_act = Conv.default_act
    try:
        return _parse_model(d, ch)
    finally:
        Conv.default_act = default_act


def _parse_model(d, ch):
    from yolov5.models.common import Concat, Contract, Expand
    from yolov5.models.yolo import Conv, Detect, Segment
    from yolov5.utils.general import LOGGER, colorstr, make_divisible

    LOGGER.info(f"\n{'':>3}{'from':>18}{'n':>3}{'params':>10}  {'module':<40}{'arguments':<30}")
    rows = _validate_rows(d)
    nc, gd, gw, anchors, act = d["nc"], d["depth_multiple"], d["width_multiple"], d["anchors"], d.get("activation")
    if act:
        Conv.default_act = resolve_activation(act)  # read by Conv.__init__; parse_model restores it afterwards
        LOGGER.info(f"{colorstr('activation:')} {act}")
    na = (len(anchors[0]) // 2) if isinstance(anchors, list) else anchors
    no = na * (nc + 5)
    yolov5_layers = _yolov5_layers()
    conv_like = {_torch_layer(x) if x.startswith("nn.") else yolov5_layers[x] for x in _CONV_LIKE}
    repeated = {yolov5_layers[x] for x in _REPEATED}

    identity_rows = _identity_rows(d, len(rows))
    layers, save = [], []
    for i, (where, f, n, kind, m, args) in enumerate(rows):
        given, n_yaml = list(args), n  # as written in the YAML (symbols substituted), for messages and checks
        n = n_ = max(round(n * gd), 1) if n > 1 else n
        kwargs, spec = {}, None
        if kind == "attention":
            spec = m
            args, kwargs, c2 = _attention_layer(spec, f, n_yaml, args, ch, i, gw, where)
            m = spec.cls
        elif m is Concat:
            sources = f if isinstance(f, list) else [f]
            c2 = sum(ch[x] for x in sources)
        elif m in (Detect, Segment):
            if not isinstance(f, list):
                raise ModelConfigError(f"{where}: Detect takes the list of feature layers as 'from', got {f!r}")
            wanted = "[nc, anchors, nm, npr]" if m is Segment else "[nc, anchors]"
            if len(args) < (4 if m is Segment else 2):
                raise ModelConfigError(f"{where}: expected the args {wanted}, got {args!r}")
            args.append([ch[x] for x in f])
            if isinstance(args[1], int):
                args[1] = [list(range(args[1] * 2))] * len(f)
            if m is Segment:
                args[3] = make_divisible(args[3] * gw, 8)
            c2 = ch[f[0]]
        else:
            if not isinstance(f, int):
                raise ModelConfigError(f"{where}: this layer takes one 'from' index, got {f!r}")
            if m in conv_like:
                if not args or not isinstance(args[0], (int, float)):
                    raise ModelConfigError(f"{where}: the first arg must be the output channel count, got {args!r}")
                c1, c2 = ch[f], args[0]
                if c2 != no:
                    c2 = make_divisible(c2 * gw, 8)
                args = [c1, c2, *args[1:]]
                if m in repeated:
                    args.insert(2, n)
                    n = 1
            elif m is nn.BatchNorm2d:
                args, c2 = [ch[f]], ch[f]
            elif m is Contract:
                c2 = ch[f] * args[0] ** 2
            elif m is Expand:
                c2 = ch[f] // args[0] ** 2
            else:
                c2 = ch[f]

        m_ = _build(m, args, kwargs, n, where, spec, given)
        if spec is not None and hasattr(m_, "where"):
            m_.where = where  # layers that check their input shapes at run time name their YAML row
        if i in identity_rows:
            if spec is None or spec.inputs != 1 or spec.changes_channels or c2 != ch[f]:
                raise ModelConfigError(f"{where}: identity_start lists this row, but only one-input attention "
                                       f"layers that keep their channels can start as the identity")
            m_ = IdentityStart(m_)
        t = f"{m.__module__}.{m.__qualname__}".replace("__main__.", "")
        np_ = sum(x.numel() for x in m_.parameters())
        m_.i, m_.f, m_.type, m_.np = i, f, t, np_
        LOGGER.info(f"{i:>3}{str(f):>18}{n_:>3}{np_:10.0f}  {t:<40}{str(args if not kwargs else args + [kwargs]):<30}")
        save.extend(x % i for x in ([f] if isinstance(f, int) else f) if x != -1)
        layers.append(m_)
        if i == 0:
            ch = []
        ch.append(c2)
    return nn.Sequential(*layers), sorted(save)


def install():
    """Make yolov5 build every model through this parser (idempotent)."""
    import sys

    for name in ("yolov5.models.yolo", "models.yolo"):
        module = sys.modules.get(name)
        if module is not None:
            module.parse_model = parse_model
