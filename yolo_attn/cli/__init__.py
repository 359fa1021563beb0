"""Command-line tools: ``yolo-attn COMMAND`` (main.py) and the scripts/*.sh entry points, one module per command,
all built on ``pipeline.py`` (typed options, shared steps, one error format).

An application: it may import everything below it (engines, core, registry, modules) and the other applications.
"""
