"""Bilinear sampling (``F.grid_sample(mode='bilinear', padding_mode='zeros')``) that exports to any ONNX opset from 11:
GridSample itself needs opset 16, above yolov5's ``export.run`` default and its TensorRT path's 12."""
import torch
import torch.nn.functional as F


def bilinear_sample(image: torch.Tensor, grid: torch.Tensor, align_corners: bool) -> torch.Tensor:
    """``image`` N×C×H×W read at ``grid`` N×Ho×Wo×2 ((x, y) in [−1, 1]): N×C×Ho×Wo, zeros outside the map, in the
    image's dtype. F.grid_sample when running (1.7× faster than gathers for DAttention's forward + backward on a CPU);
    gathers while exporting to ONNX, which tests/modules/test_sampling.py holds equal to it."""
    if torch.onnx.is_in_onnx_export():
        return gather_bilinear(image, grid, align_corners)
    return F.grid_sample(image, grid.to(image.dtype), mode='bilinear', padding_mode='zeros',
                         align_corners=align_corners)


def gather_bilinear(image: torch.Tensor, grid: torch.Tensor, align_corners: bool) -> torch.Tensor:
    """bilinear_sample by gathers at the four neighbours; coordinates and weights in the grid's dtype."""
    n, c, h, w = image.shape
    ho, wo = grid.shape[1:3]
    x, y = grid[..., 0].reshape(n, 1, -1), grid[..., 1].reshape(n, 1, -1)
    if align_corners:
        px, py = (x + 1) * ((w - 1) / 2), (y + 1) * ((h - 1) / 2)
    else:
        px, py = ((x + 1) * w - 1) / 2, ((y + 1) * h - 1) / 2
    x0, y0 = px.floor(), py.floor()
    flat = image.reshape(n, c, h * w)
    out = 0
    for xi, wx in ((x0, 1 - (px - x0)), (x0 + 1, px - x0)):
        for yi, wy in ((y0, 1 - (py - y0)), (y0 + 1, py - y0)):
            inside = (xi >= 0) & (xi <= w - 1) & (yi >= 0) & (yi <= h - 1)
            index = (yi.clamp(0, h - 1) * w + xi.clamp(0, w - 1)).long().expand(n, c, -1)
            out = out + flat.gather(2, index) * (wx * wy * inside.to(wx.dtype))
    return out.to(image.dtype).reshape(n, c, ho, wo)
