"""``yolo-attn transfer --weights W --cfg C``: print how a checkpoint's tensors map onto a model, without training."""
from yolo_attn.checkpoints import load_checkpoint, model_classes
from yolo_attn.cli.engine import choose
from yolo_attn.cli.pipeline import Parser, resolve_weights
from yolo_attn.errors import BadParameter
from yolo_attn.transfer import structural_transfer


def main(argv):
    p = Parser("yolo-attn transfer", __doc__)
    p.add_argument("--weights", required=True, help="source checkpoint (.pt)")
    p.add_argument("--cfg", required=True, help="target model YAML (path or name in model_yamls/)")
    p.add_argument("--nc", type=int, help="number of classes of the target (default: the checkpoint's)")
    engine, argv = choose(argv, "transfer")
    opt = p.parse_args(argv)
    if opt.nc is not None and opt.nc < 1:
        raise BadParameter("nc", f"{{name}} {opt.nc}: the number of classes is at least 1")
    weights = resolve_weights(opt.weights)
    ckpt = load_checkpoint(weights)
    nc = opt.nc or model_classes(ckpt, weights)
    source = (ckpt.get("ema") or ckpt["model"]).float()
    target = engine.build_model(engine.resolve_cfg(opt.cfg), nc=nc)
    _, report = structural_transfer(source.state_dict(), target.state_dict(), exclude=("anchor",))
    print(report.summary())
