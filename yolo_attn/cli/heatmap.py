"""``scripts/heatmap.sh``: a heatmap per final detection (after NMS), an overview per image, attention gates.

Usage:
  heatmap.sh --weights W --source IMG|DIR --out DIR [--method layercam|gradcam|gradcam++|xgradcam|hirescam|
             eigencam|eigengradcam|gradcamelementwise|fem] [--layer ROW|NAME|TYPE|backbone|neck|attention ...]
             [--target conf|class|box|all] [--conf 0.25] [--iou 0.45] [--renormalize] [--save-npy] [--attention]

Writes to --out, per image: <stem>_detNN_<class>.png (each detection's heatmap, box, label and score),
<stem>_overview.png (all detections over the pixel-wise maximum of their maps), <stem>.json (one record per
detection: box xyxy in original pixels, cls, name, conf, heat_in_box, file names); with --save-npy each
detection's map as <stem>_detNN_<class>.npy (float32, original resolution, values in [0, 1]); with --attention
<stem>_attention.png (every attention layer's gates; with --save-npy also <stem>_attention.npz).
"""
from yolo_attn.cli.pipeline import Parser, run_cli
from yolo_attn.heatmaps.cam import METHODS
from yolo_attn.heatmaps.targets import TARGETS


def parser():
    p = Parser("heatmap.sh", "A heatmap per final detection (after NMS), an overview per image, and (--attention) "
               "the attention layers' own gates.", epilog=__doc__[__doc__.index("Writes to"):])
    p.add_argument("--weights", required=True, help="a yolov5 / yolo-attn checkpoint (.pt)")
    p.add_argument("--source", required=True, help="an image, or a folder of images")
    p.add_argument("--out", required=True, help="output folder (created)")
    p.add_argument("--method", default="layercam",
                   help=f"pytorch-grad-cam method: {', '.join(METHODS)} (default: layercam)")
    p.add_argument("--layer", nargs="+", default=None, metavar="ROW",
                   help="YAML row index, module name (model.20.cv3), layer type (CBAM), or a keyword: 'backbone' "
                        "(the backbone rows the head reads, P3-P5: the default), 'neck' (the rows Detect reads), "
                        "'attention' (all attention rows); several layers are averaged")
    p.add_argument("--target", default="all", choices=TARGETS,
                   help="what is explained: objectness, class probability, box outputs, or their sum (default)")
    p.add_argument("--conf", type=float, default=0.25, help="detection confidence threshold (NMS)")
    p.add_argument("--iou", type=float, default=0.45, help="NMS IoU threshold")
    p.add_argument("--max-det", type=int, default=300, help="at most this many detections per image")
    p.add_argument("--classes", type=int, nargs="+", default=None, help="keep only these class indices")
    p.add_argument("--imgsz", type=int, default=None, help="inference size (default: the training size, else 640)")
    p.add_argument("--renormalize", action="store_true",
                   help="rescale each map inside its box to [0, 1] and zero it outside")
    p.add_argument("--save-npy", action="store_true", help="also save each map as .npy (original resolution)")
    p.add_argument("--attention", action="store_true", help="also draw the attention layers' own gates")
    p.add_argument("--eigen-smooth", action="store_true", help="grad-cam's eigen_smooth (first principal component)")
    p.add_argument("--batch-size", type=int, default=16, help="detections per vectorised backward pass")
    p.add_argument("--device", default="", help="cuda device (0, 1, ...) or cpu; default: cuda:0 if available")
    return p


def main(argv):
    args = parser().parse_args(argv)
    from yolo_attn.heatmaps.run import check_args, run

    check_args(args.conf, args.iou, args.batch_size, args.imgsz)
    from yolo_attn import engines

    engine = engines.of_checkpoint(args.weights)
    # the device as the checkpoint's engine chooses it; none: loading the weights fails and says why
    device = engine.select_device(args.device) if engine else "cpu"
    run(args.weights, args.source, args.out, method=args.method, layers=args.layer, target=args.target,
        conf=args.conf, iou=args.iou, classes=args.classes, max_det=args.max_det, imgsz=args.imgsz,
        renormalize=args.renormalize, save_npy=args.save_npy, attention=args.attention, device=device,
        batch_size=args.batch_size, eigen_smooth=args.eigen_smooth)


def cli():
    raise SystemExit(run_cli(main))


if __name__ == "__main__":
    cli()
