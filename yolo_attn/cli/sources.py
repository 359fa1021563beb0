"""Checking a detection source (image, folder, glob, video, stream) before an engine opens it."""
from pathlib import Path

from yolo_attn.errors import UsageError


def check_source(source):
    if source.isnumeric() or source.lower().startswith(("screen", "rtsp://", "rtmp://", "http://", "https://")):
        return source  # webcam, screen, stream or URL: the engine opens it
    path = Path(source).expanduser()
    if path.exists() or any(c in source for c in "*?["):  # a glob: the engine expands it (and says if nothing matches)
        return str(path.resolve()) if path.exists() else source
    raise UsageError(f"--source {source}: not found (looked at {path.resolve()}). Give an image, a video, a "
                     f"folder, a quoted glob such as 'images/*.jpg', or a webcam index.")
