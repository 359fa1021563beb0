"""Registration of the attention layers that ship with yolo-attn."""
from yolo_attn.modules import (AFF, CBAM, ECA, MSCAM, SE, SECBAM, SGE, AttnGate, Chain, CoordAtt, DoubleAttn, NonLocal,
                               SelectiveKernel, SelfCalibConv, SplitAttn, iAFF, scSE)
from yolo_attn.registry.layers import LayerSpec, register

BUILTIN_LAYERS = (
    LayerSpec("SE", SE, 1, "Hu et al., Squeeze-and-Excitation Networks, CVPR 2018", "channel"),
    LayerSpec("ECA", ECA, 1, "Wang et al., ECA-Net, CVPR 2020", "channel"),
    LayerSpec("CBAM", CBAM, 1, "Woo et al., CBAM: Convolutional Block Attention Module, ECCV 2018", "hybrid"),
    LayerSpec("CoordAtt", CoordAtt, 1, "Hou et al., Coordinate Attention, CVPR 2021", "hybrid", aliases=("CA",)),
    LayerSpec("MSCAM", MSCAM, 1, "Dai et al., Attentional Feature Fusion (MS-CAM), WACV 2021", "fusion",
              aliases=("MS-CAM",)),
    LayerSpec("AFF", AFF, 2, "Dai et al., Attentional Feature Fusion, WACV 2021", "fusion"),
    LayerSpec("iAFF", iAFF, 2, "Dai et al., Attentional Feature Fusion (iterative), WACV 2021", "fusion"),
    LayerSpec("NonLocal", NonLocal, 1, "Wang et al., Non-local Neural Networks, CVPR 2018 (embedded Gaussian)",
              "global", aliases=("NL",)),
    LayerSpec("DoubleAttn", DoubleAttn, 1, "Chen et al., A²-Nets: Double Attention Networks, NeurIPS 2018", "global",
              yaml_args="[1024]", changes_channels=True, aliases=("A2", "DoubleAttention")),
    LayerSpec("SelectiveKernel", SelectiveKernel, 1, "Li et al., Selective Kernel Networks, CVPR 2019", "kernel",
              yaml_args="[256, {stride: 2}]", changes_channels=True, aliases=("SK", "SKConv")),
    LayerSpec("SplitAttn", SplitAttn, 1, "Zhang et al., ResNeSt: Split-Attention Networks, 2020", "kernel",
              yaml_args="[256, {stride: 2}]", changes_channels=True, aliases=("SplAt", "ResNeSt")),
    LayerSpec("SelfCalibConv", SelfCalibConv, 1,
              "Liu et al., Improving Convolutional Networks with Self-Calibrated Convolutions, CVPR 2020", "kernel",
              yaml_args="[256, {stride: 2}]", changes_channels=True, aliases=("SelfCalibratedConv",)),
    LayerSpec("SGE", SGE, 1, "Li et al., Spatial Group-wise Enhance, arXiv 2019", "group"),
    LayerSpec("scSE", scSE, 1, "Roy et al., Concurrent Spatial and Channel Squeeze & Excitation, MICCAI 2018",
              "hybrid"),
    LayerSpec("AttnGate", AttnGate, 2, "Oktay et al., Attention U-Net, MIDL 2018", "gate",
              out_from_first=True, aliases=("AttentionGate", "AG")),
    LayerSpec("SECBAM", SECBAM, 1, "SE (Hu et al. 2018) then CBAM (Woo et al. 2018): tutorials' 'dual attention'",
              "composite"),
    LayerSpec("Chain", Chain, 1, "any sequence of registered one-input, channel-keeping layers", "composite",
              yaml_args="[se, cbam]"),
)

for _spec in BUILTIN_LAYERS:
    register(_spec)
