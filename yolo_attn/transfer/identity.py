"""Identity start: an inserted attention layer that begins as the identity, so a pretrained network keeps
computing exactly its function at step 0 and the attention is blended in as training finds it useful."""
import torch
from torch import nn


class IdentityStart(nn.Module):
    """``x + gamma * (attn(x) - x)`` with ``gamma`` learnable and initialised to 0.

    The zero-initialised residual blend of Non-local blocks (zero-init output BN) and mmcv's ContextBlock
    (zero-init last conv), applied around any one-input, channel-keeping attention layer. Enabled for a
    whole model by the YAML key ``attention_init: identity`` (``scripts/train.sh --weights`` sets it).
    """

    def __init__(self, attn):
        super().__init__()
        self.attn = attn
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return x + self.gamma * (self.attn(x) - x)

    def attention_maps(self, x, y=None):
        return self.attn.attention_maps(x, y)
