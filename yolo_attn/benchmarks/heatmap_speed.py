"""Heatmaps per second: one vectorised backward pass for all detections vs one backward pass per detection.

    python -m yolo_attn.benchmarks.heatmap_speed [--weights W] [--source IMG] [--detections 10 ...]
                                                 [--layer ROW ...] [--method layercam] [--target all]
                                                 [--imgsz S] [--repeats 7] [--threads T]

Every approach turns the same letterboxed image into the same N heatmaps (detection forward pass, NMS,
gradients, pytorch-grad-cam maps; no file I/O, no drawing), and the benchmark first checks that their maps agree:

- ``one-at-a-time, full backward``: what the widely copied yolov5 heatmap script does: one forward pass with
  the parameters requiring gradients, then for each detection ``zero_grad()`` and ``backward(retain_graph=True)``
  from the concatenated predictions through the whole network (parameter gradients included), the layer
  gradients read by hooks.
- ``one-at-a-time, layers only``: ``DetectionCAM(strategy="sequential")``: still one backward per detection, but
  starting at the detection's own Detect level and stopping at the heatmap layers, without parameter gradients.
- ``replicated batch``: ``DetectionCAM(strategy="replicate")``: the rows after the first heatmap layer run on
  N copies, one backward of the summed targets.
- ``vectorised``: ``DetectionCAM(strategy="batched")``: one forward pass, one ``torch.func.vmap``-ed backward
  for the detections of each Detect level.

The default, ``DetectionCAM()`` (strategy ``"auto"``), runs one of these per Detect level, chosen by the number of
detections there and the device (``cam.auto_strategy``); the benchmark prints what it chose for the image.

The approaches run interleaved (A B C D A B C D ...) so that load from other processes hits them alike; medians
are reported. N is made exact by taking the N most confident detections at a low threshold. Without --weights:
runs/train/yolov5s-cbam/weights/best.pt if present, else an untrained yolov5s-cbam.

What to expect on a CPU: most of the gain over the full backward comes from not computing what a heatmap does not
need (parameter gradients, the rows below the heatmap layers, the other Detect levels); vectorising the N backward
passes does the same arithmetic in fewer, larger operations, which pays off with several threads (and on a GPU)
more than on one thread.
"""
import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from yolo_attn import engines, paths
from yolo_attn.errors import UsageError
from yolo_attn.heatmaps.cam import DetectionCAM
from yolo_attn.heatmaps.images import letterbox_tensor, read_image

DEFAULT_WEIGHTS = Path("runs") / "train" / "yolov5s-cbam" / "weights" / "best.pt"  # where `yolo-attn train` puts it
CONF = 0.001  # low, so that at least N detections exist; max_det keeps the N most confident


class FullBackwardCAM:
    """The widely copied script's loop, with our targets and NMS (so the maps are comparable): one forward pass
    with parameter gradients on, then one full ``backward`` per detection; layer gradients from tensor hooks."""

    def __init__(self, cam):
        self.cam = cam  # a DetectionCAM: its layers, target, NMS settings and grad-cam maths are reused

    def explain(self, image):
        cam, model = self.cam, self.cam.model
        acts, grads, handles = {}, {}, []

        def keep(k):
            def hook(module, inputs, output):
                acts[k] = output
                output.register_hook(lambda g: grads.__setitem__(k, g))
            return hook

        for k, layer in enumerate(cam.layers):
            handles.append(layer.module.register_forward_hook(keep(k)))
        flags = [p.requires_grad for p in model.parameters()]
        for p in model.parameters():
            p.requires_grad_(True)
        try:
            with torch.enable_grad():
                z, levels = cam.head.split(model(image))
                det = cam.head.nms(z.detach(), cam.conf_thres, cam.iou_thres, cam.classes, cam.max_det)[0]
                logits = torch.cat(levels, 1)
                per_layer = [[] for _ in cam.layers]
                for row, cls in zip(det[:, 6].long(), det[:, 5].long()):
                    model.zero_grad()
                    cam.head.target_value(logits[0, row][None], cls[None], cam.target).sum().backward(
                        retain_graph=True)
                    for k in range(len(cam.layers)):
                        g = grads.get(k)
                        per_layer[k].append(torch.zeros_like(acts[k]) if g is None else g.detach().clone())
                    grads.clear()
        finally:
            for h in handles:
                h.remove()
            for p, flag in zip(model.parameters(), flags):
                p.requires_grad_(flag)
            model.zero_grad(set_to_none=True)
        w, h = image.shape[3], image.shape[2]
        if not len(det):
            return det, np.zeros((0, h, w), np.float32)
        maps = cam._cam_maps([acts[k].detach().cpu().numpy() for k in range(len(cam.layers))],
                             [torch.cat(g).cpu().numpy() for g in per_layer], (w, h))
        return det, maps


def _ours(cam, strategy):
    def explain(image):
        det, state = cam.detect(image)
        return det, cam.maps(det, state, strategy)
    return explain


def approaches(cam):
    return {"one-at-a-time, full backward": FullBackwardCAM(cam).explain,
            "one-at-a-time, layers only": _ours(cam, "sequential"),
            "replicated batch": _ours(cam, "replicate"),
            "vectorised": _ours(cam, "batched")}


NAMES = {"sequential": "one-at-a-time, layers only", "replicate": "replicated batch", "batched": "vectorised"}


def default_choice(cam, image):
    """{Detect level: strategy} that the default strategy ("auto") runs for ``image``, and the detections there."""
    det, state = cam.detect(image)
    cam.maps(det, state, "auto")
    offsets = np.cumsum([0] + state["levels"])
    level = np.searchsorted(offsets, det[:, 6].long().cpu().numpy(), side="right") - 1
    return {lv: (choice, int((level == lv).sum())) for lv, choice in sorted(cam.last_choice.items())}


def bench(model, image, n, layers=None, method="layercam", target="all", repeats=7, log=print):
    """Median seconds per image for each approach at ``n`` detections; checks their maps agree."""
    cam = DetectionCAM(model, layers, method, target, conf_thres=CONF, max_det=n, batch_size=max(n, 1))
    runs = approaches(cam)
    reference, found = None, None
    for name, explain in runs.items():  # warm-up, and the agreement check
        det, maps = explain(image)
        found = len(det)
        if reference is None:
            reference = maps
        elif maps.shape != reference.shape:
            raise AssertionError(f"{name}: {maps.shape[0]} maps, the full-backward reference has {reference.shape[0]}")
        elif maps.size and np.abs(maps - reference).max() > 1e-3:
            raise AssertionError(f"{name}: maps differ from the full-backward reference "
                                 f"(max |diff| {np.abs(maps - reference).max():.2g})")
    times = {name: [] for name in runs}
    for _ in range(repeats):
        for name, explain in runs.items():
            t0 = time.perf_counter()
            explain(image)
            times[name].append(time.perf_counter() - t0)
    return (found, {name: statistics.median(t) for name, t in times.items()}, [layer.label for layer in cam.layers],
            default_choice(cam, image))


def _load(weights, cfg):
    from yolo_attn.heatmaps.model import load_detector

    if weights:
        return load_detector(weights)
    engine = engines.of(cfg)
    if engine is None:
        raise UsageError(f"--cfg {cfg}: no engine knows this model YAML")
    torch.manual_seed(0)
    return engine.build_model(engine.resolve_cfg(cfg), nc=4).float().eval(), None


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m yolo_attn.benchmarks.heatmap_speed",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", default=str(DEFAULT_WEIGHTS) if DEFAULT_WEIGHTS.is_file() else None)
    p.add_argument("--cfg", default="yolov5s-cbam.yaml", help="model YAML when no --weights (untrained)")
    p.add_argument("--source", default=None, help="an image (default: the first val image of the embedded dataset)")
    p.add_argument("--detections", type=int, nargs="+", default=[10])
    p.add_argument("--layer", nargs="+", default=None)
    p.add_argument("--method", default="layercam")
    p.add_argument("--target", default="all")
    p.add_argument("--imgsz", type=int, default=None)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from yolo_attn.datasets import shapes

    model, trained = _load(args.weights, args.cfg)
    if args.source is None:
        val = shapes.ensure(paths.EMBEDDED_DATASET).parent / "images" / "val"
        source = sorted(val.glob("*.jpg"))[0]
    else:
        source = args.source
    imgsz = args.imgsz or trained or 640
    image, _ = letterbox_tensor(read_image(source), imgsz, int(model.stride.max()))
    print(f"model: {args.weights or args.cfg + ' (untrained)'}; image {Path(source).name} at "
          f"{image.shape[3]}x{image.shape[2]}; method {args.method}, target {args.target}; "
          f"torch threads {torch.get_num_threads()}; {args.repeats} interleaved repeats, medians")
    for n in args.detections:
        found, med, layers, chosen = bench(model, image, n, args.layer, args.method, args.target, args.repeats)
        print(f"\n{found} detections, layers {', '.join(layers)}:")
        base = med["one-at-a-time, full backward"]
        seq = med["one-at-a-time, layers only"]
        for name, t in med.items():
            print(f"  {name:<30} {t * 1000:8.1f} ms/image  {found / t:7.2f} heatmaps/s  "
                  f"x{base / t:4.2f} vs full backward  x{seq / t:4.2f} vs layers-only one-at-a-time")
        fastest = min((t, name) for name, t in med.items())[1]
        print("  default (strategy 'auto') chose: " + "; ".join(
            f"{NAMES[c]} for the {k} detection(s) of Detect level {lv}" for lv, (c, k) in chosen.items())
            + f" (fastest here: {fastest})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
