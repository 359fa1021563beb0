"""Keep pretrained weights when layers are inserted: structural transfer (checkpoint tensors matched to a model by
the structure of its rows, not by index). Engine-independent: it reads ``model.<row>.<name>`` state dicts, the
naming of yolov5 and ultralytics alike. Imports: registry and below; never an engine or an application."""
from yolo_attn.transfer.structural import TransferReport, structural_transfer

__all__ = ["TransferReport", "structural_transfer"]
