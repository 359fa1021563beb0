"""Every shipped model of both engines takes a forward and a loss-scaled backward step under float16 autocast with
finite results (issue #24).

As AMP trains: float32 weights (the master copy), ``torch.autocast(float16)``, here on the CPU with a float16 input
image so that the first conv already hands float16 on (CPU autocast float16 reproduces the GPU's overflow classes).
Training mode, batch 4, 64 px; the loss is the sum over the head's outputs of each one's mean, scaled ×1024 as a
GradScaler does (a detector's losses are means over predictions). The plain sum ×1024 (a gradient of 1024 on every
output value) overflows float16 in the stem convs' weight gradients of the stock yolov5s and yolo11n too, with no
attention layer at all: a GradScaler halves its scale then; it is no test of the layers. Batch 4, not 2: MSCAM's
(AFF, iAFF) global-branch BN normalises the batch's pooled values per channel in training; over 2 values its gradient
grows as 1/|a − b| (yolov5s-iaff at batch 2 in float32: parameter gradients up to 1.5e4, against 43 at batch 8),
which overflows float16 legitimately (the scaler's case again), not through a precision fault.
"""
import time

import pytest
import torch

import yolo_attn  # noqa: F401  (registers the layers and installs the engine adapters)
from yolo_attn import engines
from yolo_attn.paths import MODEL_YAMLS

YAMLS = sorted(MODEL_YAMLS.glob("*.yaml")) + sorted((MODEL_YAMLS / "ultralytics").glob("*.yaml"))
IMGSZ, BATCH, LOSS_SCALE = 64, 4, 1024


def _tensors(out):
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, (list, tuple)):
        return [t for o in out for t in _tensors(o)]
    return []


@pytest.mark.slow
def test_every_shipped_model_steps_under_float16_autocast():
    assert len(YAMLS) >= 30, YAMLS
    failures, start = [], time.time()
    for path in YAMLS:
        torch.manual_seed(0)
        model = engines.of(path).build_model(path).train()
        x = torch.rand(BATCH, 3, IMGSZ, IMGSZ, generator=torch.Generator().manual_seed(0)).half()
        with torch.autocast("cpu", dtype=torch.float16):
            outs = _tensors(model(x))
        if not outs or not all(torch.isfinite(t).all() for t in outs):
            failures.append(f"{path.name}: non-finite output")
            continue
        (sum(t.float().mean() for t in outs) * LOSS_SCALE).backward()
        bad = [n for n, p in model.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()]
        if bad:
            failures.append(f"{path.name}: non-finite gradients of {bad[:5]}{' ...' if len(bad) > 5 else ''}")
    assert not failures, "\n".join(failures)
    print(f"{len(YAMLS)} models in {time.time() - start:.1f} s")
