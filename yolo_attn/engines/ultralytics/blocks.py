"""Attention inside ultralytics' blocks (ultralytics 8.4.190): where a row's trailing ``{attn: X}`` puts X.

- ``C3k2``, ``C2f``, ``C3``, ``C3k`` (and ``A2C2f`` with ``a2: False``, whose blocks are C3k): X sits on the residual
  branch of every ``Bottleneck`` in the block, before the addition: ``x + X(cv2(cv1(x)))`` (``X(cv2(cv1(x)))`` without
  shortcut), as yolov5's ``C3 {attn: X}`` (``engines/yolov5/c3attn.py``) and as the SE paper puts SE in a ResNet block.
  A C3k2 with ``c3k`` has C3k blocks: X sits in each of their bottlenecks. YOLO26's ``C3k2(..., attn=True)`` keeps
  its PSABlock after each bottleneck; X goes on the bottleneck as everywhere else.
- ``C2PSA`` and ``A2C2f`` (area attention on): X replaces the block's own attention, ``PSABlock.attn`` (multi-head
  self-attention) and ``ABlock.attn`` (area attention): each block computes ``x + X(x)`` then its feed-forward
  ``x + ffn(x)``. These blocks exist to hold that attention; a second attention beside it would be another model.

Weight names: every stock tensor of the block keeps its name (``cv1``, ``cv2``, ``m.<k>.cv1``, ``m.<k>.0.m.1.cv2``,
``m.<k>.ffn``, ...); X is ``<bottleneck or block>.attn.*``, the name structural transfer sets aside as attention
inside a block (``yolo_attn.transfer.structural``), so a stock checkpoint's row still finds this one and carries
every stock tensor (but the replaced PSA / area attention's own, which the model no longer has).
"""
from torch import nn

# the blocks whose bottlenecks take X, and those whose own attention X replaces
BOTTLENECK_BLOCKS = ("C3k2", "C2f", "C3", "C3k")
ATTENTION_BLOCKS = ("C2PSA", "A2C2f")
BLOCKS = BOTTLENECK_BLOCKS + ATTENTION_BLOCKS


def _bottleneck():
    from ultralytics.nn.modules.block import Bottleneck

    return Bottleneck


class AttnBottleneck(nn.Module):
    """ultralytics' Bottleneck (its ``cv1``, ``cv2`` and ``add``, same weights) with ``attn`` on the residual branch:
    ``x + attn(cv2(cv1(x)))``, or ``attn(cv2(cv1(x)))`` without the addition."""

    def __init__(self, bottleneck, attn):
        super().__init__()
        self.cv1, self.cv2, self.add = bottleneck.cv1, bottleneck.cv2, bottleneck.add
        self.attn = attn

    def forward(self, x):
        y = self.attn(self.cv2(self.cv1(x)))
        return x + y if self.add else y


def _in_bottlenecks(module, attn):
    """Every stock Bottleneck below ``module`` replaced by an AttnBottleneck (in place); how many."""
    count = 0
    for name, child in module.named_children():
        if type(child) is _bottleneck():
            setattr(module, name, AttnBottleneck(child, attn(child.cv2.conv.out_channels)))
            count += 1
        else:
            count += _in_bottlenecks(child, attn)
    return count


def _replace_attention(module, attn):
    """The ``attn`` of every PSABlock / ABlock below ``module`` replaced by ``attn(channels)`` (in place); how many."""
    from ultralytics.nn.modules.block import ABlock, PSABlock

    count = 0
    for block in module.modules():
        if isinstance(block, (PSABlock, ABlock)):
            block.attn = attn(block.attn.proj.conv.out_channels)
            count += 1
    return count


def with_attention(block, kind, attn):
    """``block`` (a stock ultralytics block just built from a row, or an nn.Sequential of them) with ``attn``
    (``channels -> layer``) inside, where ``kind`` (its YAML name) takes it; (block, where it sits)."""
    if kind in ATTENTION_BLOCKS and _replace_attention(block, attn):
        return block, "in place of the block's own attention"
    if _in_bottlenecks(block, attn):
        return block, "on each bottleneck's residual branch"
    raise ValueError(f"{kind} here has no bottleneck and no attention to take it")
