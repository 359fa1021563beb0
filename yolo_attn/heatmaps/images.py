"""Images in and out of the model's frame: reading, yolov5's letterbox, and its exact inverse for maps and boxes.

The image suffixes and the letterbox are written here, not asked of the model's engine: they are a few lines, and
both engines' models got yolov5's letterbox before (an engine's own could shift a padding pixel and change the
maps); ``tests/heatmaps/test_heatmap_images.py`` checks both against yolov5's."""
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from yolo_attn.errors import BadParameter, UsageError


#: the image suffixes a folder is searched for (yolov5's ``IMG_FORMATS``)
IMG_FORMATS = "bmp", "dng", "jpeg", "jpg", "mpo", "png", "tif", "tiff", "webp", "pfm"


def image_files(source):
    """The images of ``source``: one image file, or the images directly inside a folder (sorted)."""
    path = Path(source).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower().lstrip(".") in IMG_FORMATS)
        if not files:
            raise UsageError(f"no images in {path} (looked for: {', '.join(sorted(IMG_FORMATS))})")
        return files
    if path.is_file():
        return [path]
    raise BadParameter("source", f"{{name}} {source!r}: no such file or folder ({path.resolve()})")


def read_image(path):
    """BGR uint8 image; a file OpenCV cannot decode is named in the error."""
    img = cv2.imread(str(path))
    if img is None:
        raise UsageError(f"cannot read image {path} (not an image, or corrupt)")
    return img


@dataclass
class Frame:
    """How an original image (h0, w0) sits in the letterboxed model input (h, w): scale ``gain``, offset ``pad``."""
    shape0: tuple  # original (h, w)
    shape: tuple  # model input (h, w)
    gain: float
    pad: tuple  # (left, top) in input pixels, as letterbox placed the image
    unpadded: tuple  # (w, h) of the resized image inside the input

    def boxes_to_original(self, boxes):
        """xyxy in input pixels -> xyxy in original pixels, clipped to the image (yolov5's scale_boxes)."""
        b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4).copy()
        b[:, [0, 2]] = (b[:, [0, 2]] - self.pad[0]) / self.gain
        b[:, [1, 3]] = (b[:, [1, 3]] - self.pad[1]) / self.gain
        b[:, [0, 2]] = b[:, [0, 2]].clip(0, self.shape0[1])
        b[:, [1, 3]] = b[:, [1, 3]].clip(0, self.shape0[0])
        return b

    def map_to_original(self, m):
        """A map over the model input (h, w) -> the same map over the original image (h0, w0): drop the padding,
        undo the resize (bilinear)."""
        left, top = self.pad
        w, h = self.unpadded
        crop = np.ascontiguousarray(m[top:top + h, left:left + w], dtype=np.float32)
        return cv2.resize(crop, (self.shape0[1], self.shape0[0]), interpolation=cv2.INTER_LINEAR)


def letterbox(img, imgsz, stride=32, color=(114, 114, 114)):
    """yolov5's ``letterbox`` with ``auto=True`` (minimum rectangle, as detect.py): resized to fit ``imgsz``, then
    padded on both sides to a multiple of ``stride``. Returns (image, gain, (dw, dh): the padding per side)."""
    h0, w0 = img.shape[:2]
    gain = min(imgsz / h0, imgsz / w0)
    unpadded = int(round(w0 * gain)), int(round(h0 * gain))
    dw, dh = np.mod(imgsz - unpadded[0], stride) / 2, np.mod(imgsz - unpadded[1], stride) / 2
    if (w0, h0) != unpadded:
        img = cv2.resize(img, unpadded, interpolation=cv2.INTER_LINEAR)
    top, bottom = int(round(dh - 0.1)), int(round(dh + 0.1))
    left, right = int(round(dw - 0.1)), int(round(dw + 0.1))
    return cv2.copyMakeBorder(img, top, bottom, left, right, cv2.BORDER_CONSTANT, value=color), gain, (dw, dh)


def letterbox_tensor(img, imgsz, stride, device="cpu"):
    """yolov5's letterbox (minimum rectangle, as detect.py): a (1, 3, h, w) RGB float tensor in [0, 1], and its Frame."""
    h0, w0 = img.shape[:2]
    lb, gain, (dw, dh) = letterbox(img, imgsz, stride)
    top, left = int(round(dh - 0.1)), int(round(dw - 0.1))
    unpadded = int(round(w0 * gain)), int(round(h0 * gain))
    x = torch.from_numpy(np.ascontiguousarray(lb[:, :, ::-1].transpose(2, 0, 1))).to(device).float()[None] / 255
    return x, Frame((h0, w0), lb.shape[:2], float(gain), (left, top), unpadded)
