"""Attention modules for YOLOv5 (class names are the YAML layer names)."""
from ._common import PooledBatchNorm2d, get_act_layer, make_rd_channels
from .channel import ECA, SE
from .fusion import AFF, MSCAM, iAFF
from .hybrid import CBAM, CoordAtt

__all__ = ['SE', 'ECA', 'CBAM', 'CoordAtt', 'MSCAM', 'AFF', 'iAFF',
           'PooledBatchNorm2d', 'get_act_layer', 'make_rd_channels']
