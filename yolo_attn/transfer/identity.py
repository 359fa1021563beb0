"""Identity start: an inserted attention layer that begins as the identity, so a pretrained network keeps
computing exactly its function at step 0 and the attention is blended in as training finds it useful."""
import torch
from torch import nn


class IdentityStart(nn.Module):
    """``x + gamma * (attn(x) - x)`` with ``gamma`` learnable and initialised to 0.

    The zero-initialised residual blend of Non-local blocks (zero-init output BN) and mmcv's ContextBlock
    (zero-init last conv), applied around any one-input, channel-keeping attention layer. Enabled per row
    by the YAML key ``identity_start: [rows]``; ``scripts/train.sh --weights`` lists the attention rows the
    checkpoint does not have (``identity_rows``).
    """

    def __init__(self, attn):
        super().__init__()
        self.attn = attn
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return x + self.gamma * (self.attn(x) - x)

    def attention_maps(self, x, y=None):
        return self.attn.attention_maps(x, y)


def identity_rows(source_state_dict, cfg_dict):
    """Rows of ``cfg_dict`` holding one-input attention that ``source_state_dict`` has no weights for."""
    import logging

    from yolov5.models.yolo import Model
    from yolov5.utils.general import LOGGER

    from yolo_attn.registry import find_layer
    from yolo_attn.transfer.structural import structural_transfer

    level = LOGGER.level
    LOGGER.setLevel(logging.WARNING)
    try:
        target = Model(dict(cfg_dict, identity_start=[]))
    finally:
        LOGGER.setLevel(level)
    _, report = structural_transfer(source_state_dict, target.state_dict())
    rows = cfg_dict["backbone"] + cfg_dict["head"]
    specs = {i: find_layer(rows[i][2]) for i in report.new_rows if isinstance(rows[i][2], str)}
    return [i for i, spec in specs.items() if spec is not None and spec.inputs == 1 and not spec.changes_channels]
