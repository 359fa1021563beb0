"""The engine-neutral helpers both adapters share: the atomic writer, quiet logging, the one patch primitive."""
import logging
import pickle
import types

import pytest
import torch

from yolo_attn import paths
from yolo_attn.engines import _patch, common


def test_write_atomically_takes_text_and_bytes_and_a_failure_leaves_the_old_file(tmp_path):
    f = tmp_path / "a.txt"
    paths.write_atomically(f, "é\n")
    assert f.read_text(encoding="utf-8") == "é\n"
    paths.write_atomically(f, b"\x00\x01")
    assert f.read_bytes() == b"\x00\x01"
    with pytest.raises((AttributeError, TypeError, pickle.PicklingError)):
        paths.save_atomically(lambda: None, f)  # a local function cannot be pickled
    assert f.read_bytes() == b"\x00\x01" and sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_write_checkpoint_makes_its_folder_and_saves_through_torch(tmp_path):
    path = common.write_checkpoint({"x": torch.ones(2)}, tmp_path / "w" / "best.pt")
    assert torch.equal(torch.load(path)["x"], torch.ones(2))


def test_quiet_sets_and_restores_the_level():
    logger = logging.getLogger("yolo-attn-test-quiet")
    logger.setLevel(logging.INFO)
    with common.quiet(logger) as got:
        assert got is logger and logger.level == logging.WARNING
    assert logger.level == logging.INFO


def test_replace_restores_the_original_also_in_a_module_that_imported_the_replacement():
    def stock():
        pass

    def ours():
        pass

    a, b = types.ModuleType("a"), types.ModuleType("b")
    a.f = stock
    undo_a = _patch.replace(a, "f", ours)
    b.f = a.f  # ``from a import f`` after a was patched
    undo_b = _patch.replace(b, "f", ours)
    assert _patch.original_of(ours) is stock and _patch.original_of(stock) is stock
    undo_b(), undo_a()
    assert a.f is stock and b.f is stock
    undo_added = _patch.replace(a, "g", ours)
    undo_added()
    assert not hasattr(a, "g")
