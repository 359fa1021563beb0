"""``scripts/val.sh``: yolov5's validation of a checkpoint, ending with mAP50 and mAP50-95.

Usage: val.sh --weights W [--data D] [--save-matches PATH] [any yolov5 val flag]
Without --data (or --imgsz) it uses the dataset (and image size) the checkpoint was trained with: the data.yaml its
run recorded (a checkpoint whose dataset is gone is an error, never another dataset). The data YAML used is written
into the validation's run folder (runs/val/NAME/data.yaml).
--save-matches writes the per-image match record (yolo_attn.ablation.matches: each prediction's true-positive flags
at IoU 0.50:0.95, confidence and class, each image's target classes) that the paired bootstrap of
``scripts/ablate.sh`` resamples.
On COCO-format data (a data YAML from ``yolo-attn convert coco``, or yolov5's downloaded coco.yaml) it also reports
the official COCO AP (pycocotools), as the line ``COCO AP <x> AP50 <y>`` and in summary.json.
"""
from pathlib import Path

from yolo_attn import paths
from yolo_attn.engines.yolov5.matches import ValMatchCollector
from yolo_attn.checkpoints import load_checkpoint, model_classes
from yolo_attn.datasets import checks
from yolo_attn.engines.yolov5.options import parse_options
from yolo_attn.errors import BadParameter, UsageError
from yolo_attn.runs import matches_path, resolve_weights, run_folder, training_options, write_summary


def build_argv(opt, rest):
    """yolov5 val argv for the checkpoint (its training image size unless --imgsz) and the data YAML it reads
    (--data, else the one the checkpoint was trained on), and that data YAML. yolov5 gets the
    data YAML as it is (parse_opt checks it; its own default is a path relative to the folder it was imported
    from); ``main`` replaces it by the checked copy in the run folder."""
    if not opt.weights:
        raise UsageError("give a checkpoint with --weights PATH (e.g. runs/train/yolov5s-cbam/weights/best.pt)")
    weights = resolve_weights(opt.weights)
    ckpt = load_checkpoint(weights)
    model_classes(ckpt, weights)  # a model without its class count is refused here, not deep inside yolov5
    trained = training_options(ckpt)
    source = paths.resolve_data(opt.data) if opt.data is not None else trained_data(weights, trained)
    out = ["--weights", weights, "--data", str(source), "--project", str(Path.cwd() / "runs" / "val"),
           "--name", Path(weights).parent.parent.name or "exp"]
    if trained.get("imgsz"):
        out += ["--imgsz", str(trained["imgsz"])]
    return out + rest, source


def trained_data(weights, trained):
    """The data YAML a checkpoint was trained on: the one its options record, or (for a run folder that was renamed)
    its run folder's data.yaml; never another dataset."""
    recorded = trained.get("data")
    if not recorded:
        raise UsageError(f"{weights} does not say which dataset it was trained on; give it with --data "
                         f"(a data YAML, a name in data/, coco or voc)")
    if Path(recorded).is_file():
        return Path(recorded)
    here = Path(weights).parent.parent / "data.yaml"
    if Path(recorded).name == "data.yaml" and Path(weights).parent.name == "weights" and here.is_file():
        print(f"yolo-attn: {recorded} (recorded in {Path(weights).name}) is gone; the run folder's {here} is used")
        return here
    raise UsageError(f"{weights} was trained on {recorded}, which no longer exists. Give the dataset with --data "
                     f"(e.g. --data path/to/data.yaml); yolo-attn does not validate on another dataset in its place.")


def check_options(opt):
    if opt.batch_size < 1:
        raise BadParameter("batch_size", f"{{name}} {opt.batch_size}: give the number of images per batch, at least 1")
    if opt.imgsz < 32:
        raise BadParameter("imgsz", f"{{name}} {opt.imgsz}: sizes that work are multiples of 32 (32, 64, 160, 320, "
                                    f"640, ...; other sizes are rounded up to the next multiple of 32)")


def run(ours, rest, argv):
    import yolov5.val as yolov5_val
    from yolov5.utils.callbacks import Callbacks

    from yolo_attn.metrics import coco_eval

    matches = matches_path(ours.save_matches, {"--weights": ours.weights, "--data": ours.data})
    yolov5_argv, source = build_argv(ours, rest)
    opt = parse_options("val", yolov5_argv, "yolo-attn val")
    check_options(opt)
    save_dir = run_folder(paths.writable_folder(opt.project), opt.name, opt.exist_ok)
    opt.data = str(checks.prepare(source, is_yolov5_builtin=paths.is_yolov5_data(source), save_dir=save_dir))
    opt.project, opt.name, opt.exist_ok = str(save_dir.parent), save_dir.name, True
    callbacks = Callbacks()
    match_collector = ValMatchCollector().register(callbacks) if matches else None
    target, note = coco_eval.target_for(opt.data, task=opt.task, single_cls=opt.single_cls)
    if target is not None:
        # our own COCO evaluation, with the original ids; yolov5's (coco.yaml only) would replace its mAP by COCO's
        opt.save_json = False
        collector = coco_eval.Collector(target)
        callbacks.register_action("on_val_image_end", "yolo_attn_coco", collector)
    results, _, _, _ = yolov5_val.run(**vars(opt), callbacks=callbacks)
    coco = {}
    if target is not None:
        print(f"\nCOCO evaluation (pycocotools) of {target.source} against {target.annotations}:")
        predictions = save_dir / f"{_stem(opt.weights)}_predictions.json"
        if target.unknown:
            print(f"WARNING: {len(target.unknown)} image(s) not in the COCO image ids, their predictions were left "
                  f"out, e.g. {sorted(target.unknown)[0]}")
        try:
            stats = coco_eval.evaluate(target, collector.results, save_json=predictions)
        except Exception as e:  # yolov5's own numbers are still worth their summary after a long validation
            print(f"COCO AP not computed: pycocotools failed on {target.annotations}: {type(e).__name__}: {e}")
        else:
            coco = {"coco_AP": round(stats["AP"], 4), "coco_AP50": round(stats["AP50"], 4),
                    "coco_stats": {k: round(v, 4) for k, v in stats.items()},
                    "coco_predictions": str(predictions)}
    elif note:
        print(f"\n{note}")
    saved = {}
    if matches:  # before the summary: a summary naming its match record means the record is complete
        match_collector.record().save(matches)
        saved["matches"] = str(matches)
    write_summary(results, save_dir, weights=opt.weights, data=opt.data, imgsz=opt.imgsz, **coco, **saved)
    if coco:
        print(f"COCO AP {stats['AP']:.4f} AP50 {stats['AP50']:.4f}")


def _stem(weights):
    return Path(weights[0] if isinstance(weights, (list, tuple)) else weights).stem

