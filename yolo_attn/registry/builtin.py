"""Registration of the attention layers that ship with yolo-attn."""
from yolo_attn.modules import AFF, CBAM, ECA, MSCAM, SE, CoordAtt, iAFF
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
)

for _spec in BUILTIN_LAYERS:
    register(_spec)
