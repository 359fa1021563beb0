"""The attention layers' own gates for one image: what each module multiplies its input by.

Every yolo-attn attention module is an ``AttentionModule``: its ``applied_gates(x[, y]) -> {name: tensor}`` are the
gates it multiplies its input with, computed from the same input as its forward pass. ``attention_gates`` runs the
model once on an image, hands each attention row its real input, and collects the gates; ``attention_figure``
draws them:

- a gate with spatial extent (N×C×H×W, H·W > 1: CBAM's spatial map, AFF/MS-CAM's fusion weight, SGE, scSE's
  spatial gate, ...) is shown as its mean over the channel axis, mapped back onto the original image (the
  letterbox undone), on its own value scale (0-1 for sigmoid gates, so a flat 0.5 looks flat);
- Coordinate Attention's gate is a_h ⊗ a_w (C×H×W), the product of its two 1-D gates, shown like a spatial gate;
- a per-channel gate (N×C×1×1: SE, ECA, CBAM's channel gate, ...) is shown as a bar per channel, in channel
  order, with its mean.
"""
from dataclasses import dataclass

import numpy as np
import torch

from yolo_attn.errors import BadParameter
from yolo_attn.heatmaps.model import attention_modules


@dataclass
class Gate:
    row: int
    layer: str  # the module type, e.g. CBAM
    name: str  # the gate's name in attention_maps, e.g. spatial; 'h⊗w' for Coordinate Attention's product
    value: np.ndarray  # (C, H, W)

    @property
    def spatial(self):
        return self.value.shape[1] * self.value.shape[2] > 1

    @property
    def title(self):
        c, h, w = self.value.shape
        return f"row {self.row} {self.layer}: {self.name} ({c}×{h}×{w})"


def attention_gates(model, image):
    """Gates of every attention module of ``model`` (rows, and inside blocks) for a (1, 3, h, w) input, in order."""
    found = attention_modules(model)
    if not found:
        raise BadParameter("attention", "{name}: this model has no attention layers (no row is or holds an attention "
                                        "module)")
    inputs, handles = {}, []
    for k, (_, _, m) in enumerate(found):
        handles.append(m.register_forward_pre_hook(lambda mod, args, k=k: inputs.setdefault(k, args)))
    try:
        with torch.no_grad():
            model(image)
            gates = []
            for k, (i, name, m) in enumerate(found):
                layer = type(m).__name__ + (f" {name}" if name else "")
                for gate, g in m.applied_gates(*inputs[k]).items():
                    if not isinstance(g, torch.Tensor) or g.dim() != 4:
                        continue  # not a map over (channels, height, width)
                    gates.append(Gate(i, layer, gate, g[0].float().cpu().numpy()))
    finally:
        for h in handles:
            h.remove()
    return gates


def attention_figure(img_bgr, frame, gates, path, title=""):
    """One PNG: the image, then one panel per gate (spatial gates over the image, channel gates as bars)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = len(gates) + 1
    cols = min(4, panels)
    rows = int(np.ceil(panels / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.9 * rows), squeeze=False)
    rgb = img_bgr[:, :, ::-1]
    ax = axes[0, 0]
    ax.imshow(rgb)
    ax.set_title(title or "image", fontsize=9)
    ax.axis("off")
    for k, gate in enumerate(gates, start=1):
        ax = axes[k // cols, k % cols]
        if gate.spatial:
            mean = gate.value.mean(0)
            if mean.shape != tuple(frame.shape):  # gate at feature resolution: to input size, then undo letterbox
                import cv2

                mean = cv2.resize(mean.astype(np.float32), (frame.shape[1], frame.shape[0]),
                                  interpolation=cv2.INTER_NEAREST)
            heat = frame.map_to_original(mean)
            lo, hi = (0.0, 1.0) if 0 <= gate.value.min() and gate.value.max() <= 1 else (heat.min(), heat.max())
            ax.imshow(rgb, alpha=1.0)
            im = ax.imshow(heat, cmap="jet", alpha=0.55, vmin=lo, vmax=hi)
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
            ax.set_title(f"{gate.title}\nmean over channels, range {gate.value.min():.2f}–{gate.value.max():.2f}",
                         fontsize=8)
            ax.axis("off")
        else:
            v = gate.value.reshape(-1)
            ax.stairs(v, np.arange(len(v) + 1) - 0.5, fill=True, color="tab:blue")  # one artist, not C bars
            ax.axhline(v.mean(), color="tab:red", lw=1, label=f"mean {v.mean():.2f}")
            ax.set_xlim(-0.5, len(v) - 0.5)
            if 0 <= v.min() and v.max() <= 1:
                ax.set_ylim(0, 1)
            ax.set_xlabel("channel", fontsize=8)
            ax.legend(fontsize=7, loc="lower right")
            ax.set_title(f"{gate.title}\nper-channel gate", fontsize=8)
            ax.tick_params(labelsize=7)
    for k in range(panels, rows * cols):
        axes[k // cols, k % cols].axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
