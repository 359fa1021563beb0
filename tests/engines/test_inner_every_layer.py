"""Every registered one-input, channel-keeping layer works inside blocks in both engines (issue #23 item 3): as the
attention of yolov5's C3 and of ultralytics' C3k2 (each bottleneck's residual branch) and C2PSA (the PSABlock's own
attention replaced), built through each engine's parser from a YAML row, one X per place, and a forward pass of the
whole model gives finite outputs."""
import copy

import pytest
import torch

import yolo_attn
from yolo_attn.engines import get

INNER = [s for s in yolo_attn.registered_layers() if s.inputs == 1 and not s.changes_channels and not s.members]

# to stride 8 first: the engines compute the strides with a 256-px forward, where a full-resolution map would give the
# global attentions (DAttention: heads × (H·W)² logits) gigabytes of logits
STEM = [[-1, 1, "Conv", [64, 3, 2]], [-1, 1, "Conv", [128, 3, 2]], [-1, 1, "Conv", [128, 3, 2]]]
YOLOV5 = {"nc": 4, "depth_multiple": 1.0, "width_multiple": 1.0, "anchors": [[10, 13, 16, 30, 33, 23]],
          "backbone": [*STEM, [-1, 2, "C3", [128, None]]],
          "head": [[[3], 1, "Detect", ["nc", "anchors"]]]}
ULTRALYTICS = {"nc": 4, "scales": {"n": [1.0, 1.0, 1024]}, "scale": "n",
               "backbone": [*STEM, [-1, 2, "C3k2", [128, False, 0.5, None]], [-1, 1, "C2PSA", [128, None]]],
               "head": [[[4], 1, "Detect", ["nc"]]]}


FITS_64 = {"ShuffleAttn": {"groups": 8}}  # its default 64 groups need 128 channels; the blocks here have 64


def _with_attention(d, name):
    d = copy.deepcopy(d)
    attn = [name, FITS_64[name]] if name in FITS_64 else name
    for row in d["backbone"]:
        if row[3] and row[3][-1] is None:
            row[3][-1] = {"attn": attn}
    return d


def _count(model, spec):
    return sum(type(m) is spec.cls for m in model.modules())


@pytest.mark.parametrize("spec", INNER, ids=lambda s: s.name)
def test_inside_yolov5_c3_and_ultralytics_c3k2_and_c2psa(spec):
    torch.manual_seed(0)
    x = torch.rand(1, 3, 64, 64)
    for engine, d, places in (("yolov5", YOLOV5, 2), ("ultralytics", ULTRALYTICS, 2 + 1)):
        eng = get(engine)
        with eng.quiet():
            model = eng.build_model(_with_attention(d, spec.name)).eval()
        assert _count(model, spec) == places, (engine, spec.name)  # one per bottleneck (2), one per PSABlock (1)
        with torch.no_grad():
            out = model(x)
        out = out[0] if isinstance(out, (list, tuple)) else out
        assert torch.isfinite(out).all(), (engine, spec.name)
