"""Composites: SE followed by CBAM, and Chain, any sequence of registered one-input layers on one YAML row."""
import torch.nn as nn

from ._common import no_second_input
from .channel import SE
from .hybrid import CBAM


class SECBAM(nn.Module):
    """SE followed by CBAM on the same map: out = CBAM(SE(x)) (tutorials call it "dual attention").

    Not a paper's module: the stacking used by YOLO attention tutorials, given a name so it is one YAML row.
    Not DANet's "dual attention" (Fu et al., CVPR 2019, position + channel self-attention), which is different.
    Papers: Hu et al., SE, CVPR 2018; Woo et al., CBAM, ECCV 2018 — see SE and CBAM for definitions and choices.
    Defaults: r = 16 for both, CBAM spatial kernel 7, ReLU, sigmoid; rd_ratio / rd_channels / act_layer /
    gate_layer apply to both, spatial_kernel_size to CBAM. Same as `Chain(channels, 'se', 'cbam')` with
    the parameters named se.* and cbam.* instead of 0.* and 1.*.
    attention_maps: {'se.channel', 'cbam.channel', 'cbam.spatial'}; CBAM's maps are computed on SE's output.
    """

    def __init__(self, channels, rd_ratio=1 / 16, rd_channels=None, spatial_kernel_size=7, act_layer='relu',
                 gate_layer='sigmoid'):
        super().__init__()
        self.se = SE(channels, rd_ratio, rd_channels, act_layer, gate_layer)
        self.cbam = CBAM(channels, rd_ratio, rd_channels, spatial_kernel_size, act_layer, gate_layer)

    def attention_maps(self, x, y=None):
        no_second_input(y)
        maps = {f'se.{k}': v for k, v in self.se.attention_maps(x).items()}
        return {**maps, **{f'cbam.{k}': v for k, v in self.cbam.attention_maps(self.se(x)).items()}}

    def forward(self, x):
        return self.cbam(self.se(x))


def _member(item, channels):
    """Build one Chain member from 'name', [name, *args] or [name, *args, {kwargs}]."""
    from yolo_attn.registry.layers import find_layer, layer_names  # lazy: the registry imports this package

    if isinstance(item, (list, tuple)) and item and isinstance(item[0], str):
        name, args = item[0], list(item[1:])
    elif isinstance(item, str):
        name, args = item, []
    else:
        raise ValueError(f"Chain: each member is a layer name or [name, args...], got {item!r}")
    kwargs = args.pop() if args and isinstance(args[-1], dict) else {}
    spec = find_layer(name)
    if spec is None:
        raise ValueError(f"Chain: unknown layer {name!r}; known: {', '.join(layer_names())}")
    if spec.inputs != 1 or spec.changes_channels:
        raise ValueError(f"Chain: {spec.name} cannot be chained; members must be one-input layers that keep the "
                         f"channel count (put channel-changing or two-input layers on their own row)")
    return spec.cls(channels, *args, **kwargs)


class Chain(nn.Module):
    """A sequence of registered one-input, channel-keeping attention layers applied in order, on one YAML row.

    `[-1, 1, Chain, [se, cbam]]` is SE then CBAM; a member may carry its own args:
    `[-1, 1, Chain, [[se, {rd_ratio: 0.25}], eca]]`. From Python: `Chain(256, 'se', ['cbam', {'rd_ratio': 0.125}])`.
    Parameters are named `<index>.<member parameter>` as in nn.Sequential. Not a paper's module.
    attention_maps: every member's maps prefixed with its index ('0.channel', '1.spatial', ...), each member's
    computed on the previous member's output.
    """

    def __init__(self, channels, *layers):
        super().__init__()
        if not layers:
            raise ValueError('Chain: name at least one layer, e.g. Chain(channels, "se", "cbam")')
        for k, item in enumerate(layers):
            self.add_module(str(k), _member(item, channels))

    def attention_maps(self, x, y=None):
        no_second_input(y)
        maps = {}
        for k, m in self.named_children():
            maps.update({f'{k}.{name}': v for name, v in m.attention_maps(x).items()})
            x = m(x)
        return maps

    def forward(self, x):
        for m in self.children():
            x = m(x)
        return x
