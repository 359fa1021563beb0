"""A safe replacement for yolov5's ``parse_model``: no ``eval``, registered attention layers, clear errors.

yolov5 builds every model (train, val, detect, export, hub) through ``yolov5.models.yolo.parse_model``, which
``eval``s layer names and args from the YAML. The ``parse_model`` below resolves names through the registry, yolov5's
own layer set and ``torch.nn``, accepts only literal args and the symbols yolov5's YAMLs use, validates every row
before building anything, runs a shape check of the built rows that names the failing row, and keeps yolov5's
channel rules, printout and module attributes (``i``, ``f``, ``type``, ``np``) so that checkpoints and tooling see
the same model they always did. ``yolo_attn.engines.yolov5`` installs it (patch ``safe_parse_model``).
"""
import inspect

import torch
from torch import nn

from yolo_attn.errors import ModelConfigError
from yolo_attn.modules import IdentityStart
from yolo_attn.registry import find_layer
from yolo_attn.registry.rows import (attention_channels, build_row, check_row, identity_rows_of, make_divisible,
                                     resolve_activation, resolve_arg, row_label, torch_layer, unknown_layer)

# yolov5 layers whose first arg is the output channel count (scaled by width_multiple), as yolov5's parse_model
# lists them; the names are resolved from yolov5.models.common at parse time.
_CONV_LIKE = ("Conv", "GhostConv", "Bottleneck", "GhostBottleneck", "SPP", "SPPF", "DWConv", "MixConv2d", "Focus",
              "CrossConv", "BottleneckCSP", "C3", "C3TR", "C3SPP", "C3Ghost", "nn.ConvTranspose2d",
              "DWConvTranspose2d", "C3x")
_REPEATED = ("BottleneckCSP", "C3", "C3TR", "C3Ghost", "C3x")
# Classes in yolov5's model modules that are models or wrappers, not layers a YAML row can name.
_NOT_LAYERS = ("AutoShape", "BaseModel", "DetectMultiBackend", "DetectionModel", "Ensemble", "Model",
               "SegmentationModel", "ClassificationModel")
CHECK_SIZE = 64  # the shape check's input (pixels): every row must accept what the row before gives it


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


def _validate_rows(d, layers):
    """Check every row's shape, layer name, args and 'from' indices before anything is built."""
    for key in ("backbone", "head", "nc", "depth_multiple", "width_multiple", "anchors"):
        if key not in d:
            raise ModelConfigError(f"model YAML: the '{key}:' field is missing (see model_yamls/yolov5s.yaml)")
    rows = list(d["backbone"] or []) + list(d["head"] or [])
    n_backbone = len(d["backbone"] or [])
    symbols = {"nc": d["nc"], "anchors": d["anchors"], "None": None, "True": True, "False": False}
    resolved = []
    for i, row in enumerate(rows):
        where = row_label(i, n_backbone)
        check_row(row, i, where)
        f, n, name, args = row
        where = f"{where}, {name}"
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

    default_act = Conv.default_act
    try:
        model, save, labels = _parse_model(d, ch)
    finally:
        Conv.default_act = default_act
    check_shapes(model, save, labels, ch[0])
    return model, save


def _parse_model(d, ch):
    from yolov5.models.common import Concat, Contract, Expand
    from yolov5.models.yolo import Conv, Detect, Segment
    from yolov5.utils.general import LOGGER, colorstr

    LOGGER.info(f"\n{'':>3}{'from':>18}{'n':>3}{'params':>10}  {'module':<40}{'arguments':<30}")
    layers = yolov5_layers()
    rows = _validate_rows(d, layers)
    nc, gd, gw, anchors, act = d["nc"], d["depth_multiple"], d["width_multiple"], d["anchors"], d.get("activation")
    if act:
        Conv.default_act = resolve_activation(act)  # read by Conv.__init__; parse_model restores it afterwards
        LOGGER.info(f"{colorstr('activation:')} {act}")
    na = (len(anchors[0]) // 2) if isinstance(anchors, list) else anchors
    no = na * (nc + 5)
    conv_like = {torch_layer(x) if x.startswith("nn.") else layers[x] for x in _CONV_LIKE}
    repeated = {layers[x] for x in _REPEATED}

    identity_rows = identity_rows_of(d, len(rows))
    built, save, labels = [], [], []
    for i, (where, f, n, kind, m, args) in enumerate(rows):
        given, n_yaml = list(args), n  # as written in the YAML (symbols substituted), for messages and checks
        n = n_ = max(round(n * gd), 1) if n > 1 else n
        kwargs, spec = {}, None
        if kind == "attention":
            spec = m
            args, kwargs, c2 = attention_channels(spec, f, n_yaml, args, ch, i, gw, where)
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

        m_ = build_row(m, args, kwargs, n, where, spec, given)
        if i in identity_rows:
            if spec is None or not spec.keeps_channels or c2 != ch[f]:
                raise ModelConfigError(f"{where}: identity_start lists this row, but only one-input attention "
                                       f"layers that keep their channels can start as the identity")
            m_ = IdentityStart(m_)
        t = f"{m.__module__}.{m.__qualname__}".replace("__main__.", "")
        np_ = sum(x.numel() for x in m_.parameters())
        m_.i, m_.f, m_.type, m_.np = i, f, t, np_
        LOGGER.info(f"{i:>3}{str(f):>18}{n_:>3}{np_:10.0f}  {t:<40}{str(args if not kwargs else args + [kwargs]):<30}")
        save.extend(x % i for x in ([f] if isinstance(f, int) else f) if x != -1)
        built.append(m_)
        labels.append(where)
        if i == 0:
            ch = []
        ch.append(c2)
    return nn.Sequential(*built), sorted(save), labels


def check_shapes(model, save, labels, channels=3, size=CHECK_SIZE):
    """Run the rows once on a small image (no gradients; eval mode except the head, whose training-mode output
    needs no strides), as yolov5's ``_forward_once`` does, so that a row that cannot take what it is given (maps of
    different resolutions fused, a gate finer than its skip) is reported with its YAML row (``labels``) instead of
    a traceback from deep inside the build."""
    training = model.training
    outputs, x = [], torch.zeros(1, channels, size, size)
    model.eval()
    model[-1].train()
    try:
        with torch.no_grad():
            for m, where in zip(model, labels):
                if m.f != -1:
                    x = outputs[m.f] if isinstance(m.f, int) else [x if j == -1 else outputs[j] for j in m.f]
                try:
                    x = m(x)
                except (RuntimeError, ValueError) as e:
                    shapes = [tuple(t.shape) for t in (x if isinstance(x, list) else [x])]
                    raise ModelConfigError(f"{where}: cannot run on its input(s) of shape "
                                           f"{', '.join(map(str, shapes))} (a {size}×{size} image): "
                                           f"{str(e).splitlines()[0]}") from None
                outputs.append(x if m.i in save else None)
    finally:
        model.train(training)
