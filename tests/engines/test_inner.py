"""engines/inner.py: other projects' spelling of a block with attention inside, and the ``{attn: ...}`` factory
(the models each engine builds from them: tests/engines/ultralytics/test_inblock.py, yolov5/test_parser_c3attn.py)."""
import pytest

import yolo_attn  # noqa: F401
from yolo_attn.engines import inner
from yolo_attn.errors import ModelConfigError
from yolo_attn.modules import CBAM, IdentityStart

BLOCKS = ("C3k2", "C2f", "C3", "C3k", "C2PSA", "A2C2f")


@pytest.mark.parametrize("name, read", [
    ("C3k2_EMA", ("C3k2", "EMA")), ("C3k_EMA", ("C3k", "EMA")), ("C3_EMA", ("C3", "EMA")),
    ("C3k2-cbam", ("C3k2", "cbam")), ("C2f_SE_Block", ("C2f", "SE_Block")), ("A2C2f_ema", ("A2C2f", "ema")),
    ("C3k2", None), ("CBAM", None), ("c3k2_EMA", None), ("Conv_SE", None), (5, None),
])
def test_spelled_block_reads_the_longest_block_name_first(name, read):
    assert inner.spelled_block(name, BLOCKS, "row") == read


def test_factory_builds_one_layer_per_width_and_wraps_for_identity_start():
    attn = inner.factory({"attn": ["cbam", {"rd_ratio": 0.25}]}, "row", identity=False, engine="x")
    assert type(attn(32)) is CBAM and attn(32).fc1.out_channels == 8 and attn.label == ["cbam", {"rd_ratio": 0.25}]
    wrapped = inner.factory({"attn": "cbam"}, "row", identity=True, engine="x")(32)
    assert type(wrapped) is IdentityStart and type(wrapped.attn) is CBAM


@pytest.mark.parametrize("mapping, match", [({"attn": "cbam", "at": 1}, "takes only attn:"),
                                            ({"attn": "aff"}, "AFF cannot sit inside a bottleneck"),
                                            ({"attn": "doubleattn"}, "changes the channel count")])
def test_factory_refuses_what_cannot_sit_in_a_block(mapping, match):
    with pytest.raises(ModelConfigError, match="row: .*" + match):
        inner.factory(mapping, "row", identity=False, engine="x")
