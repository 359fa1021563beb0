"""Heatmaps for a folder of images: the work behind ``scripts/heatmap.sh`` (callable from Python as ``run(...)``)."""
import json
import math
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from yolo_attn.errors import BadParameter
from yolo_attn.heatmaps import draw
from yolo_attn.heatmaps.cam import DetectionCAM
from yolo_attn.heatmaps.images import image_files, letterbox_tensor, read_image
from yolo_attn.heatmaps.metrics import heat_in_box, renormalize_in_box


def _stems(files):
    stems = [p.stem for p in files]
    return [p.name.replace(".", "_") if stems.count(p.stem) > 1 else p.stem for p in files]


def _safe(text):
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in text)


def _normalize(m):
    lo, hi = float(m.min()), float(m.max())
    return ((m - lo) / (hi - lo + 1e-7)).astype(np.float32)


def explain_image(cam, img, imgsz, stride, names, renormalize=False):
    """Detections of a BGR image with their heatmaps at the image's own resolution.

    Returns (records, maps, frame, x): one dict per detection (box xyxy in original pixels, cls, name, conf, row,
    heat_in_box = mean heat inside / outside its box), the (n, h0, w0) float32 maps in [0, 1], the letterbox
    frame and the model input."""
    x, frame = letterbox_tensor(img, imgsz, stride, cam.device)
    res = cam.explain(x)
    boxes = frame.boxes_to_original(res.detections[:, :4]) if len(res.detections) else np.zeros((0, 4))
    records, maps = [], []
    for det, box, m in zip(res.detections, boxes, res.maps):
        heat = _normalize(frame.map_to_original(m))
        if renormalize:
            heat = renormalize_in_box(heat, box)
        mean_in, mean_out, ratio = heat_in_box(heat, box)
        cls = int(det[5])
        records.append({"box": [round(float(v), 2) for v in box], "cls": cls, "name": names.get(cls, str(cls)),
                        "conf": round(float(det[4]), 4), "row": int(det[6]),
                        "more_heat_inside": bool(np.isfinite(mean_out) and mean_in > mean_out),
                        "heat_in_box": round(ratio, 3) if np.isfinite(ratio) else None,
                        "mean_heat_inside": round(mean_in, 4) if np.isfinite(mean_in) else None,
                        "mean_heat_outside": round(mean_out, 4) if np.isfinite(mean_out) else None})
        maps.append(heat)
    h0, w0 = img.shape[:2]
    return records, (np.stack(maps) if maps else np.zeros((0, h0, w0), np.float32)), frame, x


def run(weights, source, out, method="layercam", layers=None, target="all", conf=0.25, iou=0.45, classes=None,
        max_det=300, imgsz=None, renormalize=False, save_npy=False, attention=False, device="cpu", batch_size=16,
        eigen_smooth=False, log=print):
    """Write the heatmap pictures (and arrays/records) of every image in ``source`` to ``out``; return the records."""
    from yolo_attn.heatmaps.attention import attention_figure, attention_gates
    from yolo_attn.heatmaps.model import attention_rows, load_detector, names_of

    files = image_files(source)
    model, trained_imgsz = load_detector(weights, device)
    if attention and not attention_rows(model):
        raise BadParameter("attention", f"{{name}}: {weights} has no attention layers (no row is an attention module); "
                         f"leave out --attention for its detection heatmaps")
    stride = int(model.stride.max())
    imgsz = check_img_size(imgsz or trained_imgsz or 640, stride)
    cam = DetectionCAM(model, layers, method, target, conf, iou, classes, max_det, batch_size,
                       eigen_smooth=eigen_smooth)
    names = names_of(model)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    layer_labels = ", ".join(layer.label for layer in cam.layers)
    log(f"heatmaps: {method}, target {target}, layers {layer_labels}; image size {imgsz}; "
        f"{len(files)} image(s) -> {out}")
    everything, total, start = [], 0, time.perf_counter()
    for path, stem in zip(files, _stems(files)):
        img = read_image(path)
        records, maps, frame, x = explain_image(cam, img, imgsz, stride, names, renormalize)
        title = f"{method} | target {target} | {layer_labels}"
        for k, (rec, heat) in enumerate(zip(records, maps)):
            base = f"{stem}_det{k:02d}_{_safe(rec['name'])}"
            cv2.imwrite(str(out / f"{base}.png"),
                        draw.detection_image(img, heat, rec["box"], rec["name"], rec["conf"], rec["cls"], title))
            rec["png"] = f"{base}.png"
            if save_npy:
                np.save(out / f"{base}.npy", heat)
                rec["npy"] = f"{base}.npy"
        overview = maps.max(0) if len(maps) else np.zeros(img.shape[:2], np.float32)
        cv2.imwrite(str(out / f"{stem}_overview.png"),
                    draw.overview_image(img, overview, [r["box"] for r in records], [r["name"] for r in records],
                                        [r["conf"] for r in records], [r["cls"] for r in records],
                                        f"{len(records)} detections | {title}"))
        entry = {"image": str(Path(path).resolve()), "width": img.shape[1], "height": img.shape[0],
                 "input_size": list(frame.shape), "method": method, "target": target,
                 "layers": [layer.name for layer in cam.layers], "renormalized": renormalize,
                 "overview": f"{stem}_overview.png", "detections": records}
        if attention:
            gates = attention_gates(model, x)
            attention_figure(img, frame, gates, out / f"{stem}_attention.png", title=Path(path).name)
            entry["attention"] = f"{stem}_attention.png"
            if save_npy:
                np.savez(out / f"{stem}_attention.npz",
                         **{f"row{g.row}_{g.layer}_{_safe(g.name)}": g.value for g in gates})
                entry["attention_npz"] = f"{stem}_attention.npz"
        (out / f"{stem}.json").write_text(json.dumps(entry, indent=2) + "\n")
        hot = sum(r["more_heat_inside"] for r in records)
        log(f"{Path(path).name}: {len(records)} detection(s); more heat inside the box than outside for "
            f"{hot}/{len(records)}")
        total += len(records)
        everything.append(entry)
    seconds = time.perf_counter() - start
    log(f"{total} heatmap(s) for {len(files)} image(s) in {seconds:.1f} s ({total / max(seconds, 1e-9):.2f} "
        f"heatmaps/s, drawing included); results in {out}")
    if not total:
        log(f"no detections at --conf {conf}: lower --conf to see more")
    return everything


def check_img_size(imgsz, stride):
    """``imgsz`` rounded up to a multiple of ``stride``, with yolov5's warning when that changes it (yolov5's
    ``check_img_size``, written here: three lines, the same for every engine's model)."""
    size = math.ceil(imgsz / stride) * stride
    if size != imgsz:
        print(f"WARNING ⚠️ --img-size {imgsz} must be multiple of max stride {stride}, updating to {size}",
              file=sys.stderr)
    return size


def check_args(conf, iou, batch_size, imgsz):
    if not 0 <= conf <= 1:
        raise BadParameter("conf", f"{{name}} must be in [0, 1], got {conf}")
    if not 0 <= iou <= 1:
        raise BadParameter("iou", f"{{name}} must be in [0, 1], got {iou}")
    if batch_size < 1:
        raise BadParameter("batch_size", f"{{name}} must be at least 1, got {batch_size}")
    if imgsz is not None and imgsz < 32:
        raise BadParameter("imgsz", f"{{name}} must be at least 32, got {imgsz}")
