"""``yolo-attn transfer --weights W --cfg C``: print how a checkpoint's tensors map onto a model, without training."""
import argparse

import yolo_attn  # noqa: F401
from yolo_attn import paths
from yolo_attn.checkpoints import load_checkpoint
from yolo_attn.transfer.structural import structural_transfer


def main(argv):
    p = argparse.ArgumentParser(prog="yolo-attn transfer", description=__doc__)
    p.add_argument("--weights", required=True, help="source checkpoint (.pt)")
    p.add_argument("--cfg", required=True, help="target model YAML (path or name in model_yamls/)")
    p.add_argument("--nc", type=int, help="number of classes of the target (default: the checkpoint's)")
    opt = p.parse_args(argv)
    import logging

    from yolov5.models.yolo import Model
    from yolov5.utils.general import LOGGER

    ckpt = load_checkpoint(paths.resolve_weights(opt.weights))
    source = (ckpt.get("ema") or ckpt["model"]).float()
    level = LOGGER.level
    LOGGER.setLevel(logging.WARNING)
    try:
        target = Model(str(paths.resolve_cfg(opt.cfg)), nc=opt.nc or int(source.nc))
    finally:
        LOGGER.setLevel(level)
    _, report = structural_transfer(source.state_dict(), target.state_dict(), exclude=("anchor",))
    print(report.summary())
