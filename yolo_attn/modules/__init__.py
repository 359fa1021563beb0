"""Attention modules: pure PyTorch, one small module per idea (class names are the YAML layer names).

What lives here: the modules, their contract (``AttentionModule``: forward plus readable gates), the declaration
that makes each one a YOLO layer type (``declare_layer``: the class's ``LayerSpec``, which the registry holds), the
shared helpers and ``IdentityStart``. Imports: torch only — never the registry, an engine (yolov5, ultralytics) or
an application.
"""
from ._base import PLACES, AttentionModule, LayerSpec, Placement, declare_layer
from ._common import PooledBatchNorm2d, get_act_layer, make_rd_channels
from .channel import ECA, SE
from .fusion import AFF, MSCAM, iAFF
from .hybrid import CBAM, CoordAtt
from .global_context import DoubleAttn, NonLocal
from .kernel import SelectiveKernel, SelfCalibConv, SplitAttn
from .spatial import SGE, scSE
from .gate import AttnGate
from .composite import SECBAM, Chain
from .simam import SimAM
from .ema import EMA
from .gam import GAM
from .triplet import TripletAttention
from .gcblock import GCBlock
from .shuffle import ShuffleAttn
from .nam import NAM
from .lsk import LSKBlock
from .identity import IdentityStart
from .biformer import BiLevelRoutingAttention
from .deformable import DAttention
from .irmb import iRMB
from .shsa import SHSA
from .cga import CGA
from .ela import ELA
from .lska import LSKA
from .mlca import MLCA
from .cpca import CPCA
from .caa import CAA

# The shipped layer types, in the order the registry lists them.
LAYERS = (SE, ECA, CBAM, CoordAtt, MSCAM, AFF, iAFF, NonLocal, DoubleAttn, SelectiveKernel, SplitAttn,
          SelfCalibConv, SGE, scSE, AttnGate, SECBAM, SimAM, EMA, GAM, TripletAttention, GCBlock, ShuffleAttn, NAM,
          LSKBlock, Chain, iRMB, SHSA, CGA, BiLevelRoutingAttention, DAttention, ELA, LSKA, MLCA, CPCA, CAA)

__all__ = [cls.__name__ for cls in LAYERS] + [
    "LAYERS", "IdentityStart", "AttentionModule", "LayerSpec", "Placement", "PLACES", "declare_layer",
    "PooledBatchNorm2d", "get_act_layer", "make_rd_channels"]
