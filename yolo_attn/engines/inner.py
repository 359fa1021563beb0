"""Attention inside an engine's blocks, read the same way by both engines.

A block row (yolov5's ``C3``; ultralytics' ``C3k2``, ``C2f``, ``C3``, ``C3k``, ``C2PSA``, ``A2C2f``) takes a trailing
mapping naming any registered one-input, channel-keeping layer: ``{attn: cbam}`` or ``{attn: [cbam, {rd_ratio:
0.25}]}``. Other projects spell the same row ``C3k2_CBAM`` / ``C3k2-cbam`` (``spelled_block``): the same model,
read as the mapping. Where the layer sits in each block is the engine's (``engines/yolov5/c3attn.py``,
``engines/ultralytics/blocks.py``); here: reading the row, refusing what cannot sit in a block, and the factory
``channels -> layer`` (wrapped in ``IdentityStart`` for a row listed in ``identity_start:``).
"""
import difflib
import re

from yolo_attn.engines import identity as identity_start
from yolo_attn.errors import ModelConfigError
from yolo_attn.modules import IdentityStart
from yolo_attn.registry import build, find_layer, registered_layers
from yolo_attn.yaml_rows import unknown_layer

EXAMPLE = "{attn: cbam} or {attn: [cbam, {rd_ratio: 0.25}]}"


def inner_layers():
    """Names and aliases of the registered layers that can sit inside a block (one input, channels kept)."""
    return [name for spec in registered_layers() if spec.keeps_channels for name in (spec.name, *spec.aliases)]


def inner_attention(value, where, engine, place="a bottleneck"):
    """(spec, args, kwargs) of an ``attn:`` value: a registered one-input, channel-keeping layer's name, or
    [name, args..., {kwargs}]."""
    if isinstance(value, str):
        name, args = value, []
    elif isinstance(value, list) and value and isinstance(value[0], str):
        name, args = value[0], list(value[1:])
    else:
        raise ModelConfigError(f"{where}: 'attn:' takes a layer name or [name, {{hyper-parameters}}], e.g. "
                               f"{EXAMPLE}, got {value!r}")
    spec = find_layer(name)
    if spec is None:
        raise unknown_layer(name, f"{where}, attn", {}, engine)
    if not spec.keeps_channels:
        why = "takes two inputs" if spec.inputs == 2 else "changes the channel count"
        raise ModelConfigError(f"{where}: 'attn: {name}': {spec.name} cannot sit inside {place} (it {why}); attn "
                               f"takes a one-input layer that keeps its channels (SE, CBAM, CoordAtt, EMA, ...). Put "
                               f"{spec.name} on a row of its own.")
    kwargs = args.pop() if args and isinstance(args[-1], dict) else {}
    return spec, args, kwargs


def factory(mapping, where, identity, engine, warn=None, block="C3", place="a bottleneck"):
    """``channels -> layer`` for a block row's trailing ``{attn: ...}`` mapping, with ``.label`` (the value as
    written). ``identity``: the row is listed in ``identity_start:``, each inner layer starts as the identity unless it
    already does (``warn`` says so)."""
    if not isinstance(mapping, dict) or set(mapping) != {"attn"}:
        keys = sorted(map(str, mapping)) if isinstance(mapping, dict) else mapping
        raise ModelConfigError(f"{where}: a {block} row's trailing mapping takes only attn: (attention inside "
                               f"{place}, e.g. [256, {{attn: cbam}}]), got keys {keys}")
    spec, args, kwargs = inner_attention(mapping["attn"], where, engine, place)
    try:
        fresh = build(spec, 64, *args, **kwargs)  # the hyper-parameters, checked once before the row is built
    except (TypeError, ValueError) as e:
        raise ModelConfigError(f"{where}: 'attn: {mapping['attn']!r}': {e}") from None
    wrap = identity and identity_start.start(fresh, spec, 64, where, warn, inner=True) is not fresh

    def attn(channels):
        layer = build(spec, channels, *args, **kwargs)
        return IdentityStart(layer) if wrap else layer

    attn.label = mapping["attn"]
    attn.spec = spec
    return attn


def spelled_block(name, blocks, where):
    """(block, attention name) for another project's spelling ``<block>_<X>`` / ``<block>-<X>`` of a block with
    attention inside (``C3k2_EMA``), or None when ``name`` is not spelled so. A spelling whose X is missing or not a
    layer that can sit inside a block is a ModelConfigError naming the row, the block and the closest layers."""
    if not isinstance(name, str):
        return None
    for block in sorted(blocks, key=len, reverse=True):  # C3k2_ before C3k_ before C3_
        m = re.fullmatch(re.escape(block) + r"[_-](.*)", name, flags=re.DOTALL)
        if m is None:
            continue
        x = m.group(1).strip()
        if not x:
            raise ModelConfigError(f"{where}: {name!r} names no attention after the block; write {block}_<layer> "
                                   f"(e.g. {block}_EMA) or the {block} row with a trailing {{attn: ema}}")
        spec = find_layer(x)
        if spec is None or not spec.keeps_channels:
            known = inner_layers()
            close = difflib.get_close_matches(x.lower(), [k.lower() for k in known], n=3, cutoff=0.5)
            shown = [next(k for k in known if k.lower() == c) for c in close]
            what = "is not a registered attention layer" if spec is None else \
                f"is {spec.name}, which cannot sit inside a block (two inputs or other output channels)"
            raise ModelConfigError(
                f"{where}: {name!r} reads as {block} with attention {x!r} inside, but {x!r} {what}."
                + (f" Closest: {', '.join(shown)}." if shown else "")
                + f" Layers that fit inside {block}: {', '.join(s.name for s in registered_layers() if s.keeps_channels)}"
                  f" (case-insensitive; register your own with yolo_attn.register()).")
        return block, x
    return None


def spelled_note(where, f, n, block, args):
    """The one line that says how a ``<block>_<X>`` row was read, in our spelling (YAML flow style)."""
    import yaml

    row = yaml.safe_dump([f, n, block, args], default_flow_style=True, width=10_000).strip()
    return f"{where}: read as {row}"


def with_spelled_attention(block, x, args, where):
    """The args of a ``<block>_<X>`` row as the ``{attn: X}`` row: X appended as the trailing mapping (refused when
    the row has its own ``{attn: ...}`` too)."""
    if args and isinstance(args[-1], dict):
        raise ModelConfigError(f"{where}: the name already puts {x!r} inside {block}, and the row also has the "
                               f"mapping {args[-1]!r}; write either {block}_{x} without the mapping or {block} with "
                               f"{{attn: ...}}")
    return [*args, {"attn": x}]
