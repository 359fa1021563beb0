"""Where a heatmap's heat is relative to its detection's box, and the in-box renormalisation."""
import numpy as np


def box_mask(shape, box):
    """Boolean (h, w) mask of the pixels whose centres lie inside ``box`` (xyxy, pixel units)."""
    h, w = shape[:2]
    x1, y1, x2, y2 = box
    xs = (np.arange(w) + 0.5)
    ys = (np.arange(h) + 0.5)
    return ((ys[:, None] >= y1) & (ys[:, None] <= y2)) & ((xs[None, :] >= x1) & (xs[None, :] <= x2))


def heat_in_box(heat, box):
    """Mean heat inside the box, mean heat outside, and their ratio (inf if no heat outside; nan for an empty box
    or a box covering the whole image)."""
    inside = box_mask(heat.shape, box)
    if not inside.any() or inside.all():
        return float(heat[inside].mean()) if inside.any() else float("nan"), float("nan"), float("nan")
    mean_in, mean_out = float(heat[inside].mean()), float(heat[~inside].mean())
    ratio = mean_in / mean_out if mean_out > 0 else (float("inf") if mean_in > 0 else float("nan"))
    return mean_in, mean_out, ratio


def renormalize_in_box(heat, box):
    """The map inside the box only, rescaled there to [0, 1]; zero outside (as grad-cam's detection tutorial does
    with ``renormalize_cam_in_bounding_boxes``, for one box)."""
    inside = box_mask(heat.shape, box)
    out = np.zeros_like(heat, dtype=np.float32)
    if inside.any():
        v = heat[inside]
        out[inside] = (v - v.min()) / (v.max() - v.min() + 1e-7)
    return out
