"""A safe replacement for yolov5's ``parse_model``: no ``eval``, registered attention layers, clear errors.

yolov5 builds every model (train, val, detect, export, hub) through ``yolov5.models.yolo.parse_model``, which
``eval``s layer names and args from the YAML. The ``parse_model`` below resolves names through the registry, yolov5's
own layer set and ``torch.nn``, accepts only literal args and the symbols yolov5's YAMLs use, validates every row
before building anything, builds the model once on the meta device (no memory, no compute) to refuse sizes no YOLO
model has and to run the shape check that names the failing row, and keeps yolov5's channel rules, printout and
module attributes (``i``, ``f``, ``type``, ``np``) so that checkpoints and tooling see the same model they always did.
``yolo_attn.engines.yolov5`` installs it (patch ``safe_parse_model``).

Beyond yolov5's own rows it reads other projects' spelling of attention rows (``[-1, 1, CBAM, [1024]]``: the channel
count first, ``yaml_rows.foreign_channel_args``) and attention inside C3's bottlenecks (``[-1, 3, C3, [256, {attn: se}]]``,
``c3attn``), also in other projects' spelling ``C3_SE`` (``engines.inner``). Every mistake is a ModelConfigError naming the row, never a traceback or a hang.
"""
import inspect

import torch
from torch import nn

from yolo_attn.engines import identity as identity_start
from yolo_attn.engines import inner
from yolo_attn.engines.shapes import (CHECK_SIZE, MAX_ELEMENTS, check_budget,  # noqa: F401  (the check's bounds)
                                     check_shapes)
from yolo_attn.errors import ModelConfigError
from yolo_attn.registry import find_layer
from yolo_attn.yaml_rows import (attention_channels, build_row, check_channels, check_model_fields, check_repeats,
                                 check_model_yaml, check_row, check_upsample, foreign_channel_args, identity_rows_of,
                                 make_divisible, resolve_activation, resolve_arg, row_label, torch_layer, unknown_layer)

# yolov5 layers whose first arg is the output channel count (scaled by width_multiple), as yolov5's parse_model
# lists them; the names are resolved from yolov5.models.common at parse time.
_CONV_LIKE = ("Conv", "GhostConv", "Bottleneck", "GhostBottleneck", "SPP", "SPPF", "DWConv", "MixConv2d", "Focus",
              "CrossConv", "BottleneckCSP", "C3", "C3TR", "C3SPP", "C3Ghost", "nn.ConvTranspose2d",
              "DWConvTranspose2d", "C3x")
_REPEATED = ("BottleneckCSP", "C3", "C3TR", "C3Ghost", "C3x")
# Classes in yolov5's model modules that are models or wrappers, not layers a YAML row can name.
_NOT_LAYERS = ("AutoShape", "BaseModel", "DetectMultiBackend", "DetectionModel", "Ensemble", "Model",
               "SegmentationModel", "ClassificationModel")


def yolov5_layers():
    """Every layer class yolov5's own parse_model can name (its module namespace), by name."""
    import yolov5.models.common as common
    import yolov5.models.experimental as experimental
    import yolov5.models.yolo as yolo

    layers = {}
    for module in (common, experimental, yolo):
        for name, obj in vars(module).items():
            if inspect.isclass(obj) and issubclass(obj, nn.Module) and obj.__module__.startswith("yolov5.") \
                    and name not in _NOT_LAYERS:
                layers.setdefault(name, obj)
    return layers


def resolve_layer(name, where, layers):
    """(kind, class-or-spec) for a YAML layer name; kind is 'attention', 'yolov5' or 'torch'."""
    if name.startswith("nn."):
        cls = torch_layer(name)
        if cls is not None:
            return "torch", cls
    elif name in layers:
        return "yolov5", layers[name]
    spec = find_layer(name)
    if spec is not None:
        return "attention", spec
    raise unknown_layer(name, where, layers, "yolov5")


def _validate_rows(d, layers, notes=None):
    """Check every row's shape, layer name, args and 'from' indices before anything is built (``notes``: a list that
    gets one line per row read from another project's spelling)."""
    for key in ("backbone", "head", "nc", "depth_multiple", "width_multiple", "anchors"):
        if key not in d:
            raise ModelConfigError(f"model YAML: the '{key}:' field is missing (see model_yamls/yolov5s.yaml)")
    for key in ("backbone", "head"):
        if not isinstance(d[key] or [], list):
            raise ModelConfigError(f"model YAML '{key}:' must be a list of [from, number, module, args] rows, "
                                   f"got {type(d[key]).__name__}")
    check_model_fields(d)
    rows = list(d["backbone"] or []) + list(d["head"] or [])
    n_backbone = len(d["backbone"] or [])
    symbols = {"nc": d["nc"], "anchors": d["anchors"], "None": None, "True": True, "False": False}
    resolved = []
    for i, row in enumerate(rows):
        where = row_label(i, n_backbone)
        check_row(row, i, where)
        f, n, name, args = row
        where = f"{where}, {name}"
        spelled = None if name in layers or find_layer(name) else inner.spelled_block(name, ("C3",), where)
        if spelled:
            name, x = spelled
            args = inner.with_spelled_attention(name, x, list(args), where)
            if notes is not None:
                notes.append(inner.spelled_note(where, f, n, name, args))
        kind, layer = resolve_layer(name, where, layers)
        args = [resolve_arg(a, symbols, where) for a in args]
        resolved.append((where, f, n, kind, layer, args))
    return resolved


def parse_model(d, ch):
    """Drop-in replacement for ``yolov5.models.yolo.parse_model(model_dict, [input_channels])``.

    The YAML's ``activation:`` applies to the model being built only: yolov5 left ``Conv.default_act`` set
    class-wide afterwards, so every model built later in the same process silently used that activation too.
    """
    from yolov5.models.common import Conv

    if not isinstance(d, dict):
        raise ModelConfigError(f"a model YAML is a mapping with backbone:, head:, nc:, ..., got {type(d).__name__}")
    check_model_yaml(d)  # the bounds of every engine (size, nesting, repeats, numbers, layers built, ...)
    default_act = Conv.default_act
    try:
        with torch.device("meta"):  # sizes and shapes first, without memory or compute
            model, save, labels = _parse_model(d, ch, log=False)
            check_budget(model, labels)
            checked = check_shapes(model, save, labels, ch[0], device="meta")
        Conv.default_act = default_act
        model, save, labels = _parse_model(d, ch)
    finally:
        Conv.default_act = default_act
    if not checked:
        check_shapes(model, save, labels, ch[0])
    return model, save


def _parse_model(d, ch, log=True):
    from yolov5.utils.general import LOGGER

    if log:
        LOGGER.info(f"\n{'':>3}{'from':>18}{'n':>3}{'params':>10}  {'module':<40}{'arguments':<30}")
    layers = yolov5_layers()
    notes = []
    rows = _validate_rows(d, layers, notes)
    for note in notes if log else ():
        LOGGER.info(note)
    nc, gd, gw, anchors, act = d["nc"], d["depth_multiple"], d["width_multiple"], d["anchors"], d.get("activation")
    if act:
        from yolov5.models.common import Conv
        from yolov5.utils.general import colorstr

        Conv.default_act = resolve_activation(act)  # read by Conv.__init__; parse_model restores it afterwards
        if log:
            LOGGER.info(f"{colorstr('activation:')} {act}")
    na = (len(anchors[0]) // 2) if isinstance(anchors, list) else anchors
    no = na * (nc + 5)
    conv_like = {torch_layer(x) if x.startswith("nn.") else layers[x] for x in _CONV_LIKE}
    repeated = {layers[x] for x in _REPEATED}

    identity_rows = identity_rows_of(d, len(rows))
    built, save, labels, written = [], [], [], [ch[0]]  # written: each row's channels as the YAML writes them
    for i, row in enumerate(rows):
        where = row[0]
        try:
            m_, c2, c2_written = _build_row(i, row, ch, written, gw, gd, nc, no, conv_like, repeated, layers,
                                            i in identity_rows, log)
        except ModelConfigError:
            raise
        except Exception as e:  # anything a row's own code raises on these args: the row and the args, no traceback
            given = row[5]
            raise ModelConfigError(f"{where}: cannot build it with args {given!r}: {type(e).__name__}: "
                                   f"{str(e).splitlines()[0] if str(e) else ''}") from None
        f = m_.f
        save.extend(x % i for x in ([f] if isinstance(f, int) else f) if x != -1)
        built.append(m_)
        labels.append(where)
        if i == 0:
            ch, written = [], []
        ch.append(c2)
        written.append(c2_written)
    return nn.Sequential(*built), sorted(save), labels


def _build_row(i, row, ch, written, gw, gd, nc, no, conv_like, repeated, layers, identity, log):
    """(module with yolov5's attributes, output channels, output channels as written) of one validated row."""
    from yolov5.models.common import C3, Concat, Contract, Expand
    from yolov5.models.yolo import Detect, Segment
    from yolov5.utils.general import LOGGER

    where, f, n, kind, m, args = row
    given, n_yaml = list(args), n  # as written in the YAML (symbols substituted), for messages and checks
    check_repeats(n, gd, where)
    n = n_ = max(round(n * gd), 1) if n > 1 else n
    kwargs, spec, c2_written = {}, None, None
    if kind == "attention":
        spec = m
        if spec.inputs == 1 and isinstance(f, int):
            args, message = foreign_channel_args(spec, f, n_yaml, args, (written[f], ch[f]), where)
        elif spec.inputs == 2 and isinstance(f, list) and len(f) == 2 and isinstance(f[0], int):
            args, message = foreign_channel_args(spec, f, n_yaml, args, (written[f[0]], ch[f[0]]), where)
        else:
            message = None
        if message and log:
            LOGGER.warning(message)
        args, kwargs, c2 = attention_channels(spec, f, n_yaml, args, ch, i, gw, where)
        c2_written = given[0] if spec.changes_channels else written[f if isinstance(f, int) else f[0]]
        m = spec.cls
    elif m is Concat:
        sources = f if isinstance(f, list) else [f]
        c2 = sum(ch[x] for x in sources)
        c2_written = sum(written[x] for x in sources)
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
        c2_written = written[f]
        if m in conv_like:
            if not args or not isinstance(args[0], int) or isinstance(args[0], bool):
                raise ModelConfigError(f"{where}: the first arg must be the output channel count, got {args!r}")
            c1, c2 = ch[f], args[0]
            c2_written = c2
            check_channels(c2, where)
            if c2 != no:
                c2 = make_divisible(c2 * gw, 8)
            if m is C3 and args and isinstance(args[-1], dict):
                m, kwargs = _c3_with_attention(args.pop(), where, identity, LOGGER.warning if log else None)
            args = [c1, c2, *args[1:]]
            if m in repeated or kwargs:
                args.insert(2, n)
                n = 1
        elif m is nn.BatchNorm2d:
            args, c2 = [ch[f]], ch[f]
        elif m in (Contract, Expand):
            if not (args and isinstance(args[0], int) and not isinstance(args[0], bool) and 1 <= args[0] <= 8):
                raise ModelConfigError(f"{where}: the first arg must be the gain, an integer from 1 to 8, "
                                       f"got {args!r}")
            c2 = ch[f] * args[0] ** 2 if m is Contract else ch[f] // args[0] ** 2
        else:
            c2 = ch[f]
            if m is nn.Upsample:
                check_upsample(args, kwargs, where)
    if m not in (Detect, Segment):
        check_channels(c2, where)

    m_ = build_row(m, args, kwargs, n, where, spec, given)
    if identity and not kwargs.get("attn"):
        identity_start.check_listed(spec, ch[f] if isinstance(f, int) else None, c2, where,
                                    blocks=" (or a C3 with {attn: ...})")
        m_ = identity_start.start(m_, spec, c2, where, LOGGER.warning if log else None)
    t = f"{m.__module__}.{m.__qualname__}".replace("__main__.", "")
    np_ = sum(x.numel() for x in m_.parameters())
    m_.i, m_.f, m_.type, m_.np = i, f, t, np_
    if log:
        shown = args if not kwargs else args + [{k: getattr(v, "label", v) for k, v in kwargs.items()}]
        LOGGER.info(f"{i:>3}{str(f):>18}{n_:>3}{np_:10.0f}  {t:<40}{str(shown):<30}")
    return m_, c2, c2_written if c2_written is not None else c2


def _c3_with_attention(mapping, where, identity, warn=None):
    """(C3Attn, {'attn': factory}) for a C3 row's trailing ``{attn: ...}`` mapping (``identity``: start each inner
    attention as the identity, from the YAML's ``identity_start:``, unless it already starts so: ``warn`` says so)."""
    from yolo_attn.engines.yolov5.c3attn import C3Attn

    return C3Attn, {"attn": inner.factory(mapping, where, identity, "yolov5", warn)}
