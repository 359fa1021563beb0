"""Per-detection heatmaps for yolov5 detectors (on pytorch-grad-cam) and the attention layers' own gates.

``DetectionCAM`` (cam.py) explains each final detection (after NMS) with all detections' gradients in one
vectorised backward pass; ``run`` (run.py) is the command ``scripts/heatmap.sh``; ``attention_gates`` /
``attention_figure`` (attention.py) show what each attention module does on an image.
"""
from yolo_attn.heatmaps.cam import METHODS, STRATEGIES, DetectionCAM, Explained
from yolo_attn.heatmaps.targets import TARGETS

__all__ = ["DetectionCAM", "Explained", "METHODS", "STRATEGIES", "TARGETS"]
