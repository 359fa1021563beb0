"""A symbolic link to a parent folder among the images: yolov5's recursive glob (and a check that walks like it) would
run for hours; it is refused at once, naming the link."""
import os
import signal
from contextlib import contextmanager

import pytest

import yolo_attn  # noqa: F401  (patches yolov5)
from yolo_attn.datasets import shapes
from yolo_attn.errors import DatasetError
from yolo_attn.paths import walk_files


@contextmanager
def deadline(seconds):
    def stop(*_):
        raise TimeoutError(f"still walking after {seconds} s")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def looped(tmp_path):
    data = shapes.generate(tmp_path / "ds", train=4, val=2, size=64, seed=1)
    train = tmp_path / "ds" / "images" / "train"
    (train / "sub").mkdir()
    os.symlink("..", train / "sub" / "up")  # two links back: 2^40 paths for glob
    os.symlink("../..", train / "sub" / "up2")
    return data, train


def test_yolov5s_dataset_refuses_the_loop_at_once(looped, quiet_yolov5):
    from yolov5.utils.dataloaders import LoadImagesAndLabels

    _, train = looped
    with deadline(60), pytest.raises(Exception) as e:
        LoadImagesAndLabels(str(train), img_size=64, batch_size=2, workers=0)
    assert isinstance(e.value.__cause__, DatasetError)  # (yolov5 wraps every loading error in its own message)
    assert f"{train / 'sub' / 'up'} is a symbolic link to {train}, a folder it is inside of" in str(e.value)


def test_walk_follows_links_that_do_not_loop(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "a.jpg").write_bytes(b"")
    (tmp_path / "images" / ".hidden").mkdir(parents=True)
    (tmp_path / "images" / ".hidden" / "b.jpg").write_bytes(b"")
    (tmp_path / "images" / "c.jpg").write_bytes(b"")
    os.symlink(tmp_path / "elsewhere", tmp_path / "images" / "linked")
    os.symlink(tmp_path / "images", tmp_path / "images" / ".hidden" / "loop")  # hidden: glob never walks it
    with deadline(30):
        found = sorted(p.relative_to(tmp_path / "images").as_posix() for p in walk_files(tmp_path / "images"))
    assert found == ["c.jpg", "linked/a.jpg"]
    import glob

    assert sorted(os.path.relpath(p, tmp_path / "images") for p in glob.glob(
        str(tmp_path / "images" / "**" / "*.*"), recursive=True)) == found  # what yolov5 lists


def test_the_data_check_refuses_the_loop_with_the_link(looped):
    from yolo_attn.datasets import checks

    data, train = looped
    with deadline(60), pytest.raises(DatasetError, match=f"{train / 'sub' / 'up'} is a symbolic link to {train}"):
        checks.prepare(data)
