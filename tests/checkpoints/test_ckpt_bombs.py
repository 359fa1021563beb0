"""Checkpoints built to cost time or memory (zip bombs, opcode floods, deep nesting, memo amplification, rebuild
functions given allocating or wrong arguments) are refused at once, each with the loader's one clear message."""
import pickle
import pickletools
import time
import zipfile

import pytest

from checkpoint_gadgets import Call, data_pkl, with_data_pkl
from tiny_models import tiny_yolov5
from yolo_attn import checkpoints
from yolo_attn.checkpoints import load_checkpoint, pickle_scan
from yolo_attn.errors import UsageError

@pytest.fixture(scope="module")
def good(tmp_path_factory):
    from yolo_attn.engines.yolov5.model import save_checkpoint

    return save_checkpoint(tiny_yolov5(), tmp_path_factory.mktemp("bombs") / "best.pt")


def refused_fast(path, match, seconds=1.0, refusal=True):
    t = time.perf_counter()
    with pytest.raises(UsageError, match=match) as e:
        load_checkpoint(path)
    took = time.perf_counter() - t
    assert took < seconds, f"took {took:.2f} s"
    if refusal:  # (else: it loads, and is then not a checkpoint)
        assert f"refusing to load {path}" in str(e.value) and "nothing of this file has run" in str(e.value)
    return str(e.value)


def _archive(good, target, pickle_bytes, compress):
    """``good`` with its data.pkl replaced by ``pickle_bytes`` (deflated when ``compress``, as a zip bomb is)."""
    with zipfile.ZipFile(good) as zin, zipfile.ZipFile(target, "w") as zout:
        for info in zin.infolist():
            data = pickle_bytes if info.filename.endswith("/data.pkl") else zin.read(info)
            zout.writestr(info.filename, data, zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED)
    return target


def test_a_zip_bomb_is_refused_from_its_directory_before_anything_is_inflated(tmp_path, good):
    bomb = b"\x80\x02" + b"N" * (100 * 2 ** 20) + b"."  # 100 MiB of NONE opcodes, ~100 KB deflated
    path = _archive(good, tmp_path / "bomb.pt", bomb, compress=True)
    assert path.stat().st_size < 1_000_000
    refused_fast(path, r"its data.pkl is 104.9 MB uncompressed, above the 16 MiB")


def test_archive_members_beyond_the_file_bound_are_refused(tmp_path, good, monkeypatch):
    path = _archive(good, tmp_path / "big.pt", data_pkl(good), compress=True)
    # the file itself within the bound, its members inflated beyond it (a real 4 GiB would take minutes to deflate)
    monkeypatch.setattr(checkpoints, "MAX_FILE_BYTES", path.stat().st_size + 1)
    refused_fast(path, r"archive members hold .* GB uncompressed .*a zip bomb")


def test_an_opcode_flood_within_the_size_bound_stops_at_the_opcode_bound(tmp_path, good):
    """(1,000,000 opcodes: 8 times a yolo11x last.pt with optimizer state)"""
    n = pickle_scan.MAX_OPS + 10
    flood = b"\x80\x02" + b"N" * n + b"."
    path = _archive(good, tmp_path / "flood.pt", flood, compress=False)
    refused_fast(path, rf"more than {pickle_scan.MAX_OPS:,} pickle opcodes", seconds=1.0)


def test_an_opcode_torch_never_writes_is_refused_at_its_first_occurrence(tmp_path, good):
    flood = b"\x80\x02" + b"0" * (15 * 2 ** 20) + b"."  # 15 M POPs (within the 16 MiB bound)
    refused_fast(_archive(good, tmp_path / "pops.pt", flood, compress=False), r"byte 2: pickle opcode POP")


def test_deep_nesting_is_refused_not_a_recursion_error(tmp_path, good):
    deep = b"\x80\x02" + b"]" * 100_000 + b"a" * 99_999 + b"."  # a list in a list ... 100k deep
    refused_fast(_archive(good, tmp_path / "deep.pt", deep, compress=False), r"nested more than 200 levels deep")


def test_a_memo_shared_object_costs_nothing_more_each_time_it_is_used(tmp_path, good):
    shared = [None] * 200_000
    amplified = pickle.dumps([shared] * 200_000, protocol=2)  # 200k references to one 200k-item list
    assert len(amplified) < 2_000_000
    refused_fast(_archive(good, tmp_path / "memo.pt", amplified, compress=False), "it holds a list", seconds=2.0,
                 refusal=False)


def test_allocating_calls_are_refused_before_they_allocate(tmp_path, good):
    import torch

    ckpt = load_checkpoint(good)
    for name, value, match in [
            ("bytearray.pt", Call(bytearray, 2 ** 40), r"builtins.bytearray of a size"),
            ("size.pt", Call(torch.Size, (2 ** 20, 2 ** 20, 2 ** 10)), r"a size of more than"),
    ]:
        torch.save({**ckpt, "x": value}, tmp_path / name)
        refused_fast(tmp_path / name, match)


def test_any_failure_of_an_allowed_call_is_the_same_refusal(tmp_path, good):
    import collections

    import torch

    ckpt = load_checkpoint(good)
    for name, value in [("ordered.pt", Call(collections.OrderedDict, 1, 2, 3)),  # TypeError inside the load
                        ("complex.pt", Call(complex, "not a number"))]:  # ValueError
        torch.save({**ckpt, "x": value}, tmp_path / name)
        message = refused_fast(tmp_path / name, r"loading it fails \((TypeError|ValueError): ")
        assert "Traceback" not in message


def test_a_storage_larger_than_its_record_is_refused(tmp_path, good):
    data = data_pkl(good)
    ops = [(op.name, arg, pos) for op, arg, pos in pickletools.genops(data)]
    # the element count of the first storage id ('storage', type, key, location, numel): the op before BINPERSID's
    # TUPLE is its numel
    i = next(k for k, (name, _, _) in enumerate(ops) if name == "BINPERSID")
    numel_op = next(ops[k] for k in range(i - 1, 0, -1) if ops[k][0].startswith("BININT"))
    end = next(pos for _, _, pos in ops if pos > numel_op[2])
    patched = data[:numel_op[2]] + b"J" + (2 ** 30).to_bytes(4, "little", signed=True) + data[end:]
    path = with_data_pkl(good, tmp_path / "overread.pt", lambda _: patched)
    refused_fast(path, r"a tensor storage of 1,073,741,824 elements .* has [\d,]+ bytes in the archive")


def test_a_file_above_the_size_bound_is_not_read(tmp_path, good, monkeypatch):
    monkeypatch.setattr(checkpoints, "MAX_FILE_BYTES", 1000)
    refused_fast(good, r"above the 0 GiB a checkpoint may have")
    with open(good, "rb") as f:
        with pytest.raises(UsageError, match="larger than"):
            load_checkpoint(f)


def test_a_zip_bomb_costs_nothing_where_the_engine_is_chosen_and_detect_refuses_it(tmp_path, good, capsys):
    """Before loading, the commands choose the engine from the names in the pickle (engines.of_checkpoint): read
    within the same bounds (torch's get_unsafe_globals_in_checkpoint inflated and walked all of it)."""
    from yolo_attn import engines
    from yolo_attn.cli import detect
    from yolo_attn.cli.pipeline import run_cli

    path = _archive(good, tmp_path / "bomb.pt", b"\x80\x02" + b"N" * (100 * 2 ** 20) + b".", compress=True)
    t = time.perf_counter()
    assert engines.of_checkpoint(path) is None
    assert time.perf_counter() - t < 1
    assert engines.of_checkpoint(good).name == "yolov5"
    t = time.perf_counter()
    assert run_cli(detect.main, ["--weights", str(path), "--source", str(tmp_path / "x.jpg")]) == 2
    err = capsys.readouterr().err
    assert "its data.pkl is 104.9 MB uncompressed" in err and "Traceback" not in err, err
    assert time.perf_counter() - t < 20
