"""Pictures of heatmaps: one per detection (its map, box, label and score) and one overview per image."""
import cv2
import numpy as np

MIN_SIDE = 480  # smaller images are enlarged for drawing (maps and boxes alike), so labels stay legible

# BGR colours per class (Ultralytics' palette, first entries)
_PALETTE = [(56, 56, 255), (151, 157, 255), (31, 112, 255), (29, 178, 255), (49, 210, 207), (10, 249, 72),
            (23, 204, 146), (134, 219, 61), (52, 147, 26), (187, 212, 0), (168, 153, 44), (255, 194, 0),
            (147, 69, 52), (255, 115, 100), (236, 24, 0), (255, 56, 132), (133, 0, 82), (255, 56, 203),
            (200, 149, 255), (199, 55, 255)]


def colour(cls):
    return _PALETTE[int(cls) % len(_PALETTE)]


def display_scale(shape):
    """Integer factor that brings the longer side of an image to at least MIN_SIDE pixels (1 for large images)."""
    return max(1, int(np.ceil(MIN_SIDE / max(shape[:2]))))


def overlay(img_bgr, heat, image_weight=0.5):
    """pytorch-grad-cam's show_cam_on_image (JET colour map) of ``heat`` in [0, 1] over a BGR image; BGR out."""
    from pytorch_grad_cam.utils.image import show_cam_on_image

    rgb = np.float32(img_bgr[:, :, ::-1]) / 255
    out = show_cam_on_image(rgb, np.clip(heat, 0, 1).astype(np.float32), use_rgb=True, image_weight=image_weight)
    return np.ascontiguousarray(out[:, :, ::-1])


def draw_box(img, box, text, cls, scale=1):
    """A box (xyxy, in the pixels of ``img`` before ``scale``) with its label on a filled tag."""
    x1, y1, x2, y2 = (int(round(v * scale)) for v in box)
    c = colour(cls)
    thick = max(1, round(min(img.shape[:2]) / 240))
    cv2.rectangle(img, (x1, y1), (x2, y2), c, thick, cv2.LINE_AA)
    font_scale = max(0.4, min(img.shape[:2]) / 900)
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
    ty = y1 - 2 if y1 - th - base - 2 >= 0 else min(img.shape[0] - 1, y2 + th + 2)
    cv2.rectangle(img, (x1, ty - th - base), (x1 + tw + 2, ty + base - 1), c, -1)
    cv2.putText(img, text, (x1 + 1, ty - 1), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (255, 255, 255), 1, cv2.LINE_AA)
    return img


def _enlarge(img, heat, scale):
    if scale == 1:
        return img, heat
    size = (img.shape[1] * scale, img.shape[0] * scale)
    return (cv2.resize(img, size, interpolation=cv2.INTER_LINEAR),
            cv2.resize(np.float32(heat), size, interpolation=cv2.INTER_LINEAR))


def caption(img, text):
    """A dark strip with ``text`` above the image."""
    font_scale = max(0.4, img.shape[1] / 1200)
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
    strip = np.full((th + base + 8, img.shape[1], 3), 32, np.uint8)
    cv2.putText(strip, text, (4, th + 4), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (255, 255, 255), 1, cv2.LINE_AA)
    return np.vstack([strip, img])


def detection_image(img_bgr, heat, box, label, conf, cls, title=""):
    """One detection: its heatmap over the image, its box and ``label conf``; ``title`` in a strip on top."""
    scale = display_scale(img_bgr.shape)
    img, heat = _enlarge(img_bgr, heat, scale)
    out = draw_box(overlay(img, heat), box, f"{label} {conf:.2f}", cls, scale)
    return caption(out, title) if title else out


def overview_image(img_bgr, heat, boxes, labels, confs, classes, title=""):
    """All detections of an image over one heatmap (the pixel-wise maximum of theirs)."""
    scale = display_scale(img_bgr.shape)
    img, heat = _enlarge(img_bgr, heat, scale)
    out = overlay(img, heat)
    for box, label, conf, cls in zip(boxes, labels, confs, classes):
        draw_box(out, box, f"{label} {conf:.2f}", cls, scale)
    return caption(out, title) if title else out
