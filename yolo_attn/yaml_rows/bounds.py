"""The bounds of a model YAML, the same for every engine, checked before anything is built or allocated.

A model YAML is data: an alias bomb, a million repeats, a 16-million-channel row, a Chain of 2000 members repeated
100 times or a ``scales:`` width of ``.inf`` is refused here with a ModelConfigError naming the row, never a hang,
an allocator error or a traceback. None of these bounds is near a real YOLO model (the comments give the largest
shipped value). Both parsers call ``check_model_yaml`` first: yolov5's ``parse_model`` and ultralytics'
``validate``.
"""
import difflib
import math

from yolo_attn.errors import ModelConfigError

MAX_VALUES = 100_000  # scalars + containers in the whole model YAML, aliases expanded (yolov5x6: ~600)
MAX_NESTING = 16  # containers inside containers (a row's args: 4)
MAX_REPEATS = 100  # 'number' of a row, as written and after depth_multiple (yolov5x: 12)
MAX_MULTIPLE = 8.0  # depth_multiple and width_multiple, and a scales: depth or width (yolov5x: 1.33, 1.25)
MAX_CHANNELS = 16384  # the channels of any row (yolov5x's widest row: 1280)
MAX_ARG = 1_000_000  # any integer in a row's args (channels, kernels, sizes; the engines' own checks say more below)
MAX_NC = 100_000
MAX_MODULES = 5_000  # layers the rows build: repeats x (1 + named members) (stock YAMLs: at most 99)
MAX_PARAMS = 500_000_000  # the whole model (yolov5x6: 140M)
MAX_PARAMS_ESTIMATE = 4_000_000_000  # the rough estimate below, before anything is built (the largest stock YAML,
                                     # yolov5x6 / ultralytics' yolov5-p6: 3.7e8 by this estimate)
# nn.<Name> rows that are containers or bases, not layers a row can be
NOT_LAYERS = ("nn.Module", "nn.ModuleDict", "nn.ModuleList", "nn.ParameterDict", "nn.ParameterList", "nn.Sequential",
              "nn.Container")


def row_label(i, n_backbone):
    section, k = ("backbone", i) if i < n_backbone else ("head", i - n_backbone)
    return f"layer {i} ({section} row {k})"


def positive_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0


def check_size(d, where="model YAML", limit=MAX_VALUES, nesting=MAX_NESTING):
    """Count the values of ``d`` as a reader would see them, every alias expanded (and a cycle endlessly), and stop
    at ``limit``: a YAML alias bomb (billion laughs) or a self-referencing anchor is refused before anything walks
    it; containers may nest ``nesting`` deep."""
    count, stack = 0, [(d, 0)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > limit:
            raise ModelConfigError(
                f"{where}: more than {limit:,} values once its YAML aliases (&anchor / *alias) are expanded, or an "
                f"anchor that contains itself; a model YAML is a few hundred plain values. Write the rows out "
                f"without nested aliases.")
        if depth > nesting:
            raise ModelConfigError(f"{where}: lists or mappings nested more than {nesting} deep (or an anchor that "
                                   f"contains itself); a model YAML nests 4 deep")
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in (*node.keys(), *node.values()))
        elif isinstance(node, (list, tuple)):
            stack.extend((v, depth + 1) for v in node)


def check_repeats(n, gd, where):
    """``number`` as written and after depth_multiple must stay below MAX_REPEATS."""
    if n > MAX_REPEATS or max(round(n * gd), 1) > MAX_REPEATS:
        raise ModelConfigError(f"{where}: 'number' {n} (×{gd} depth_multiple) repeats the layer more than "
                               f"{MAX_REPEATS} times; yolov5 uses 1 to 9 (yolov5x: up to 12 after depth_multiple)")


def check_channels(c2, where):
    if not (isinstance(c2, int) and not isinstance(c2, bool) and 1 <= c2 <= MAX_CHANNELS):
        raise ModelConfigError(f"{where}: gives {c2!r} channels; a row's channel count must be an integer from 1 to "
                               f"{MAX_CHANNELS} (yolov5x's widest is 1280). Check the first arg and width_multiple.")


def _multiple(value, what):
    if not positive_number(value) or value > MAX_MULTIPLE:
        raise ModelConfigError(f"model YAML '{what}: {value!r}': must be a number above 0 and at most {MAX_MULTIPLE:g} "
                               f"(yolov5n..x: depth 0.33..1.33, width 0.25..1.25)")
    return value


def _scales(d):
    """(largest depth, largest width, largest max_channels) the YAML can build with, its ``scales:`` checked."""
    depths, widths, caps = [], [], []
    for key in ("depth_multiple", "width_multiple"):
        if d.get(key) is not None:
            (depths if key[0] == "d" else widths).append(_multiple(d[key], key))
    scales = d.get("scales")
    if scales:
        if not isinstance(scales, dict):
            raise ModelConfigError(f"model YAML 'scales:' must map each scale to [depth, width, max_channels], got "
                                   f"{type(scales).__name__}")
        for name, value in scales.items():
            if not (isinstance(name, str) and isinstance(value, (list, tuple)) and len(value) == 3):
                raise ModelConfigError(f"model YAML 'scales: {name!r}': expected [depth, width, max_channels], e.g. "
                                       f"n: [0.50, 0.25, 1024], got {value!r}")
            depths.append(_multiple(value[0], f"scales: {name} depth"))
            widths.append(_multiple(value[1], f"scales: {name} width"))
            cap = value[2]
            if not (positive_number(cap) and cap <= MAX_CHANNELS):
                raise ModelConfigError(f"model YAML 'scales: {name} max_channels: {cap!r}': must be a number from 1 to "
                                       f"{MAX_CHANNELS} (yolo11x: 512)")
            caps.append(cap)
        if d.get("scale") is not None and not isinstance(d["scale"], str):
            raise ModelConfigError(f"model YAML 'scale: {d['scale']!r}': must be one of the scales' names "
                                   f"({', '.join(scales)})")
    return max(depths, default=1.0), max(widths, default=1.0), max(caps, default=math.inf)  # (no scales: no cap)


UPSAMPLE_MODES = ("nearest", "linear", "bilinear", "bicubic", "trilinear", "area", "nearest-exact")


def check_upsample(args, kwargs, where):
    """nn.Upsample(size, scale_factor, mode, align_corners, recompute_scale_factor), checked before it is built (a
    bad mode would only fail at the first forward, deep inside F.interpolate)."""
    names = ("size", "scale_factor", "mode", "align_corners", "recompute_scale_factor")
    if len(args) > len(names):
        raise ModelConfigError(f"{where}: nn.Upsample takes at most {len(names)} args ({', '.join(names)}), "
                               f"got {args!r}")
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
    values = size if isinstance(size, list) else scale if isinstance(scale, list) else \
        [size if scale is None else scale]
    bound = 8192 if scale is None else 64
    if not (1 <= len(values) <= 2 and all(positive_number(v) and v <= bound for v in values)
            and (scale is not None or all(isinstance(v, int) for v in values))):
        what = "an output size (integers up to 8192)" if scale is None else "a scale factor above 0, at most 64"
        raise ModelConfigError(f"{where}: nn.Upsample {'size' if scale is None else 'scale_factor'} "
                               f"{size if scale is None else scale!r} must be {what}")
    align = given.get("align_corners")
    linear = ("linear", "bilinear", "bicubic", "trilinear")
    if align is not None and (not isinstance(align, bool) or mode not in linear):
        raise ModelConfigError(f"{where}: nn.Upsample align_corners must be true/false and only with the linear "
                               f"modes (linear, bilinear, bicubic, trilinear), got {align!r} with mode {mode!r}")


def _numbers(value, where, limit=None):
    """Every number in a row's args is finite, and an integer is at most ``limit`` (MAX_ARG: channels, kernels,
    sizes)."""
    limit = MAX_ARG if limit is None else limit
    stack = [(value, "arg")]
    while stack:
        v, label = stack.pop()
        if isinstance(v, (list, tuple)):
            stack.extend((x, label) for x in v)
        elif isinstance(v, dict):
            stack.extend((x, str(k)) for k, x in v.items())  # a hyper-parameter: named by its key
        elif isinstance(v, float) and not math.isfinite(v):
            raise ModelConfigError(f"{where}: the {label} {v!r} is not a finite number")
        elif isinstance(v, int) and not isinstance(v, bool) and abs(v) > limit:
            raise ModelConfigError(f"{where}: the {label} {v:,} is larger than any layer takes (channels, kernel "
                                   f"sizes, paddings and counts are at most {limit:,}; yolov5x's widest row is 1280)")


def _members(args, names):
    """How many registered layers the args name (a Chain's members, a C3's attn:), each built once per repeat."""
    count, stack = 0, list(args)
    while stack:
        v = stack.pop()
        if isinstance(v, str) and v.lower() in names:
            count += 1
        elif isinstance(v, (list, tuple)):
            stack.extend(v)
        elif isinstance(v, dict):
            stack.extend(v.values())
    return count


def _torchvision(args, where):
    """ultralytics' TorchVision row downloads torchvision weights when built: only already-cached ones are accepted
    (offline it was a URLError traceback); the message says how to fetch them once."""
    import torch
    import torchvision

    model = args[1] if len(args) > 1 else None
    weights = args[2] if len(args) > 2 else "DEFAULT"
    if not (isinstance(model, str) and model in torchvision.models.list_models()):
        raise ModelConfigError(f"{where}: TorchVision takes [channels, model, weights, ...] with a torchvision model "
                               f"name (e.g. convnext_tiny), got {args!r}")
    if weights in (None, False, "None", "none", ""):
        return
    try:
        url = torchvision.models.get_model_weights(model)[str(weights)].url if str(weights) != "DEFAULT" else \
            torchvision.models.get_model_weights(model).DEFAULT.url
    except (KeyError, ValueError, AttributeError):
        raise ModelConfigError(f"{where}: {weights!r} is not a weights name of torchvision's {model} (use DEFAULT, "
                               f"a name of torchvision.models.get_model_weights({model!r}), or False)") from None
    cached = __import__("pathlib").Path(torch.hub.get_dir()) / "checkpoints" / url.rpartition("/")[2]
    if not cached.is_file():
        raise ModelConfigError(
            f"{where}: building it downloads torchvision's {model} weights ({url}), which are not in the torch hub "
            f"cache ({cached.parent}). Download them once on a machine with network: python -c \"import torchvision; "
            f"torchvision.models.get_model({model!r}, weights={str(weights)!r})\", or give weights False.")


def check_model_yaml(d):
    """Refuse a model YAML beyond the bounds above, before anything is built: its size and nesting (aliases
    expanded), ``nc``, ``depth_multiple``/``width_multiple``/``scales:``, and per row the repeats (as written and
    scaled), its numbers, container rows (``nn.Module``...), the layers it builds (repeats × members) and a rough
    parameter estimate; an empty ``head:``; a TorchVision row whose weights would be downloaded."""
    if not isinstance(d, dict):
        return  # the parsers say what a model YAML is
    check_size(d)
    nc = d.get("nc")
    if nc is not None and not (isinstance(nc, int) and not isinstance(nc, bool) and 1 <= nc <= MAX_NC):
        raise ModelConfigError(f"model YAML 'nc: {nc!r}': must be the number of classes, an integer from 1 to "
                               f"{MAX_NC:,}")
    gd, gw, cap = _scales(d)
    backbone, head = d.get("backbone"), d.get("head")
    if "head" in d and head in (None, []):
        raise ModelConfigError("model YAML 'head:' is empty; a model needs its head rows (at least the detection "
                               "layer, e.g. [[15, 18, 21], 1, Detect, [nc]])")
    if not all(isinstance(section, list) for section in (backbone, head)):
        return  # the parsers' own messages
    from yolo_attn.registry.layers import layer_names

    names = {name.lower() for name in layer_names()}  # a Chain's members, a C3's attn:
    modules = params = 0
    for i, row in enumerate(backbone + head):
        if not (isinstance(row, (list, tuple)) and len(row) == 4):
            continue  # check_row names it
        _, n, name, args = row
        where = f"{row_label(i, len(backbone))}, {name}"
        if isinstance(name, str) and name in NOT_LAYERS:
            raise ModelConfigError(f"{where}: {name} is a container or base class, not a layer a row can build; name "
                                   f"a layer (nn.Upsample, Conv, CBAM, ...)")
        if not (isinstance(n, int) and not isinstance(n, bool) and n >= 1) or not isinstance(args, list):
            continue  # check_row names it
        check_repeats(n, gd, where)
        if name == "nn.Upsample":  # (ultralytics checks none of it; a scale of 10⁴ allocates terabytes)
            words = {"None": None, "True": True, "False": False}
            plain = [words.get(a, a) if isinstance(a, str) else a for a in args]
            kwargs = plain.pop() if plain and isinstance(plain[-1], dict) else {}
            if not any(isinstance(a, str) for a in plain[:2]):  # (words there: the parser's own resolution names them)
                check_upsample(plain, kwargs, where)
        torch_row = isinstance(name, str) and name.startswith("nn.")
        # a torch layer's ints (padding, size, features) get no channel rule or shape check from ultralytics
        _numbers(args, where, MAX_CHANNELS if torch_row else MAX_ARG)
        repeats = max(round(n * gd), 1) if n > 1 else n
        modules += repeats * (1 + _members(args, names))
        if modules > MAX_MODULES:
            raise ModelConfigError(f"{where}: the rows up to this one build more than {MAX_MODULES:,} layers "
                                   f"(repeats × the layers a row names); the stock YAMLs count at most 99")
        if args and isinstance(args[0], int) and not isinstance(args[0], bool) and not torch_row:
            # (the engine's layers: their first arg is the channel count; torch layers' is not, e.g. nn.ZeroPad2d)
            c = min(args[0], cap) * gw
            params += repeats * 9 * c * c  # a 3x3 conv of c channels per repeat: the order of magnitude
            if params > MAX_PARAMS_ESTIMATE:
                raise ModelConfigError(f"{where}: the rows up to this one would hold about {params:,.0f} parameters "
                                       f"(3x3 convolutions of their channels × width × repeats), above the "
                                       f"{MAX_PARAMS_ESTIMATE:,} yolo-attn accepts (yolov5x6: 3.7e8 by this "
                                       f"estimate, 140M real). Check the channels, width and repeats.")
        if name == "TorchVision":
            _torchvision(args, where)


__all__ = ["MAX_ARG", "MAX_CHANNELS", "MAX_MODULES", "MAX_MULTIPLE", "MAX_NC", "MAX_NESTING", "MAX_PARAMS",
           "MAX_REPEATS", "MAX_VALUES", "NOT_LAYERS", "UPSAMPLE_MODES", "check_channels", "check_model_yaml",
           "check_repeats", "check_size", "check_upsample", "positive_number", "row_label"]
