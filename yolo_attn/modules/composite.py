"""Composites: SE followed by CBAM, and Chain, any sequence of one-input attention layers on one YAML row."""
import torch.nn as nn

from ._base import AttentionModule, Placement, declare_layer
from ._common import no_second_input
from .channel import SE
from .hybrid import CBAM


def _prefixed(prefix, maps):
    return {f'{prefix}.{k}': v for k, v in maps.items()}


class _Sequence(AttentionModule):
    """Members applied in order; each member's gates are read on the previous member's output."""

    def _gates(self, x, y, read):
        no_second_input(y)
        maps = {}
        for name, m in self.named_children():
            if isinstance(m, AttentionModule):
                maps.update(_prefixed(name, read(m)(x)))
            x = m(x)
        return maps

    def attention_maps(self, x, y=None):
        return self._gates(x, y, lambda m: m.attention_maps)

    def applied_gates(self, x, y=None):
        return self._gates(x, y, lambda m: m.applied_gates)

    def forward(self, x):
        for m in self.children():
            x = m(x)
        return x


@declare_layer(name="SECBAM", paper="SE (Hu et al. 2018) then CBAM (Woo et al. 2018): tutorials' 'dual attention'",
               family="composite",
               placements=(Placement("stage_outputs", "YOLOv5s + SE then CBAM on one row ('dual attention' in "
                                                      "tutorials), r=16, 7x7."),))
class SECBAM(_Sequence):
    """SE followed by CBAM on the same map: out = CBAM(SE(x)) (tutorials call it "dual attention").

    Not a paper's module: the stacking used by YOLO attention tutorials, given a name so it is one YAML row.
    Not DANet's "dual attention" (Fu et al., CVPR 2019, position + channel self-attention), which is different.
    Papers: Hu et al., SE, CVPR 2018; Woo et al., CBAM, ECCV 2018 — see SE and CBAM for definitions and choices.
    Defaults: r = 16 for both, CBAM spatial kernel 7, ReLU, sigmoid; rd_ratio / rd_channels / act_layer /
    gate_layer apply to both, spatial_kernel_size to CBAM. Same as `Chain(channels, SE(...), CBAM(...))` with
    the parameters named se.* and cbam.* instead of 0.* and 1.*.
    attention_maps: {'se.channel', 'cbam.channel', 'cbam.spatial'}; CBAM's maps are computed on SE's output.
    """

    def __init__(self, channels, rd_ratio=1 / 16, rd_channels=None, spatial_kernel_size=7, act_layer='relu',
                 gate_layer='sigmoid'):
        super().__init__()
        self.se = SE(channels, rd_ratio, rd_channels, act_layer, gate_layer)
        self.cbam = CBAM(channels, rd_ratio, rd_channels, spatial_kernel_size, act_layer, gate_layer)


@declare_layer(name="Chain", paper="any sequence of registered one-input, channel-keeping layers", family="composite",
               yaml_args="[se, cbam]", members=True)
class Chain(_Sequence):
    """A sequence of one-input, channel-keeping attention layers applied in order, on one YAML row.

    `[-1, 1, Chain, [se, cbam]]` is SE then CBAM; a member may carry its own args:
    `[-1, 1, Chain, [[se, {rd_ratio: 0.25}], eca]]` (the registry builds the members from their names:
    ``create_attn('chain', 256, 'se', ['cbam', {'rd_ratio': 0.125}])``). From Python with built layers:
    `Chain(256, SE(256), CBAM(256))`. Parameters are named `<index>.<member parameter>` as in nn.Sequential.
    Not a paper's module. attention_maps: every member's maps prefixed with its index ('0.channel',
    '1.spatial', ...), each member's computed on the previous member's output.
    """

    def __init__(self, channels, *layers):
        super().__init__()
        if not layers:
            raise ValueError('Chain: give at least one layer, e.g. Chain(channels, SE(channels), CBAM(channels))')
        for k, layer in enumerate(layers):
            if not isinstance(layer, nn.Module):
                raise TypeError(f'Chain: member {k} is a {type(layer).__name__}, not a module (build members by name '
                                f'with yolo_attn.create_attn("chain", channels, "se", "cbam"))')
            self.add_module(str(k), layer)
