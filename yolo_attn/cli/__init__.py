"""Command-line entry points: ``yolo-attn train|val|layers|generate-yamls`` (also used by scripts/*.sh)."""
