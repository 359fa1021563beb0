"""Attention modules for YOLOv5 (class names are the YAML layer names)."""
from ._common import PooledBatchNorm2d, get_act_layer, make_rd_channels
from .channel import ECA, SE
from .fusion import AFF, MSCAM, iAFF
from .hybrid import CBAM, CoordAtt
from .global_context import DoubleAttn, NonLocal
from .kernel import SelectiveKernel, SelfCalibConv, SplitAttn
from .spatial import SGE, scSE
from .gate import AttnGate
from .composite import SECBAM, Chain

__all__ = ['SE', 'ECA', 'CBAM', 'CoordAtt', 'MSCAM', 'AFF', 'iAFF', 'NonLocal', 'DoubleAttn', 'SelectiveKernel',
           'SplitAttn', 'SelfCalibConv', 'SGE', 'scSE', 'AttnGate', 'SECBAM', 'Chain',
           'PooledBatchNorm2d', 'get_act_layer', 'make_rd_channels']
