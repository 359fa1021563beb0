"""Reading and comparing yolov5 label files in the converter tests."""
from pathlib import Path

import numpy as np


def read_labels(file):
    rows = [line.split() for line in Path(file).read_text().splitlines() if line.strip()]
    return [(int(r[0]), *map(float, r[1:])) for r in rows]


def assert_rows_close(got, expected, tol=1e-6):
    assert len(got) == len(expected), (got, expected)
    for g, e in zip(got, expected):
        assert g[0] == e[0], (got, expected)
        assert np.allclose(g[1:], e[1:], atol=tol), (got, expected)
