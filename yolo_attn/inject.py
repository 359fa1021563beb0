"""Add attention to an existing PyTorch model after chosen submodules, without renaming its weights.

    import torchvision
    from yolo_attn.inject import add_attention

    model = torchvision.models.resnet50()
    add_attention(model, "se", after="layer*.*.bn3")   # SE-ResNet-50: SE on each residual branch, before the sum

How: the attention becomes a child of the module it follows (``layer1.0.bn3.attn``) and a forward hook on that
module passes the module's output through it. No module is wrapped or moved, so every existing state_dict key
(``layer1.0.bn3.weight``, ...) is unchanged: a checkpoint of the original model loads into the modified one
(``strict=False``; the only missing keys are the new ``...attn.*`` ones). The hook is a module-level function, so
the model survives ``copy.deepcopy``, ``torch.save``/``torch.load`` of the whole model and tracing; calling
``model.layer1[0].bn3(x)`` gives BN followed by the attention, as the name "after bn3" says.

``replace_modules`` swaps modules instead (for layers that *are* a convolution, e.g. SK for a ResNeXt's conv2);
the replaced module's weights go with it, everything else keeps its name.
"""
import fnmatch
import functools

from torch import nn

__all__ = ["add_attention", "count_parameters", "remove_attention", "replace_modules", "select_modules"]


def _selector(where):
    if isinstance(where, type) or (isinstance(where, tuple) and where and all(isinstance(t, type) for t in where)):
        return lambda name, module: isinstance(module, where)
    if isinstance(where, str):
        where = [where]
    if isinstance(where, (list, tuple)):
        patterns = list(where)
        return lambda name, module: any(fnmatch.fnmatchcase(name, p) for p in patterns)
    if callable(where):
        return where
    raise TypeError(f"choose submodules with a callable (name, module) -> bool, a glob pattern such as "
                    f"'layer*.*.bn3', a list of patterns or an nn.Module class; got {where!r}")


def select_modules(model, where):
    """[(qualified name, module)] of the submodules of ``model`` chosen by ``where`` (the root is never chosen).

    ``where``: a callable ``(name, module) -> bool``; a glob pattern on qualified names (``'layer*.*.bn3'``) or a
    list of them; or an nn.Module class (or tuple of classes).
    """
    chosen = _selector(where)
    return [(name, m) for name, m in model.named_modules() if name and chosen(name, m)]


def _channels(name, module, channels):
    if callable(channels):
        return int(channels(name, module))
    if channels is not None:
        return int(channels)
    for attr in ("num_features", "out_channels", "num_channels"):  # BatchNorm / Conv / GroupNorm
        value = getattr(module, attr, None)
        if isinstance(value, int):
            return value
    raise TypeError(f"{name}: cannot tell the channel count of a {type(module).__name__}; pass channels= (an int "
                    f"or a callable (name, module) -> int)")


def _factory(layer):
    """(builder(channels, *args, **kwargs), display name) for a registered layer name or a module class/callable."""
    if isinstance(layer, str):
        from yolo_attn.registry import create_attn, find_layer

        spec = find_layer(layer)
        if spec is None:
            create_attn(layer, 1)  # raises the registry's error: unknown name, closest match, known names
        if spec.inputs != 1 or spec.changes_channels:
            raise ValueError(f"{spec.name} cannot be added after a module: add_attention takes one-input layers that "
                             f"keep the channel count (use replace_modules for channel-changing convolutions)")
        return spec.cls, spec.name
    if callable(layer):
        return layer, getattr(layer, "__name__", repr(layer))
    raise TypeError(f"layer must be a registered name or a callable channels -> nn.Module, got {layer!r}")


def _run_attention(child, module, inputs, output):
    """Forward hook: the module's output passed through its attention child."""
    return getattr(module, child)(output)


def _is_ours(hook):
    return isinstance(hook, functools.partial) and hook.func is _run_attention


def _place_like(new, module):
    ref = next(module.parameters(), None)
    if ref is None:
        ref = next(module.buffers(), None)
    if ref is not None:
        new.to(device=ref.device, dtype=ref.dtype if ref.is_floating_point() else None)
    return new.train(module.training)


def add_attention(model, layer, after, *args, channels=None, name="attn", **kwargs):
    """Add attention ``layer`` after every submodule of ``model`` chosen by ``after``; returns their names.

    layer: a registered one-input, channel-keeping layer name (``'se'``, ``'cbam'``, ``'eca'``, ...; see
      ``yolo-attn layers``) or any callable ``channels -> nn.Module``.
    after: which submodules (see ``select_modules``), e.g. ``'layer*.*.bn3'`` for every ResNet Bottleneck's last BN
      (the residual branch before the addition, where SE/CBAM/ECA sit in their papers).
    *args, **kwargs: the layer's hyper-parameters (``rd_ratio=1/16``, ``kernel_size=3``, ...).
    channels: the attention's channel count; by default the module's ``num_features`` / ``out_channels`` /
      ``num_channels``. An int, or a callable ``(name, module) -> int``.
    name: the child name the attention gets (``layer1.0.bn3.attn.*`` keys).

    The existing parameters and buffers keep their names and tensors; each attention is created on the device,
    dtype and train/eval mode of the module it follows. Refuses a module that already has an attribute ``name``.
    """
    build, label = _factory(layer)
    targets = select_modules(model, after)
    if not targets:
        raise ValueError(f"add_attention: no submodule of {type(model).__name__} matches {after!r}")
    for qname, module in targets:
        if hasattr(module, name):
            raise ValueError(f"{qname} already has an attribute {name!r}; pass another name=")
    for qname, module in targets:
        attn = build(_channels(qname, module, channels), *args, **kwargs)
        if not isinstance(attn, nn.Module):
            raise TypeError(f"{label} built a {type(attn).__name__}, not an nn.Module")
        module.add_module(name, _place_like(attn, module))
        module.register_forward_hook(functools.partial(_run_attention, name))
    return [qname for qname, _ in targets]


def remove_attention(model):
    """Undo ``add_attention``: drop every attention child and its hook; returns the names of the modules freed."""
    freed = []
    for qname, module in list(model.named_modules()):
        for key, hook in list(module._forward_hooks.items()):
            if _is_ours(hook):
                del module._forward_hooks[key]
                delattr(module, hook.args[0])
                freed.append(qname)
    return freed


def replace_modules(model, where, build):
    """Replace every submodule chosen by ``where`` with ``build(name, module)``; returns their names.

    Every other module keeps its state_dict keys; the new module's parameters take the old one's place
    (``layer1.0.conv2.*``). Example, SKNet-50 from a ResNeXt-50 32x4d (SK carries its own BN and ReLU):

        replace_modules(m, "layer*.*.conv2", lambda n, c: SelectiveKernel(c.in_channels, c.out_channels,
                                                                           stride=c.stride[0], groups=c.groups))
        replace_modules(m, "layer*.*.bn2", lambda n, bn: nn.Identity())
    """
    targets = select_modules(model, where)
    if not targets:
        raise ValueError(f"replace_modules: no submodule of {type(model).__name__} matches {where!r}")
    for qname, module in targets:
        parent_name, _, child = qname.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        new = build(qname, module)
        if not isinstance(new, nn.Module):
            raise TypeError(f"{qname}: build returned a {type(new).__name__}, not an nn.Module")
        setattr(parent, child, _place_like(new, module))
    return [qname for qname, _ in targets]


def count_parameters(model):
    """Number of parameters (works on the meta device: no memory, no forward)."""
    return sum(p.numel() for p in model.parameters())

