"""Structure-aware fuzzing of real checkpoints (a yolov5 and an ultralytics one, built here from small models): their
pickles' opcodes dropped, repeated, swapped, their integers, strings and class names replaced, their archives'
bytes flipped. Every mutant loads or is refused with a UsageError (no other exception, no traceback), runs nothing
(no marker file) and ends within seconds."""
import pickletools
import random
import struct
import time
from pathlib import Path

import pytest
import yaml

from checkpoint_gadgets import data_pkl, with_data_pkl
from yolo_attn.checkpoints import load_checkpoint
from yolo_attn.errors import UsageError

REPO = Path(__file__).resolve().parents[2]
NAMES = ["builtins\nbytearray", "builtins\neval", "posix\nsystem", "os\nsystem", "yolov5.models.common\nAutoShape",
         "yolov5.models.common\nDetectMultiBackend", "yolov5.models.yolo\nConv", "torch.nn.modules.linear\nIdentity",
         "collections\nOrderedDict", "torch._utils\n_rebuild_tensor_v2", "torch._utils\n_rebuild_qtensor",
         "torch._tensor\n_rebuild_from_type_v2", "torch\nSize", "numpy.core.multiarray\n_reconstruct",
         "ultralytics.nn.tasks\nDetectionModel", "ultralytics.nn.autobackend\nAutoBackend", "pathlib\nPosixPath",
         "torch.nn.modules.container\nSequential", "ultralytics.nn.tasks\nWorldModel", "argparse\nNamespace"]
INTS = [-1, 0, 1, 3, 2 ** 31 - 1, -(2 ** 31), 255, 65535]
TEXTS = ["_modules", "_parameters", "_forward_hooks", "forward", "model", "ema", "storage", "../../../etc/passwd",
         "http://127.0.0.1:9/x", "", "0", "cpu", "cuda:7", "x" * 1000]


def unicode_op(text):
    raw = text.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def mutate(data, rng, texts=TEXTS):
    """``data`` (a protocol-2 pickle) with 1-3 opcode-level changes."""
    ops = [(op.name, arg, pos) for op, arg, pos in pickletools.genops(data)]
    segments = [data[pos:(ops[k + 1][2] if k + 1 < len(ops) else len(data))] for k, (_, _, pos) in enumerate(ops)]
    for _ in range(rng.randint(1, 3)):
        k = rng.randrange(1, len(segments) - 1)  # keep PROTO and STOP
        name = ops[k][0] if k < len(ops) else ""
        kind = rng.choice(["drop", "repeat", "swap", "value", "value", "global"])
        if kind == "drop":
            segments[k] = b""
        elif kind == "repeat":
            segments[k] = segments[k] * rng.randint(2, 4)
        elif kind == "swap":
            j = rng.randrange(1, len(segments) - 1)
            segments[k], segments[j] = segments[j], segments[k]
        elif kind == "global" or name == "GLOBAL":
            segments[k] = b"c" + rng.choice(NAMES).encode() + b"\n"
        elif name.startswith("BININT") or rng.random() < 0.5:
            segments[k] = b"J" + struct.pack("<i", rng.choice(INTS))
        else:
            segments[k] = unicode_op(rng.choice(texts))
    return b"".join(segments)


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    from yolo_attn.engines.ultralytics.model import build_model as ul_build, save_checkpoint as ul_save
    from yolo_attn.engines.yolov5.model import build_model, save_checkpoint

    folder = tmp_path_factory.mktemp("fuzz")
    cfg = yaml.safe_load((REPO / "model_yamls" / "yolov5s-cbam.yaml").read_text())
    cfg["depth_multiple"], cfg["width_multiple"] = 0.33, 0.125
    v5 = save_checkpoint(build_model(cfg, nc=2).eval(), folder / "v5.pt")
    ul_cfg = yaml.safe_load((REPO / "model_yamls" / "ultralytics" / "yolo11n-cbam.yaml").read_text())
    ul_cfg["scale"] = "n"
    ul = ul_save(ul_build(ul_cfg, nc=2), folder / "ul.pt", train_args={"imgsz": 64})
    return {"yolov5": v5, "ultralytics": ul}


def outcome(path, marker):
    t = time.perf_counter()
    try:
        load_checkpoint(path)
        result = "loaded"
    except UsageError as e:
        assert "Traceback" not in str(e) and str(e).strip()
        result = "refused"
    except Exception as e:  # noqa: BLE001
        pytest.fail(f"{path.name}: {type(e).__name__}: {e}")
    took = time.perf_counter() - t
    assert took < 5, f"{path.name} took {took:.1f} s"
    assert not marker.exists()
    return result


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["yolov5", "ultralytics"])
def test_mutated_pickles_load_or_are_refused(tmp_path, originals, engine):
    rng = random.Random(22)
    source, marker = originals[engine], tmp_path / "PWNED"
    assert outcome(source, marker) == "loaded"
    data = data_pkl(source)
    results = {"loaded": 0, "refused": 0}
    for i in range(150):
        mutant = mutate(data, rng, TEXTS + [f"touch {marker}"])
        path = with_data_pkl(source, tmp_path / f"m{i}.pt", lambda _: mutant)
        results[outcome(path, marker)] += 1
        path.unlink()
    assert results["refused"] > 100, results


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["yolov5", "ultralytics"])
def test_flipped_archive_bytes_load_or_are_refused(tmp_path, originals, engine):
    rng = random.Random(7)
    raw, marker = originals[engine].read_bytes(), tmp_path / "PWNED"
    for i in range(60):
        mutant = bytearray(raw)
        for _ in range(rng.randint(1, 8)):
            at = rng.choice([rng.randrange(len(raw)), rng.randrange(max(1, len(raw) - 2000), len(raw))])
            mutant[at] = rng.randrange(256)  # anywhere, and often in the central directory at the end
        if rng.random() < 0.2:
            mutant = mutant[:rng.randrange(len(mutant))]
        path = tmp_path / f"f{i}.pt"
        path.write_bytes(bytes(mutant))
        outcome(path, marker)
        path.unlink()
