"""The embedded 'shapes' dataset: deterministic, varied, and with labels that sit on the drawn objects."""
import json

import cv2
import numpy as np
import pytest
import yaml

from yolo_attn.datasets import shapes

SIZE = 256
COUNTS = dict(train=6, val=3)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("gen") / "shapes"
    data_yaml = shapes.generate(root, **COUNTS, size=SIZE, seed=0)
    return root, data_yaml


def files(root):
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())


def read_labels(path):
    rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
    return [(int(r[0]), *map(float, r[1:])) for r in rows]


def all_labels(root):
    return {p: read_labels(p) for p in sorted((root / "labels").rglob("*.txt"))}


def test_layout_and_data_yaml(dataset):
    root, data_yaml = dataset
    assert data_yaml == root / "shapes.yaml"
    data = yaml.safe_load(data_yaml.read_text())
    assert data == {"path": str(root.resolve()), "train": "images/train", "val": "images/val",
                    "names": {0: "circle", 1: "square", 2: "triangle", 3: "cross"}}
    for split, n in COUNTS.items():
        images = sorted((root / "images" / split).glob("*.jpg"))
        assert len(images) == n
        assert [p.stem for p in images] == [p.stem for p in sorted((root / "labels" / split).glob("*.txt"))]
        for p in images:
            im = cv2.imread(str(p))
            assert im is not None and im.shape == (SIZE, SIZE, 3)
    assert json.loads((root / "COMPLETE.json").read_text()) == dict(version=shapes.VERSION, **COUNTS, size=SIZE, seed=0)
    assert not list(root.parent.glob(".shapes-*"))  # no temporary folder left behind


def test_generation_is_deterministic(dataset, tmp_path):
    root, _ = dataset
    again = tmp_path / "again"
    shapes.generate(again, **COUNTS, size=SIZE, seed=0)
    assert files(again) == files(root)
    for rel in files(root):
        if rel.name != "shapes.yaml":  # holds the absolute path of its own folder
            assert (again / rel).read_bytes() == (root / rel).read_bytes(), rel


def test_another_seed_gives_other_images(dataset, tmp_path):
    root, _ = dataset
    other = tmp_path / "other"
    shapes.generate(other, train=2, val=1, size=SIZE, seed=1)
    assert (other / "images/train/train_00000.jpg").read_bytes() != (root / "images/train/train_00000.jpg").read_bytes()


def test_labels_are_varied_normalised_and_include_small_objects(dataset):
    root, _ = dataset
    labels = all_labels(root)
    assert len(labels) == sum(COUNTS.values())
    classes = {row[0] for rows in labels.values() for row in rows}
    assert len(classes) >= 3 and classes <= {0, 1, 2, 3}
    per_image = [len(rows) for rows in labels.values()]
    assert min(per_image) >= 3 and max(per_image) <= 8
    assert sum(n >= 4 for n in per_image) >= len(per_image) // 2  # several objects per image
    sides = []
    for rows in labels.values():
        for cls, x, y, w, h in rows:
            assert 0 <= x - w / 2 and x + w / 2 <= 1 + 1e-6 and 0 <= y - h / 2 and y + h / 2 <= 1 + 1e-6
            assert 0 < w <= 1 and 0 < h <= 1
            sides.append(max(w, h) * SIZE)
    assert min(sides) < 32, "no small objects (COCO: < 32 px)"
    assert sum(s < 32 for s in sides) >= 5
    assert max(sides) > 48


def test_val_images_are_not_copies_of_train_images(dataset):
    root, _ = dataset
    train = [cv2.imread(str(p)).astype(np.int16) for p in sorted((root / "images/train").glob("*.jpg"))]
    for p in sorted((root / "images/val").glob("*.jpg")):
        v = cv2.imread(str(p)).astype(np.int16)
        assert min(np.abs(v - t).mean() for t in train) > 5, p.name


def chroma(image):
    """Colour saturation as chroma, max - min over B, G, R (HSV's S times V): unlike HSV's S it stays low on
    dark, slightly tinted backgrounds, and it is high on the saturated, bright objects."""
    im = cv2.imread(str(image)).astype(np.float32)
    return im.max(-1) - im.min(-1)


def test_label_boxes_cover_the_coloured_objects(dataset):
    root, _ = dataset
    ratios = []
    for split in COUNTS:
        for image in sorted((root / "images" / split).glob("*.jpg")):
            sat = chroma(image)
            boxes = []
            for _, x, y, w, h in read_labels(root / "labels" / split / f"{image.stem}.txt"):
                x1, y1 = int(round((x - w / 2) * SIZE)), int(round((y - h / 2) * SIZE))
                x2, y2 = int(round((x + w / 2) * SIZE)), int(round((y + h / 2) * SIZE))
                boxes.append((x1, y1, x2, y2))
            background = np.ones(sat.shape, bool)
            for x1, y1, x2, y2 in boxes:
                background[max(y1 - 2, 0):y2 + 2, max(x1 - 2, 0):x2 + 2] = False
            bg = sat[background].mean()
            assert bg < 60, f"{image.name}: background is not grey-ish (saturation {bg:.0f})"
            for x1, y1, x2, y2 in boxes:
                inside = sat[y1:y2, x1:x2].mean()
                ratios.append(inside / max(bg, 1.0))
                assert inside > bg + 40, f"{image.name}: box {x1, y1, x2, y2} has no coloured object"
    assert np.median(ratios) > 3


def test_a_label_shifted_off_its_object_would_be_caught(dataset):
    """The coverage check above can fail: the same box moved onto background has background saturation."""
    root, _ = dataset
    image = root / "images/train/train_00000.jpg"
    sat = chroma(image)
    occupied = np.zeros(sat.shape, bool)
    for _, x, y, w, h in read_labels(root / "labels/train/train_00000.txt"):
        occupied[int((y - h / 2) * SIZE):int((y + h / 2) * SIZE) + 1,
                 int((x - w / 2) * SIZE):int((x + w / 2) * SIZE) + 1] = True
    free = [(r, c) for r in range(0, SIZE - 12, 4) for c in range(0, SIZE - 12, 4) if not occupied[r:r + 12, c:c + 12].any()]
    assert free
    r, c = free[0]
    assert sat[r:r + 12, c:c + 12].mean() < 60


# ---------------------------------------------------------------------------------------------------------------
# ensure(): generate only when needed


@pytest.fixture
def spy_generate(monkeypatch):
    calls = []
    real = shapes.generate

    def spy(root, **kwargs):
        calls.append(kwargs)
        return real(root, **kwargs)

    monkeypatch.setattr(shapes, "generate", spy)
    return calls


def test_ensure_generates_once_then_reuses(tmp_path, spy_generate):
    root = tmp_path / "shapes"
    params = dict(train=2, val=1, size=64)
    first = shapes.ensure(root, **params)
    assert first == root / "shapes.yaml" and first.is_file()
    assert len(spy_generate) == 1 and spy_generate[0] == dict(shapes.DEFAULTS, **params)
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    assert shapes.ensure(root, **params) == first
    assert len(spy_generate) == 1
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == before


@pytest.mark.parametrize("damage", ["missing marker", "old version", "other params", "moved", "missing yaml",
                                    "corrupt marker"])
def test_ensure_regenerates_when_missing_or_outdated(tmp_path, spy_generate, damage):
    root = tmp_path / "shapes"
    params = dict(train=2, val=1, size=64)
    shapes.ensure(root, **params)
    marker = root / "COMPLETE.json"
    if damage == "missing marker":
        marker.unlink()
        (root / "images/train/train_00000.jpg").unlink()  # an interrupted generation
    elif damage == "old version":
        marker.write_text(json.dumps(dict(json.loads(marker.read_text()), version=shapes.VERSION - 1)))
    elif damage == "other params":
        params["train"] = 3
    elif damage == "moved":
        root.rename(tmp_path / "elsewhere")
        (tmp_path / "elsewhere").rename(root)
        data = yaml.safe_load((root / "shapes.yaml").read_text())
        (root / "shapes.yaml").write_text(yaml.safe_dump(dict(data, path="/some/where/else")))
    elif damage == "missing yaml":
        (root / "shapes.yaml").unlink()
    elif damage == "corrupt marker":
        marker.write_text("{not json")
    assert len(spy_generate) == 1
    data_yaml = shapes.ensure(root, **params)
    assert len(spy_generate) == 2
    assert json.loads(marker.read_text()) == dict(version=shapes.VERSION, **dict(shapes.DEFAULTS, **params))
    assert yaml.safe_load(data_yaml.read_text())["path"] == str(root.resolve())
    assert len(list((root / "images/train").glob("*.jpg"))) == params["train"]
