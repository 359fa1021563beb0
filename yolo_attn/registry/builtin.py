"""Registration of the layers that ship with yolo-attn: every class in ``yolo_attn.modules.LAYERS``, as declared."""
from yolo_attn.modules import LAYERS
from yolo_attn.registry.layers import LayerSpec, register

BUILTIN_LAYERS = tuple(register(LayerSpec.of(cls)) for cls in LAYERS)
