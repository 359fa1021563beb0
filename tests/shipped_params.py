"""Parametrizations over every shipped model YAML: a representative few run in the quick subset
(``-m "not slow"``), the others are marked slow (CI runs them all)."""
import pytest

QUICK = frozenset({"yolov5s-cbam.yaml", "yolov5s-c3cbam.yaml"})
# Stand-alone variants of YOLO26/YOLO12 whose layers other shipped files already export (yolo11n-se, -coordatt,
# yolov5s-ema, -simam): in the slow tests that export every file, their family's -cbam file stands for them.
# In-block variants: one file per way of putting X inside a block exports (yolo26n-c3k2cbam: X in C3k2's
# bottlenecks, yolo26n-c2psa-shsa: X in place of PSA's attention, yolo12n-a2c2f-cga: X in place of area attention);
# yolo26n-c3k2ema, yolo11n-c3k2cbam and yolo26n-c2psa-cga are the same placements with layers exported elsewhere.
REPRESENTED = frozenset({"yolo26n-se.yaml", "yolo26n-coordatt.yaml", "yolo26n-ema.yaml", "yolo26n-simam.yaml",
                         "yolo12n-se.yaml", "yolo26n-c3k2ema.yaml", "yolo11n-c3k2cbam.yaml",
                         "yolo26n-c2psa-cga.yaml"})


def each_shipped(names):
    return [n if n in QUICK else pytest.param(n, marks=pytest.mark.slow) for n in names]
