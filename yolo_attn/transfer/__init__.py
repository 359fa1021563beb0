"""Keep pretrained weights when layers are inserted: structural transfer and identity start."""
from yolo_attn.transfer.identity import IdentityStart
from yolo_attn.transfer.structural import TransferReport, structural_transfer

__all__ = ["IdentityStart", "TransferReport", "structural_transfer"]
