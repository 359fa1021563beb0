"""A safe, registry-aware replacement for ultralytics' ``parse_model`` (ultralytics 8.4.190).

ultralytics builds every model (``YOLO("x.yaml")``, the trainer's rebuild, a checkpoint's ``model.yaml``) through
``ultralytics.nn.tasks.parse_model``, which ``eval``s the YAML's ``activation:`` and resolves layer names from its
module namespace. ``parse_model`` below:

- validates every row first (shape, ``from`` indices, layer names, literal args) and raises a ModelConfigError
  naming the row instead of a bare ``KeyError``/``SyntaxError``; nothing of the YAML is ever evaluated;
- sends a YAML without registered layers to ultralytics' own parser (saved before patching), with ``activation:``
  resolved without ``eval``, so stock models stay exactly stock;
- builds YAMLs that name registered layers itself: the stock branches of ``tasks.parse_model`` (same channel,
  scale and ``legacy`` rules, same ``i``/``f``/``type``/``np`` attributes and printout) plus registry rows with
  the channel rules of ``yolo_attn.yaml_rows`` scaled by the YAML's ``scales:`` (width, max_channels) and
  depth, then a shape check that names the row that cannot run;
- builds blocks with attention inside: a ``C3k2``/``C2f``/``C3``/``C3k``/``C2PSA``/``A2C2f`` row with a trailing
  ``{attn: X}``, or spelled ``C3k2_X`` as other projects do (``engines.inner``; where X sits: ``blocks``). The
  mapping never reaches the block's own args (C3k2's fourth arg is ultralytics' own ``attn`` flag).

``Conv.default_act`` is restored in every case, also after an error (ultralytics leaves it changed then).
"""
import copy
import inspect
import logging

import torch
from torch import nn

from yolo_attn.engines import common
from yolo_attn.engines import identity as identity_start
from yolo_attn.engines import inner
from yolo_attn.engines.ultralytics.blocks import BLOCKS, with_attention
from yolo_attn.engines.shapes import check_budget, check_shapes
from yolo_attn.errors import ModelConfigError
from yolo_attn.registry import find_layer
from yolo_attn.yaml_rows import (attention_channels, build_row, check_row, identity_rows_of, make_divisible,
                                 resolve_activation, resolve_arg, row_label, torch_layer, unknown_layer)
from yolo_attn.yaml_rows.bounds import check_model_yaml

ENGINE = "ultralytics"
SYMBOLS = ("nc", "kpt_shape")  # names ultralytics' YAMLs use as args; everything else is a literal or a word
# yolo-attn's own keys of a model YAML (the stock parser would ignore them, so their presence routes to ours)
OWN_KEYS = ("identity_start",)


def stock_parse_model():
    """ultralytics' own parse_model (the original, also while the adapter is installed)."""
    from yolo_attn.engines.ultralytics.stock import original

    return original("ultralytics.nn.tasks", "parse_model")


def ultralytics_layers():
    """Every layer class a stock ultralytics YAML can name (nn.Module classes of ultralytics.nn.modules that
    ``ultralytics.nn.tasks`` imports), by name."""
    from ultralytics.nn import tasks

    return {name: obj for name, obj in vars(tasks).items()
            if inspect.isclass(obj) and issubclass(obj, nn.Module)
            and obj.__module__.startswith("ultralytics.nn.modules")}


def resolve_layer(name, where, layers):
    """(kind, class-or-spec): kind 'ultralytics', 'torch', 'torchvision' or 'attention' (the registry, checked
    last: ultralytics' and torch's names win, as in stock)."""
    if name in layers:
        return "ultralytics", layers[name]
    if name.startswith("nn."):
        cls = torch_layer(name)
        if cls is not None:
            return "torch", cls
    elif name.startswith("torchvision.ops."):
        import torchvision

        cls = getattr(torchvision.ops, name[len("torchvision.ops."):], None)
        if isinstance(cls, type) and issubclass(cls, nn.Module):
            return "torchvision", cls
    spec = find_layer(name)
    if spec is not None:
        return "attention", spec
    raise unknown_layer(name, where, layers, ENGINE)


def activation(text):
    """The YAML ``activation:`` (``nn.SiLU()``, ``torch.nn.ReLU()``, ``nn.LeakyReLU(0.1)``) without eval."""
    text = str(text).strip()
    return resolve_activation(text[len("torch."):] if text.startswith("torch.nn.") else text)


def _stock_locals():
    """Local variable names of stock parse_model: a string arg equal to one of them is replaced by its value
    there (``"d"`` passes the whole YAML dict), so only ``SYMBOLS`` are accepted among them."""
    from yolo_attn.engines.ultralytics.stock import original

    return set(original("ultralytics.nn.tasks", "parse_model").__code__.co_varnames) - set(SYMBOLS)


def check_format(d, where="model YAML"):
    """Refuse a yolov5-format YAML (anchor-based: ``anchors:``) with a message naming the right engine."""
    if not isinstance(d, dict) or "backbone" not in d or "head" not in d:
        raise ModelConfigError(f"{where}: not a model YAML (it needs 'backbone:' and 'head:' sections)")
    if "anchors" in d:
        raise ModelConfigError(
            f"{where} is a yolov5-format YAML (it has 'anchors:'), for the yolov5 engine, not ultralytics. Train it "
            f"with scripts/train.sh --cfg <it> (the engine is chosen from the YAML), or use an ultralytics YAML "
            f"(model_yamls/ultralytics/, e.g. yolo11n-cbam.yaml).")


def validate(d, notes=None):
    """[(where, from, number, kind, layer, args)] for every row, checked before anything is built. kind 'block': a
    block with attention inside, its args ending with the ``{attn: ...}`` mapping. ``notes``: a list that gets one
    line per row read from another project's spelling (``C3k2_EMA``)."""
    from ultralytics.nn.modules.block import C3k

    check_model_yaml(d)  # the bounds of every engine (yolo_attn.yaml_rows.bounds)
    check_format(d)
    layers = dict(ultralytics_layers(), C3k=C3k)  # C3k: not in tasks' namespace; rows of it are wired as C3's
    rows = list(d["backbone"] or []) + list(d["head"] or [])
    n_backbone = len(d["backbone"] or [])
    symbols = {"nc": d.get("nc"), "kpt_shape": d.get("kpt_shape", 1.0), "None": None, "True": True,
               "False": False}
    reserved = _stock_locals()
    resolved = []
    for i, row in enumerate(rows):
        where = row_label(i, n_backbone)
        check_row(row, i, where)
        f, n, name, args = row
        where = f"{where}, {name}"
        spelled = None
        if name not in layers and find_layer(name) is None:
            spelled = inner.spelled_block(name, BLOCKS, where)
        if spelled:
            name, x = spelled
            args = inner.with_spelled_attention(name, x, list(args), where)
            if notes is not None:
                notes.append(inner.spelled_note(where, f, n, name, args))
        kind, layer = resolve_layer(name, where, layers)
        args = [resolve_arg(a, symbols, where) for a in args]
        kind = _block_kind(name, kind, layer, args, where, layers)
        for a in args:
            if isinstance(a, str) and a in reserved:
                raise ModelConfigError(f"{where}: argument {a!r} is not a value; ultralytics would substitute its "
                                       f"parser's internal variable {a!r}. Write the value itself.")
        resolved.append((where, f, n, kind, layer, args))
    return resolved


def _block_kind(name, kind, layer, args, where, layers):
    """'block' for a block row with a trailing mapping (``{attn: ...}``, its keys checked when it is built). No
    ultralytics or torch layer takes a mapping: elsewhere one is refused, never passed on as a positional arg (a
    mapping in C3k2's fourth place would switch on its own PSA attention)."""
    if kind == "attention":
        return kind
    at = [k for k, a in enumerate(args) if isinstance(a, dict)]
    if not at:
        return kind
    block = next((b for b in BLOCKS if layers.get(b) is layer), None)
    if block is None and any("attn" in args[k] for k in at):
        raise ModelConfigError(f"{where}: {name} cannot carry attention inside ({{attn: ...}}); the blocks that can "
                               f"are {', '.join(BLOCKS)}. Put the attention on a row of its own after this one, e.g. "
                               f"[-1, 1, {inner.inner_layers()[0]}, []]")
    if block is None:
        raise ModelConfigError(f"{where}: {name} takes no mapping among its args, got {args!r}; write its args as "
                               f"plain values (only the blocks {', '.join(BLOCKS)} take a trailing {{attn: ...}})")
    if at != [len(args) - 1]:
        raise ModelConfigError(f"{where}: the {{attn: ...}} mapping goes last in the args, e.g. "
                               f"[256, False, 0.25, {{attn: cbam}}], got {args!r}")
    return "block"


def uses_registry(rows, d):
    from ultralytics.nn.modules.block import C3k

    return any(kind in ("attention", "block") or layer is C3k for _, _, _, kind, layer, _ in rows) \
        or any(k in d for k in OWN_KEYS)


def scale_of(d, needed):
    """(depth, width, max_channels, scale) from the YAML; ``needed``: a missing scale is an error (attention
    YAMLs), not ultralytics' silent 'n'."""
    scales, scale = d.get("scales"), d.get("scale")
    if not scales:
        return d.get("depth_multiple", 1.0), d.get("width_multiple", 1.0), float("inf"), scale
    if not isinstance(scales, dict) or not all(isinstance(v, (list, tuple)) and len(v) == 3 for v in scales.values()):
        raise ModelConfigError(f"model YAML 'scales:' must map each scale to [depth, width, max_channels], "
                               f"got {scales!r}")
    if not scale:
        if needed and len(scales) > 1:
            raise ModelConfigError(
                f"model YAML {d.get('yaml_file', '')!r}: its scale is unknown (scales: {', '.join(scales)}). Put the "
                f"letter in the file name as ultralytics does (yolo11n-cbam.yaml: scale n) or add 'scale: n'.")
        scale = next(iter(scales))
    if scale not in scales:
        raise ModelConfigError(f"model YAML: scale {scale!r} is not one of its scales: {', '.join(scales)}")
    depth, width, max_channels = scales[scale]
    return depth, width, max_channels, scale


def parse_model(d, ch, verbose=True):
    """Drop-in replacement for ``ultralytics.nn.tasks.parse_model(d, ch, verbose)``: (nn.Sequential, save)."""
    from ultralytics.nn.tasks import Conv

    notes = []
    rows = validate(d, notes)
    if verbose and notes:
        from ultralytics.utils import LOGGER

        for note in notes:
            LOGGER.info(note)
    default_act = Conv.default_act
    try:
        _check_sizes(d, ch)
        return _parse(d, ch, verbose, rows)
    finally:
        Conv.default_act = default_act


def _parse(d, ch, verbose, rows, shape_check=True):
    """ultralytics' own parser for a YAML without registered layers (``activation:`` resolved without ``eval``),
    else ours; the caller restores Conv.default_act."""
    from ultralytics.nn.tasks import Conv

    if uses_registry(rows, d):
        return parse_with_registry(d, ch, verbose, rows, shape_check)
    if d.get("activation"):
        Conv.default_act = activation(d["activation"])
    return stock_parse_model()({k: v for k, v in d.items() if k != "activation"}, ch, verbose)


def _check_sizes(d, ch):
    """Sizes before memory: the model built once on the meta device (no memory, no compute), its parameters counted
    and each row run on a small image for its output size (``engines.shapes``), so that a row within the YAML bounds
    that would still take gigabytes (``[-1, 1, nn.ZeroPad2d, [16384]]``) is refused naming it. A row the meta
    device cannot build or run is left to the real build, which reports it."""
    from ultralytics.utils import LOGGER

    d = copy.deepcopy(d)  # the builds change a row's args in place (ultralytics appends the head's channels)
    rows = validate(d)
    labels = [row[0] for row in rows]
    try:
        with torch.device("meta"), common.quiet(LOGGER, logging.ERROR):  # the real build logs what it has to say
            model, save = _parse(d, ch, False, rows, shape_check=False)
    except ModelConfigError:
        raise
    except Exception:  # noqa: BLE001  (an operation without a meta implementation: the real build decides)
        return
    if len(model) == len(labels):
        check_budget(model, labels)
        check_shapes(model, save, labels, ch, device="meta", sizes_only=True)


def _stock_sets(T):
    """ultralytics' base_modules / repeat_modules / head families (tasks.py parse_model), resolved from ``tasks``."""
    from ultralytics.nn.modules.block import C3k

    base = frozenset({C3k, T.Classify, T.Conv, T.ConvTranspose, T.GhostConv, T.Bottleneck, T.GhostBottleneck, T.SPP,
                      T.SPPF, T.C2fPSA, T.C2PSA, T.DWConv, T.Focus, T.BottleneckCSP, T.C1, T.C2, T.C2f, T.C3k2,
                      T.RepNCSPELAN4, T.ELAN1, T.ADown, T.AConv, T.SPPELAN, T.C2fAttn, T.C3, T.C3TR, T.C3Ghost,
                      nn.ConvTranspose2d, T.DWConvTranspose2d, T.C3x, T.RepC3, T.PSA, T.SCDown, T.C2fCIB, T.A2C2f})
    repeat = frozenset({C3k, T.BottleneckCSP, T.C1, T.C2, T.C2f, T.C3k2, T.C2fAttn, T.C3, T.C3TR, T.C3Ghost, T.C3x,
                        T.RepC3, T.C2fPSA, T.C2fCIB, T.C2PSA, T.A2C2f})
    heads = frozenset({T.Detect, T.WorldDetect, T.YOLOEDetect, T.Segment, T.Segment26, T.YOLOESegment,
                       T.YOLOESegment26, T.Pose, T.Pose26, T.OBB, T.OBB26})
    segments = frozenset({T.Segment, T.YOLOESegment, T.Segment26, T.YOLOESegment26})
    return base, repeat, heads, segments


def _stock_row(T, m, f, n, args, ch, c2, state, sets):
    """One stock row as tasks.parse_model wires it: (args, c2, n). ``c2``: the previous row's output channels, which
    stock keeps for the branches that do not set them (heads, BatchNorm2d, AIFI, ...). ``state``: legacy, scale,
    width, max_channels, reg_max, end2end (legacy is updated here, as stock does)."""
    base, repeat, heads, segments = sets
    width, max_channels = state["width"], state["max_channels"]
    if m in base:
        c1, c2 = ch[f], args[0]
        if m is not T.Classify:
            c2 = make_divisible(min(c2, max_channels) * width, 8)
        if m is T.C2fAttn:
            args[2] = int(max(round(min(args[2], max_channels // 2 // 32)) * width, 1) if args[2] > 1 else args[2])
            hidden = int(c2 * (args[6] if len(args) > 6 else 0.5))
            if hidden % args[2]:
                raise ModelConfigError(f"C2fAttn hidden channels {hidden} must be divisible by nh={args[2]}")
            args[1] = hidden
        args = [c1, c2, *args[1:]]
        if m in repeat:
            args.insert(2, n)
            n = 1
        if m is T.C3k2:
            state["legacy"] = False
            if state["scale"] in {"m", "l", "x"}:
                args[3:4] = [True]
        if m is T.A2C2f:
            state["legacy"] = False
            if state["scale"] in {"l", "x"}:
                args.extend((True, 1.2))
        if m is T.C2fCIB:
            state["legacy"] = False
    elif m is T.AIFI:
        args = [ch[f], *args]
    elif m in (T.HGStem, T.HGBlock):
        c1, cm, c2 = ch[f], args[0], args[1]
        args = [c1, cm, c2, *args[2:]]
        if m is T.HGBlock:
            args.insert(4, n)
            n = 1
    elif m is T.ResNetLayer:
        c2 = args[1] if args[3] else args[1] * 4
    elif m is nn.BatchNorm2d:
        args = [ch[f]]
    elif m is T.Concat:
        c2 = sum(ch[x] for x in f)
    elif m in heads:
        args.extend([state["reg_max"], state["end2end"], [ch[x] for x in f]])
        if m in segments:
            args[2] = make_divisible(min(args[2], max_channels) * width, 8)
        if m is not T.WorldDetect:
            m.legacy = state["legacy"]  # a class attribute, as stock sets it
    elif m is T.Depth:
        args = [*args[:1], [ch[x] for x in f]]
    elif m in (T.SemanticSegment, T.v10Detect):
        args.append([ch[x] for x in f])
    elif m in (T.ImagePoolingAttn, T.RTDETRDecoder):
        args.insert(1, [ch[x] for x in f])
    elif m is T.CBLinear:
        c2, c1 = args[0], ch[f]
        args = [c1, c2, *args[1:]]
    elif m is T.CBFuse:
        c2 = ch[f[-1]]
    elif m in (T.TorchVision, T.Index):
        c2, args = args[0], [*args[1:]]
    else:
        c2 = ch[f]
    return args, c2, n


def parse_with_registry(d, ch, verbose, rows, shape_check=True):
    """tasks.parse_model's build, with registry rows; ``rows`` from ``validate``. Restores Conv.default_act."""
    from ultralytics.nn import tasks as T

    default_act = T.Conv.default_act
    try:
        return _build(d, ch, verbose, rows, shape_check)
    finally:
        T.Conv.default_act = default_act


def _build(d, ch, verbose, rows, shape_check=True):
    from ultralytics.nn import tasks as T
    from ultralytics.utils import LOGGER, colorstr

    depth, width, max_channels, scale = scale_of(d, needed=True)
    state = {"legacy": True, "scale": scale, "width": width, "max_channels": max_channels,
             "reg_max": d.get("reg_max", 16), "end2end": d.get("end2end")}
    act = d.get("activation")
    if act:
        T.Conv.default_act = activation(act)  # parse_model restores it
        if verbose:
            LOGGER.info(f"{colorstr('activation:')} {act}")
    if verbose:
        LOGGER.info(f"\n{'':>3}{'from':>20}{'n':>3}{'params':>10}  {'module':<45}{'arguments':<30}")
    sets = _stock_sets(T)
    identity_rows = identity_rows_of(d, len(rows))
    channels, ch = ch, [ch]
    layers, save, labels, c2 = [], [], [], ch[-1]
    for i, (where, f, n, kind, m, args) in enumerate(rows):
        n_yaml, given = n, list(args)
        n = n_ = max(round(n * depth), 1) if n > 1 else n
        spec, kwargs = None, {}
        if kind == "attention":
            spec = m
            if spec.changes_channels and args and isinstance(args[0], (int, float)) and not isinstance(args[0], bool):
                args = [min(args[0], max_channels), *args[1:]]  # ultralytics' max_channels cap, before the width
            args, kwargs, c2 = attention_channels(spec, f, n_yaml, args, ch, i, width, where)
            m = spec.cls
        else:
            _check_sources(m, f, where, sets[2])
            if kind == "block":
                *args, mapping = args
                kwargs["inner"] = inner.factory(mapping, where, i in identity_rows, ENGINE, LOGGER.warning,
                                                m.__name__, "this block")
            args, c2, n = _stock_row(T, m, f, n, list(args), ch, c2, state, sets)
        m_ = build_row(m, args, {}, n, where, spec, given) if kind == "block" else \
            build_row(m, args, kwargs, n, where, spec, given)
        if kind == "block":
            m_ = _attend(m_, m.__name__, kwargs["inner"], where)
        if m is T.SPPF and len(args) <= 3:
            for block in m_ if n > 1 else [m_]:
                block.cv1.act = T.Conv.default_act
        if i in identity_rows and kind != "block":
            identity_start.check_listed(spec, ch[f] if isinstance(f, int) else None, c2, where,
                                        blocks=f" (or a {'/'.join(BLOCKS)} row with {{attn: ...}})")
            m_ = identity_start.start(m_, spec, c2, where, LOGGER.warning)
        t = str(m)[8:-2].replace("__main__.", "")
        m_.np = sum(x.numel() for x in m_.parameters())
        m_.i, m_.f, m_.type = i, f, t
        if verbose:
            shown = args if not kwargs else args + [{k: getattr(v, "label", v) for k, v in kwargs.items()}]
            LOGGER.info(f"{i:>3}{f!s:>20}{n_:>3}{m_.np:10.0f}  {t:<45}{shown!s:<30}")
        save.extend(x % i for x in ([f] if isinstance(f, int) else f) if x != -1)
        layers.append(m_)
        labels.append(where)
        if i == 0:
            ch = []
        ch.append(c2)
    model, save = nn.Sequential(*layers), sorted(save)
    if shape_check and isinstance(layers[-1], T.Detect) and any(kind in ("attention", "block")
                                                                for _, _, _, kind, _, _ in rows):
        check_shapes(model, save, labels, channels)
    return model, save


def _attend(block, name, attn, where):
    """``block`` with the row's attention inside (``blocks.with_attention``); the layer's own errors name the row."""
    try:
        return with_attention(block, name, attn)[0]
    except (TypeError, ValueError) as e:
        raise ModelConfigError(f"{where}: cannot put 'attn: {attn.label!r}' inside {name}: {e}") from None


def _check_sources(m, f, where, heads):
    from ultralytics.nn import tasks as T

    many = m is T.Concat or m in heads or m in (T.CBFuse, T.Depth, T.SemanticSegment, T.v10Detect,
                                                T.ImagePoolingAttn, T.RTDETRDecoder)
    if many and not isinstance(f, list):
        raise ModelConfigError(f"{where}: this layer takes a list of 'from' indices, got {f!r}")
    if not many and not isinstance(f, int):
        raise ModelConfigError(f"{where}: this layer takes one 'from' index, got {f!r}")


__all__ = ["parse_model", "parse_with_registry", "validate", "ultralytics_layers", "check_format", "activation"]
