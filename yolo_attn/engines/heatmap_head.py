"""The contract of a detection head's adapter for heatmaps: what ``Engine.heatmap_head(model)`` returns.

``heatmaps.cam.DetectionCAM`` explains each final detection as a scalar function of that detection's own row of raw
predictions (the head's outputs before decoding). The adapter of an engine's head says where those rows are, which
of them the engine's NMS keeps, and what the scalar is, through the hooks below, as pytorch-grad-cam's targets
(``ClassifierOutputTarget`` & co.) say what a classifier's score is. Engine-neutral: no engine is imported here.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import torch


class HeatmapHead:
    """Subclass per head type; override every hook that raises ``NotImplementedError``."""

    #: the targets (``kind`` of ``target_value``) this head explains, e.g. ("class", "box", "all")
    targets: tuple[str, ...] = ()

    def split(self, out: Any) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The head's eval-mode output -> (the decoded predictions ``nms`` reads, [raw rows per level]): each level a
        (batch, A_l, no) tensor, the levels in the order of the decoded predictions' anchors."""
        raise NotImplementedError

    def nms(self, decoded: torch.Tensor, conf: float, iou: float, classes: Optional[Sequence[int]],
            max_det: int) -> list[torch.Tensor]:
        """The engine's own NMS; per image an (n, 7) tensor: x1, y1, x2, y2 (input pixels), conf, cls, row (the index
        of the detection's row among all levels' raw rows, concatenated)."""
        raise NotImplementedError

    def target_value(self, logits: torch.Tensor, cls: Any, kind: str) -> torch.Tensor:
        """The n scalars explained for the raw rows ``logits`` (n, no) of n detections of classes ``cls`` (n,): each a
        differentiable function of its own row only; ValueError for a ``kind`` not in ``targets``."""
        raise NotImplementedError

    def target_hint(self, target: str) -> str:
        """Why this head lacks ``target`` (appended to the refusal, e.g. ' (no objectness)'); '' for no reason."""
        return ""
