"""Batch-norm folding inside attention modules, where yolov5's ``fuse()`` does not reach.

yolov5's ``BaseModel.fuse()`` folds the BN of its own ``Conv``/``DWConv`` blocks only. The attention
modules keep theirs: MS-CAM/AFF/iAFF (conv -> BN in both branches, one of them a full-resolution
C×H×W pass), CBAM (spatial conv -> BN), Coordinate Attention (conv1 -> bn1). ``fold_attention_bn``
folds every such conv -> BN pair of an eval-mode model into the conv (``fuse_conv_and_bn``, yolov5's) and
puts an ``nn.Identity`` in the BN's place; outputs are unchanged up to float rounding.

Used by ``scripts/bench.sh --fold-attn-bn`` to show what folding is worth; not applied by yolov5's own
val/detect/export.
"""
import torch
import torch.nn as nn

# conv -> BN pairs held as attributes (the forward applies the BN directly to the conv's output)
_ATTRIBUTE_PAIRS = {"CBAM": [("spatial_conv", "spatial_bn")], "CoordAtt": [("conv1", "bn1")]}


def _foldable(conv, bn):
    return (isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and bn.affine and bn.track_running_stats
            and bn.running_mean is not None and conv.out_channels == bn.num_features)


def fuse_conv_and_bn(conv, bn):
    """A conv with bias computing ``bn(conv(x))`` (yolov5 7.0.14's ``fuse_conv_and_bn``, operation for operation)."""
    fusedconv = nn.Conv2d(conv.in_channels, conv.out_channels, kernel_size=conv.kernel_size, stride=conv.stride,
                          padding=conv.padding, dilation=conv.dilation, groups=conv.groups,
                          bias=True).requires_grad_(False).to(conv.weight.device)
    w_conv = conv.weight.clone().view(conv.out_channels, -1)
    w_bn = torch.diag(bn.weight.div(torch.sqrt(bn.eps + bn.running_var)))
    fusedconv.weight.copy_(torch.mm(w_bn, w_conv).view(fusedconv.weight.shape))
    b_conv = torch.zeros(conv.weight.size(0), device=conv.weight.device) if conv.bias is None else conv.bias
    b_bn = bn.bias - bn.weight.mul(bn.running_mean).div(torch.sqrt(bn.running_var + bn.eps))
    fusedconv.bias.copy_(torch.mm(w_bn, b_conv.reshape(-1, 1)).reshape(-1) + b_bn)
    return fusedconv


def fold_attention_bn(model, attention_types=None):
    """Fold conv -> BN pairs inside the attention modules of an eval-mode ``model``; returns how many."""
    if attention_types is None:
        from yolo_attn.registry import registered_layers

        attention_types = tuple(spec.cls for spec in registered_layers())
    if model.training:
        raise ValueError("fold_attention_bn folds running statistics: call model.eval() first")
    folded = 0
    with torch.no_grad():
        for module in model.modules():
            if not isinstance(module, attention_types):
                continue
            for sub in module.modules():
                if isinstance(sub, nn.Sequential):
                    for i in range(len(sub) - 1):
                        if _foldable(sub[i], sub[i + 1]):
                            sub[i] = fuse_conv_and_bn(sub[i], sub[i + 1])
                            sub[i + 1] = nn.Identity()
                            folded += 1
            for conv_name, bn_name in _ATTRIBUTE_PAIRS.get(type(module).__name__, ()):
                conv, bn = getattr(module, conv_name, None), getattr(module, bn_name, None)
                if _foldable(conv, bn):
                    setattr(module, conv_name, fuse_conv_and_bn(conv, bn))
                    setattr(module, bn_name, nn.Identity())
                    folded += 1
    return folded
