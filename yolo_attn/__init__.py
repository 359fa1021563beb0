"""yolo-attn: attention modules from the computer-vision literature as YOLO layer types.

Importing the package registers the layers and installs the engine adapters (``yolo_attn.engines``): when yolov5
is imported (or already was), it builds models through the safe, registry-aware YAML parser and runs on today's
stack. Nothing of yolov5, torch.load, torch.onnx or Pillow is touched until yolov5 is imported.

Layers, bottom to top (a package imports only from its own layer and those below; tests/test_layers.py):
  modules -> registry -> core (transfer, checkpoints, model_yaml.edit, inject, paths, datasets.shapes)
  -> engines -> applications (cli, heatmaps, benchmarks, metrics, ablation, datasets tools, model_yaml.variants).
"""
from yolo_attn import threads as _threads  # noqa: F401  (first: records the user's OMP_NUM_THREADS)
from yolo_attn import engines as _engines
from yolo_attn.registry import LayerSpec, create_attn, find_layer, layer_names, register, registered_layers

_engines.install()

from yolo_attn._version import __version__  # noqa: E402
__all__ = ["LayerSpec", "create_attn", "find_layer", "layer_names", "register", "registered_layers"]
