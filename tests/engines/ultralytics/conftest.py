"""Fixtures for the ultralytics engine tests: quiet model building, small models of the shipped YAMLs."""
import copy
import logging

import pytest

import yolo_attn  # noqa: F401  (installs the adapters before ultralytics is imported)
from ul_helpers import ULTRALYTICS_YAMLS


@pytest.fixture
def quiet_ultralytics():
    from ultralytics.utils import LOGGER

    level = LOGGER.level
    LOGGER.setLevel(logging.WARNING)
    yield LOGGER
    LOGGER.setLevel(level)


@pytest.fixture
def build(quiet_ultralytics):
    """A DetectionModel from a shipped YAML name, a path or a model dict (nc=4 unless given)."""
    from ultralytics.nn.tasks import DetectionModel

    def make(cfg, nc=4):
        if isinstance(cfg, str) and "/" not in cfg and (ULTRALYTICS_YAMLS / cfg).is_file():
            cfg = ULTRALYTICS_YAMLS / cfg
        return DetectionModel(copy.deepcopy(cfg) if isinstance(cfg, dict) else str(cfg), nc=nc, verbose=False)

    return make
