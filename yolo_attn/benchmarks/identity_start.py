"""mAP at step 0 of an attention variant started from a trained baseline, with and without identity start.

  python -m yolo_attn.benchmarks.identity_start --weights runs/train/yolov5s/weights/best.pt \
      --cfg yolov5s-cbam.yaml [--data D]

Validates the baseline checkpoint, then the variant built from --cfg with the baseline's tensors moved
in by structure (yolo_attn.transfer), once with the new attention rows starting as the identity
(``identity_start``) and once with the modules' own initialisation, all before any training step, on the
same data and image size.
"""
import argparse
import tempfile
from pathlib import Path

import torch
import yaml

from yolo_attn import engines, paths
from yolo_attn.checkpoints import load_checkpoint
from yolo_attn.datasets import shapes
from yolo_attn.transfer import structural_transfer


def _variant_checkpoint(engine, ckpt, cfg, init, folder):
    source = (ckpt.get("ema") or ckpt["model"]).float()
    d = yaml.safe_load(Path(cfg).read_text())
    d["identity_start"] = engine.identity_rows(source.state_dict(), d) if init == "identity" else []
    model = engine.build_model(d, nc=int(source.nc))
    mapped, report = structural_transfer(source.state_dict(), model.state_dict())
    model.load_state_dict(mapped, strict=False)
    model.names, model.nc, model.hyp = source.names, source.nc, getattr(source, "hyp", {})
    path = Path(folder) / f"{Path(cfg).stem}-{init}.pt"
    torch.save({"model": model, "opt": ckpt.get("opt"), "epoch": -1}, path)
    return path, report


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", required=True)
    p.add_argument("--cfg", required=True)
    p.add_argument("--data")
    opt = p.parse_args(argv)
    ckpt = load_checkpoint(opt.weights)
    trained = ckpt.get("opt") or {}
    data = paths.resolve_data(opt.data) if opt.data else Path(trained.get("data") or shapes.ensure(paths.EMBEDDED_DATASET))
    imgsz = int(trained.get("imgsz", 640))
    engine = engines.of(opt.weights)
    with engine.quiet():
        rows = [("baseline checkpoint", *engine.val_maps(opt.weights, data, imgsz), "-")]
        with tempfile.TemporaryDirectory() as folder:
            for init in ("identity", "default"):
                path, report = _variant_checkpoint(engine, ckpt, engine.resolve_cfg(opt.cfg), init, folder)
                rows.append((f"{Path(opt.cfg).stem}, {init} init", *engine.val_maps(path, data, imgsz),
                             f"{report.transferred}/{report.source_tensors}"))
    print(f"\n{'model at step 0':<45}{'mAP50':>8}{'mAP50-95':>10}  transferred")
    for name, m50, m5095, moved in rows:
        print(f"{name:<45}{m50:>8.4f}{m5095:>10.4f}  {moved}")


if __name__ == "__main__":
    main()
