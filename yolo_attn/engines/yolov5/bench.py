"""What the development benchmarks (``benchmarks.identity_start``, ``benchmarks.ddp``) ask of yolov5: a checkpoint's
mAPs, and the training loss."""
import tempfile


def val_maps(weights, data, imgsz):
    """(mAP50, mAP50-95) of yolov5's ``val.run`` (batch 32, no workers, no plots, fp32), into a temporary folder."""
    import yolov5.val as yolov5_val

    results, _, _, _ = yolov5_val.run(data=str(data), weights=str(weights), imgsz=imgsz, batch_size=32, workers=0,
                                      plots=False, project=tempfile.mkdtemp(), name="v", half=False)
    return results[2], results[3]


def loss_fn(model):
    """yolov5's ``ComputeLoss`` of ``model`` with the scratch-low hyper-parameters (set as ``model.hyp``)."""
    import yaml
    from yolov5.utils.loss import ComputeLoss

    from yolo_attn import paths

    model.hyp = yaml.safe_load((paths.yolov5_root() / "data" / "hyps" / "hyp.scratch-low.yaml").read_text())
    return ComputeLoss(model)
