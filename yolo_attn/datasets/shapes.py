"""The embedded default dataset: coloured shapes on cluttered backgrounds, generated deterministically.

No download and nothing shipped in binary form: the same seed gives the same images on every machine
(OpenCV drawing + JPEG encoding). Four classes, 3-8 objects per image, object sizes from 1/16 to 1/3 of the
image side (10-53 px at the default 160 px: most are small, COCO's < 32² px), occasional unlabeled clutter, and a val split drawn from a different seed, so
no val image is a copy of a train image.
"""
import json
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np
import yaml
from filelock import FileLock, Timeout

from yolo_attn.errors import DatasetError

NAMES = ("circle", "square", "triangle", "cross")
HUES = (0, 60, 120, 30)  # OpenCV hue (0-180) per class: red, green, blue, orange; jittered per object
VERSION = 2
DEFAULTS = dict(train=400, val=100, size=160, seed=0)
LOCK_TIMEOUT_S = 600  # generating the default set takes about 1 s


def _background(rng, size):
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    a, b, c = rng.uniform(-60, 60, 3)
    base = rng.uniform(70, 170) + a * x + b * y + c * x * y
    img = np.repeat(base[..., None], 3, axis=2) + rng.normal(0, 8, (size, size, 3))
    img += rng.uniform(-15, 15, 3)  # colour cast
    return np.clip(img, 0, 255).astype(np.uint8)


def _clutter(rng, img):
    for _ in range(rng.integers(0, 4)):
        p1, p2 = rng.integers(0, img.shape[0], 2), rng.integers(0, img.shape[0], 2)
        grey = int(rng.integers(40, 220))
        cv2.line(img, tuple(map(int, p1)), tuple(map(int, p2)), (grey, grey, grey), int(rng.integers(1, 3)))


def _colour(rng, cls):
    hue = (HUES[cls] + rng.integers(-8, 9)) % 180
    hsv = np.uint8([[[hue, rng.integers(150, 256), rng.integers(150, 256)]]])
    return tuple(int(v) for v in cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0])


def _draw(img, rng, cls, cx, cy, s):
    """Draw one object of class ``cls`` and side ``s`` centred at (cx, cy); return its tight box."""
    colour, r = _colour(rng, cls), s / 2
    if cls == 0:
        cv2.circle(img, (cx, cy), int(round(r)), colour, -1, cv2.LINE_AA)
        pts = np.array([[cx - r, cy - r], [cx + r, cy + r]])
    else:
        if cls == 1:
            pts = np.array([[-r, -r], [r, -r], [r, r], [-r, r]])
        elif cls == 2:
            pts = np.array([[0, -r], [r, r * 0.8], [-r, r * 0.8]])
        else:
            t = r / 3
            pts = np.array([[-t, -r], [t, -r], [t, -t], [r, -t], [r, t], [t, t], [t, r], [-t, r], [-t, t], [-r, t],
                            [-r, -t], [-t, -t]])
        angle = rng.uniform(-0.3, 0.3)
        rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        pts = pts @ rot.T + (cx, cy)
        cv2.fillPoly(img, [np.round(pts).astype(np.int32)], colour, cv2.LINE_AA)
    x1, y1 = pts.min(0)
    x2, y2 = pts.max(0)
    return x1, y1, x2, y2


def _iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def make_image(rng, size):
    """One image (BGR uint8) and its labels as rows (cls, x1, y1, x2, y2) in pixels."""
    img = _background(rng, size)
    _clutter(rng, img)
    boxes = []
    for _ in range(int(rng.integers(3, 9))):
        for _attempt in range(20):
            s = float(np.exp(rng.uniform(np.log(size / 16), np.log(size / 3))))
            cx, cy = (int(v) for v in rng.integers(int(s / 2) + 1, size - int(s / 2) - 1, 2))
            box = (cx - s / 2, cy - s / 2, cx + s / 2, cy + s / 2)
            if all(_iou(box, b[1:]) < 0.05 for b in boxes):
                cls = int(rng.integers(0, len(NAMES)))
                boxes.append((cls, *_draw(img, rng, cls, cx, cy, s)))
                break
    return img, boxes


def _write_split(root, split, n, size, seed):
    rng = np.random.default_rng(seed)
    (root / "images" / split).mkdir(parents=True)
    (root / "labels" / split).mkdir(parents=True)
    for k in range(n):
        img, boxes = make_image(rng, size)
        name = f"{split}_{k:05d}"
        cv2.imwrite(str(root / "images" / split / f"{name}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
        rows = []
        for cls, x1, y1, x2, y2 in boxes:
            x1, y1, x2, y2 = (float(np.clip(v, 0, size)) for v in (x1, y1, x2, y2))
            rows.append(f"{cls} {(x1 + x2) / 2 / size:.6f} {(y1 + y2) / 2 / size:.6f} "
                        f"{(x2 - x1) / size:.6f} {(y2 - y1) / size:.6f}")
        (root / "labels" / split / f"{name}.txt").write_text("\n".join(rows) + "\n")


def generate(root, train=DEFAULTS["train"], val=DEFAULTS["val"], size=DEFAULTS["size"], seed=DEFAULTS["seed"]):
    """Write the dataset to ``root`` (built in a temporary folder, then moved: never left half-written)."""
    root = Path(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}-", dir=root.parent))
    try:
        _write_split(tmp, "train", train, size, seed)
        _write_split(tmp, "val", val, size, seed + 1_000_003)
        data = {"path": str(root.resolve()), "train": "images/train", "val": "images/val",
                "names": dict(enumerate(NAMES))}
        (tmp / "shapes.yaml").write_text("# yolo-attn embedded dataset (generated; see yolo_attn/datasets/shapes.py)\n"
                                         + yaml.safe_dump(data, sort_keys=False))
        meta = dict(version=VERSION, train=train, val=val, size=size, seed=seed)
        (tmp / "COMPLETE.json").write_text(json.dumps(meta))
        if root.exists():
            shutil.rmtree(root)
        tmp.rename(root)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return root / "shapes.yaml"


def ensure(root, **params):
    """The data YAML of the dataset at ``root``, generating it first if missing, incomplete or outdated.

    Safe with several processes, also on several machines sharing the folder (DDP ranks): one generates it under a
    file lock next to ``root`` (``.<name>.lock``), the others wait for it and use it."""
    root = Path(root)
    want = dict(DEFAULTS, **params)
    if _current(root, want):
        return root / "shapes.yaml"
    from yolo_attn.paths import writable_home

    writable_home(root.parent).mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(root.parent / f".{root.name}.lock"), timeout=LOCK_TIMEOUT_S)
    try:
        with lock:
            return root / "shapes.yaml" if _current(root, want) else generate(root, **want)
    except Timeout:
        raise DatasetError(f"waited {LOCK_TIMEOUT_S} s for {lock.lock_file}: another process holds it while it "
                           f"generates {root}. If none does, the file system may not support locks; generate the "
                           f"dataset once from one process first.") from None


def _current(root, want):
    """Whether ``root`` holds the complete dataset with these parameters, at this path."""
    try:
        meta = json.loads((root / "COMPLETE.json").read_text())
    except (OSError, ValueError):
        return False
    yaml_path = root / "shapes.yaml"
    return meta == dict(version=VERSION, **want) and yaml_path.is_file() and \
        yaml.safe_load(yaml_path.read_text()).get("path") == str(root.resolve())
