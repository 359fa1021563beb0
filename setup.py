"""Packaging beyond pyproject.toml: the repository's top-level model_yamls/ and data/hyps/ (their one copy) are
mapped onto packages inside yolo_attn, so the wheel and the sdist ship them (see yolo_attn/_data/__init__.py and
docs/install.md). pyproject.toml's [tool.setuptools] cannot list found packages and mapped ones together."""
from setuptools import find_packages, setup

DATA_PACKAGES = {
    "yolo_attn._data.model_yamls": "model_yamls",
    "yolo_attn._data.model_yamls.ultralytics": "model_yamls/ultralytics",
    "yolo_attn._data.hyps": "data/hyps",
}

setup(
    packages=find_packages(include=["yolo_attn", "yolo_attn.*"]) + list(DATA_PACKAGES),
    package_dir=DATA_PACKAGES,
    package_data={name: ["*.yaml"] for name in DATA_PACKAGES},
    include_package_data=False,
)
