"""Registration of the layers that ship with yolo-attn: every class in ``yolo_attn.modules.LAYERS``, as declared."""
from yolo_attn.modules import LAYERS
from yolo_attn.registry.layers import register

BUILTIN_LAYERS = tuple(register(cls) for cls in LAYERS)
