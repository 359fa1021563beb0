"""Convert VOC or COCO on disk to a yolov5-ready folder, offline (``yolo-attn convert``, ``scripts/convert.sh``).

usage:
  convert voc  VOC_ROOT OUT [--classes a,b,c] [--val-fraction 0.2] [--images link|symlink|copy] [--overwrite]
  convert coco ANNOTATIONS_JSON IMAGES_DIR [ANNOTATIONS_JSON IMAGES_DIR ...] OUT [--splits a,b] [--images ...]
               [--overwrite]

OUT gets images/<split>/, labels/<split>/*.txt and data.yaml; train and validate with --data OUT/data.yaml.
Written to a hidden folder next to OUT and renamed at the end: an interrupted run (Ctrl-C: exit code 130) leaves
OUT as it was.
"""
import sys

from yolo_attn.cli.pipeline import Parser, run_cli
from yolo_attn.datasets.convert import IMAGE_MODES, Interrupted
from yolo_attn.errors import UsageError

IMAGES_HELP = ("how images get into OUT: 'link' (default) hard-links them (no extra space; copies where the file "
               "system does not allow it), 'symlink' links to the originals (keep them in place), 'copy' copies")


def _parser():
    parser = Parser("yolo-attn convert", __doc__.replace("``", ""))
    sub = parser.add_subparsers(dest="format", metavar="{voc,coco}")
    sub.required = True
    voc = sub.add_parser("voc", help="Pascal VOC XML: a VOCdevkit (as yolov5's VOC.yaml), or a folder of one's own",
                         description="Convert a VOCdevkit (VOC2007 and/or VOC2012, XML annotations) as yolov5's "
                                     "VOC.yaml does: splits train2012, val2012, train2007, val2007, test2007 from "
                                     "ImageSets/Main (trainval.txt where train.txt and val.txt are missing); "
                                     "difficult objects left out; train = 07+12 trainval, val = 2007 test. "
                                     "Or a VOC-format folder of one's own (Annotations/*.xml + JPEGImages/, as "
                                     "LabelImg or CVAT write): classes from the XML files, split by ImageSets/Main "
                                     "lists or else by a hash of each image id.")
    voc.add_argument("voc_root", metavar="VOC_ROOT", help="the VOCdevkit folder (or the folder holding it), or a "
                                                          "folder holding Annotations/ and JPEGImages/")
    voc.add_argument("out", metavar="OUT", help="output folder (new, empty, or an earlier conversion with --overwrite)")
    voc.add_argument("--classes", help="comma-separated class names, in the order of the class indices (default: "
                                       "the 20 VOC classes for a VOCdevkit, the names in the XML files, sorted, for "
                                       "a folder of one's own); objects of other names are left out (counted)")
    voc.add_argument("--val-fraction", type=float, help="a folder without ImageSets/Main lists: the share of images "
                                                        "in val, chosen by a hash of each image id (default 0.2)")
    coco = sub.add_parser("coco", help="COCO-format JSON + image folder(s)",
                          description="Convert COCO-format detection annotations: categories -> classes 0..N-1 in "
                                      "id order, iscrowd skipped, images without boxes kept as negatives, boxes "
                                      "without area dropped. Several ANNOTATIONS_JSON IMAGES_DIR pairs make several "
                                      "splits (e.g. instances_train2017.json train2017 "
                                      "instances_val2017.json val2017).")
    coco.add_argument("paths", nargs="+", metavar="PATH", help="ANNOTATIONS_JSON IMAGES_DIR [...] OUT")
    coco.add_argument("--splits", help="comma-separated split names, one per pair (default: from the JSON names, "
                                       "instances_val2017.json -> val2017)")
    for p in (voc, coco):
        p.add_argument("--images", choices=IMAGE_MODES, default="link", help=IMAGES_HELP)
        p.add_argument("--overwrite", action="store_true", help="replace OUT if it holds an earlier conversion")
    return parser


def main(argv):
    args = _parser().parse_args(argv)
    out = args.out if args.format == "voc" else args.paths[-1]
    try:
        _convert(args)
    except Interrupted as e:
        print(f"\nyolo-attn: {e}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print(f"\nyolo-attn: interrupted; nothing was written to OUT ({out}).", file=sys.stderr)
        return 130
    print(f"\nTrain or validate with: --data {out}/data.yaml")


def _convert(args):
    if args.format == "voc":
        from yolo_attn.datasets.convert import voc

        classes = [c.strip() for c in args.classes.split(",")] if args.classes is not None else None
        voc.convert(args.voc_root, args.out, images=args.images, overwrite=args.overwrite, classes=classes,
                    val_fraction=args.val_fraction)
    else:
        from yolo_attn.datasets.convert import coco

        if len(args.paths) < 3 or len(args.paths) % 2 != 1:
            raise UsageError("convert coco takes ANNOTATIONS_JSON IMAGES_DIR pairs and then OUT, e.g.\n"
                             "  yolo-attn convert coco annotations/instances_val2017.json val2017 coco-yolo\n"
                             f"got {len(args.paths)} path(s): {' '.join(args.paths)}")
        *inputs, out = args.paths
        pairs = list(zip(inputs[0::2], inputs[1::2]))
        splits = [s.strip() for s in args.splits.split(",")] if args.splits else None
        coco.convert(pairs, out, splits=splits, images=args.images, overwrite=args.overwrite)


def cli():
    raise SystemExit(run_cli(main))


if __name__ == "__main__":
    cli()
