"""The channel rules of registered layers in a model YAML's rows, the same for every engine: the inputs' channels
(``from``), the output channels (``changes_channels``: the first arg, scaled by width), two-input layers, building a
row, and other projects' spelling of channel-keeping attention rows (their channel count first)."""
import math

from torch import nn

from yolo_attn.errors import ModelConfigError
from yolo_attn.registry.factory import build
from yolo_attn.yaml_rows.args import split_kwargs


def make_divisible(x, divisor=8):
    """The smallest multiple of ``divisor`` that is >= x (yolov5's and ultralytics' channel rounding)."""
    return math.ceil(x / divisor) * divisor

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
    (``LayerSpec.foreign_args``: CBAM's next one is its spatial kernel size; ``reduction`` is an integer r, read as
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
