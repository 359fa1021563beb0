"""yolov5's label cache: a poisoned labels/*.cache in the dataset folder never runs, nothing is written there, and the
labels are cached without pickle in yolo-attn's cache folder, keyed by the label files' content."""
import hashlib
import os
from pathlib import Path

import numpy as np
import pytest

import yolo_attn  # noqa: F401  (patches yolov5)
from yolo_attn.datasets import shapes


class Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def poison(cache, marker):
    """What yolov5 reads with np.load(allow_pickle=True).item(): a pickled object that runs a command."""
    with open(cache, "wb") as f:
        np.save(f, np.array(Payload(marker), dtype=object), allow_pickle=True)


def digest(folder):
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(Path(folder).rglob("*")) if p.is_file()}


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("YOLO_ATTN_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def dataset(tmp_path):
    shapes.generate(tmp_path / "ds", train=6, val=2, size=64, seed=1)
    return tmp_path / "ds"


def load(folder, quiet):
    from yolov5.utils.dataloaders import LoadImagesAndLabels

    return LoadImagesAndLabels(str(folder / "images" / "train"), img_size=64, batch_size=2, workers=0)


def expected_labels(folder):
    return {p.stem: np.loadtxt(p, ndmin=2, dtype=np.float32) for p in sorted((folder / "labels" / "train").glob("*.txt"))}


def test_a_poisoned_cache_in_the_dataset_folder_never_runs_and_nothing_is_written_there(tmp_path, dataset, cache_home,
                                                                                         quiet_yolov5):
    marker = tmp_path / "PWNED"
    poison(dataset / "labels" / "train.cache", marker)
    before = digest(dataset)
    data = load(dataset, quiet_yolov5)
    assert not marker.exists()
    assert digest(dataset) == before  # the poisoned file is still there, nothing new beside it
    labels = {Path(f).stem: lb for f, lb in zip(data.im_files, data.labels)}
    expected = expected_labels(dataset)
    assert labels.keys() == expected.keys() and all(np.array_equal(labels[k], expected[k]) for k in expected)
    assert data.shapes.tolist() == [[64, 64]] * 6
    assert [p.suffix for p in (cache_home / "labels").iterdir()] == [".npz"]


def test_the_cache_is_used_and_follows_label_edits(dataset, cache_home, quiet_yolov5, monkeypatch):
    import yolov5.utils.dataloaders as dataloaders

    first = load(dataset, quiet_yolov5)
    checked = []
    verify = dataloaders.verify_image_label
    monkeypatch.setattr(dataloaders, "verify_image_label", lambda args: checked.append(args[0]) or verify(args))
    again = load(dataset, quiet_yolov5)
    assert checked == []  # read from the cache
    assert again.im_files == first.im_files and again.shapes.tolist() == first.shapes.tolist()
    assert all(np.array_equal(a, b) for a, b in zip(again.labels, first.labels))
    assert [len(s) for s in again.segments] == [len(s) for s in first.segments]
    # an edited label of the same length (yolov5's own key, total size + names, would keep the old boxes)
    label = sorted((dataset / "labels" / "train").glob("*.txt"))[0]
    text = label.read_text()
    edited = text.replace(text[0], "3" if text[0] != "3" else "2", 1)
    assert len(edited) == len(text)
    label.write_text(edited)
    third = load(dataset, quiet_yolov5)
    assert len(checked) == 6
    index = [Path(f).stem for f in third.im_files].index(label.stem)
    assert third.labels[index][0, 0] == float(edited[0])
    assert len(list((cache_home / "labels").glob("*.npz"))) == 2


def test_a_tampered_file_in_the_cache_folder_runs_nothing_either(tmp_path, dataset, cache_home, quiet_yolov5):
    from yolo_attn.engines.yolov5.label_cache import cache_file

    data = load(dataset, quiet_yolov5)
    file = cache_file(data.im_files, data.label_files, data.cache_version)
    marker = tmp_path / "PWNED"
    with open(file, "wb") as f:
        np.savez(f, files=np.array([Payload(marker)], dtype=object))
    again = load(dataset, quiet_yolov5)
    assert not marker.exists()
    assert len(again.labels) == 6


def test_segments_survive_the_cache(tmp_path, cache_home, quiet_yolov5):
    from yolo_attn.engines.yolov5.label_cache import _arrays, _from_arrays

    x = {"a.jpg": [np.array([[0, .5, .5, .2, .2], [1, .3, .3, .1, .1]], np.float32), (64, 48),
                   [np.array([[.4, .4], [.6, .4], [.6, .6]], np.float32), np.array([[.2, .2], [.3, .3]], np.float32)]],
         "b.jpg": [np.zeros((0, 5), np.float32), (32, 32), []],
         "results": (1, 0, 1, 0, 2), "msgs": ["w"], "version": 0.6}
    back = _from_arrays(_arrays(x), "k")
    assert list(back) == ["a.jpg", "b.jpg", "hash", "results", "msgs", "version"]
    assert back["a.jpg"][1] == (64, 48) and np.array_equal(back["a.jpg"][0], x["a.jpg"][0])
    assert all(np.array_equal(a, b) for a, b in zip(back["a.jpg"][2], x["a.jpg"][2]))
    assert back["b.jpg"][0].shape == (0, 5) and back["b.jpg"][2] == []
    assert back["results"] == (1, 0, 1, 0, 2) and back["msgs"] == ["w"] and back["version"] == 0.6
