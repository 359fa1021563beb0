"""The version of yolo-attn (pyproject.toml reads it: [tool.setuptools.dynamic])."""
__version__ = "0.1.0"
