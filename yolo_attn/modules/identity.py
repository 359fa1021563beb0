"""Identity start: an inserted attention layer that begins as the identity, so a pretrained network keeps
computing exactly its function at step 0 and the attention is blended in as training finds it useful."""
import torch
from torch import nn

from ._base import AttentionModule


class IdentityStart(AttentionModule):
    """``x + gamma * (attn(x) - x)`` with ``gamma`` learnable and initialised to 0.

    The zero-initialised residual blend of Non-local blocks (zero-init output BN) and mmcv's ContextBlock
    (zero-init last conv), applied around any one-input, channel-keeping attention layer. A layer that already
    starts as the identity (``LayerSpec.starts_as_identity``) must not be wrapped: with both zeros, every
    gradient of gamma and of the layer is exactly 0 at the first step, and neither ever moves.
    """

    def __init__(self, attn: nn.Module):
        super().__init__()
        self.attn = attn
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return x + self.gamma * (self.attn(x) - x)

    def attention_maps(self, x, y=None):
        return self.attn.attention_maps(x, y) if isinstance(self.attn, AttentionModule) else {}

    def applied_gates(self, x, y=None):
        return self.attn.applied_gates(x, y) if isinstance(self.attn, AttentionModule) else {}
