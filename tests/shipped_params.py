"""Parametrizations over every shipped model YAML: a representative few run in the quick subset
(``-m "not slow"``), the others are marked slow (CI runs them all)."""
import pytest

QUICK = frozenset({"yolov5s-cbam.yaml", "yolov5s-c3cbam.yaml"})


def each_shipped(names):
    return [n if n in QUICK else pytest.param(n, marks=pytest.mark.slow) for n in names]
