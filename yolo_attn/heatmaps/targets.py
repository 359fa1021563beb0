"""What a detection heatmap explains: a scalar function (the *target*) of each final detection's own row of raw
predictions. The head adapter of the model's engine defines the rows and the targets (``heads.head_of``; the
tables are in ``engines/yolov5/heatmap.py`` and ``engines/ultralytics/heatmap.py``)."""
import torch

#: every target a head can explain, the choices of ``heatmap.sh --target`` (each head explains some: its ``targets``)
TARGETS = ("conf", "class", "box", "all")


def target_cotangents(logits_rows, cls, kind, value):
    """d target_i / d logits_rows, one row per detection: (n, no) for ``logits_rows`` (n, no) of n detections
    (``value``: the head's ``target_value``).

    Each detection's target depends on its own row only, so the gradient of the sum over detections taken with
    respect to the stacked rows is the stack of the per-detection gradients."""
    rows = logits_rows.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(value(rows, cls, kind).sum(), rows)
    return grad
