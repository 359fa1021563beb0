"""yolov5's per-image dataset check, made strict: it would re-save a truncated JPEG over the user's file, and skip
an unreadable image or label with a warning; both become a DatasetError naming the file."""
import functools

from yolo_attn.errors import DatasetError


def is_truncated_jpeg(path):
    try:
        with open(path, "rb") as f:
            if f.read(2) != b"\xff\xd8":
                return False
            f.seek(-2, 2)
            return f.read() != b"\xff\xd9"
    except OSError:
        return False


def strict_verify(verify_image_label):
    """``verify_image_label(args)`` (run by yolov5 for every image) that raises instead of rewriting or skipping."""

    @functools.wraps(verify_image_label)
    def verify(args):
        im_file = args[0]
        if is_truncated_jpeg(im_file):
            raise DatasetError(f"{im_file}: truncated JPEG (it does not end with the end-of-image marker; it is cut off "
                               f"or has extra bytes after it). yolov5 would overwrite it with a re-encoded copy; "
                               f"yolo-attn never changes your files. Re-save or remove it, then run again.")
        result = verify_image_label(args)
        if result[0] is None:
            reason = result[-1].split(f"{im_file}: ", 1)[-1].split("ignoring corrupt image/label: ", 1)[-1]
            raise DatasetError(f"{im_file}: unusable image or label ({reason}). "
                               f"Fix or remove the image and its label file, then run again.")
        return result

    return verify
