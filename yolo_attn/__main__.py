"""``python -m yolo_attn COMMAND``: the same as ``yolo-attn COMMAND``."""
from yolo_attn.cli.main import cli

if __name__ == "__main__":
    cli()
