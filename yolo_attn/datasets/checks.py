"""Check a dataset before yolov5 touches it, and keep yolov5 from rewriting or silently skipping user files.

``prepare`` checks a data YAML (its fields, that every split has images and labels, no symbolic-link loop) and, for
a run, writes the resolved YAML (``path:`` made absolute) into the run folder, so that the run never depends on a
file outside it.
"""
import functools
import reprlib
import tempfile
from pathlib import Path

import yaml

from yolo_attn import paths
from yolo_attn.errors import DatasetError
from yolo_attn.paths import online, walk_files, yolov5_root

IMAGE_SUFFIXES = {".bmp", ".dng", ".jpeg", ".jpg", ".mpo", ".png", ".tif", ".tiff", ".webp", ".pfm"}


def _exists(path):
    try:
        return Path(path).exists()
    except (OSError, ValueError):  # a name too long, a NUL byte
        return False


def _images_of(entry):
    """Image files named by a split entry: a folder (recursive, as yolov5 walks it), a .txt list, or a single image."""
    entry = Path(entry)
    if entry.is_dir():
        return [p for p in walk_files(entry) if p.suffix.lower() in IMAGE_SUFFIXES]
    if entry.suffix == ".txt":
        parent = entry.parent
        try:
            lines = [x.strip() for x in entry.read_text(encoding="utf-8").splitlines() if x.strip()]
        except (OSError, UnicodeDecodeError) as e:
            raise DatasetError(f"{entry}: cannot read this image list ({e})") from None
        return [Path(x) if Path(x).is_absolute() else (parent / x) for x in lines]
    return [entry] if entry.is_file() else []


def label_path(image):
    """yolov5's rule: the last /images/ in the path becomes /labels/, the suffix .txt."""
    s = str(image)
    sa, sb = f"/images/", f"/labels/"
    return Path(sb.join(s.rsplit(sa, 1)) if sa in s else s).with_suffix(".txt")


def load_data_yaml(path):
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise DatasetError(f"{path}: cannot read the data YAML: {e}") from None
    except RecursionError:
        raise DatasetError(f"{path}: cannot read the data YAML: it is nested too deeply") from None
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: a data YAML is a mapping with train:, val: and names:")
    missing = [k for k in ("train", "val", "names") if k not in data]
    if missing:
        raise DatasetError(f"{path}: missing field(s) {', '.join(missing)}. A data YAML needs path:, train:, val: "
                           f"and names: (see data/shapes/shapes.yaml after a first run).")
    _check_fields(path, data)
    return data


def _shown(value):
    return reprlib.repr(value)  # bounded, whatever the YAML holds (even a list that contains itself)


def _check_fields(path, data):
    """The field types yolov5 assumes without checking (it would crash, or silently train another class count)."""
    root = data.get("path")
    if root is not None and not (isinstance(root, str) and "\0" not in root):
        raise DatasetError(f"{path}: path: must be the dataset's root folder, given as text (one folder); got "
                           f"{_shown(root)}")
    for key in ("train", "val", "test"):
        value = data.get(key)
        items = value if isinstance(value, list) else [value]
        if value is not None and not all(isinstance(v, str) and v and "\0" not in v for v in items):
            raise DatasetError(f"{path}: {key}: must be a folder, an image list (.txt) or a list of them, given as "
                               f"text; got {_shown(value)}")
    names = data["names"]
    if isinstance(names, dict):
        keys = sorted(names, key=str)
        if not all(isinstance(k, int) and not isinstance(k, bool) for k in keys) or sorted(keys) != \
                list(range(len(keys))):
            raise DatasetError(f"{path}: names: as a mapping, its keys must be the class ids 0, 1, 2, ... in full; got "
                               f"{_shown(keys)}. Or give a list: names: [cat, dog].")
        names = [names[k] for k in sorted(keys)]
    elif not isinstance(names, list):
        raise DatasetError(f"{path}: names: must be the list of class names, e.g. names: [{_shown(names)}] "
                           f"(or a mapping 0: {_shown(names)}); got the {type(names).__name__} {_shown(names)}.")
    if not names or not all(isinstance(n, (str, int, float)) and not isinstance(n, bool) for n in names):
        raise DatasetError(f"{path}: names: needs one name (text) per class; got {_shown(data['names'])}.")
    nc = data.get("nc")
    if nc is not None and (not isinstance(nc, int) or isinstance(nc, bool) or nc != len(names)):
        raise DatasetError(f"{path}: nc: {_shown(nc)} but names: lists {len(names)} class(es). yolov5 would silently "
                           f"train {len(names)} classes: give one name per class, or drop nc: (it is counted from "
                           f"names:).")


def _split_paths(data, root, key):
    value = data.get(key)
    if not value:
        return []
    return [Path(v) if Path(v).is_absolute() else root / v for v in (value if isinstance(value, list) else [value])]


def resolve(data, save_dir):
    """The data YAML of a run, checked and written into its run folder ``save_dir`` (see ``prepare``): ``data`` is a
    path, a name in data/ (then yolov5's data/), ``coco``/``voc``, or None for the embedded shapes dataset."""
    from yolo_attn.datasets import shapes

    path = shapes.ensure(paths.EMBEDDED_DATASET) if data is None else paths.resolve_data(data)
    return prepare(path, is_yolov5_builtin=paths.is_yolov5_data(path), save_dir=save_dir)


def prepare(data_yaml, is_yolov5_builtin=False, save_dir=None):
    """Check a data YAML; return the YAML path yolov5 should use.

    A relative ``path:`` is resolved against the YAML's own folder (yolov5 alone would resolve it against its install
    folder); the user's YAML is never rewritten. With ``save_dir`` (a run folder, created if needed) the resolved YAML
    is written there as ``data.yaml`` and returned, so that the run does not depend on any other file; without it,
    the user's YAML is returned when its ``path:`` is absolute, else a resolved copy in a temporary file (library use).
    yolov5's own YAMLs (coco.yaml, VOC.yaml: paths relative to its folder, download scripts) are returned as they are.
    """
    data_yaml = Path(data_yaml)
    data = load_data_yaml(data_yaml)
    if is_yolov5_builtin:
        root = Path(data.get("path") or "")
        if not root.is_absolute():
            _offline_download_check(data_yaml, data, (yolov5_root() / root).resolve())
            return data_yaml  # yolov5's own definitions (coco.yaml, VOC.yaml) keep yolov5's own resolution
    else:
        root = Path(data.get("path") or ".")
        root = root if root.is_absolute() else (data_yaml.parent / root).resolve()
    for key in ("train", "val"):
        entries = _split_paths(data, root, key)
        missing = [p for p in entries if not _exists(p)]
        if missing:
            how = ""
            if data.get("download"):
                if online():
                    return data_yaml  # yolov5 downloads it
                how = _offline_hint(data_yaml)
            raise DatasetError(f"{data_yaml}: the {key} split is not on disk. Looked for:\n"
                               + "\n".join(f"  {p}" for p in missing) + how)
        _check_split(data_yaml, key, entries)
    resolved = dict(data, path=str(root))
    if save_dir is not None:
        Path(save_dir).mkdir(parents=True, exist_ok=True)
        out = Path(save_dir) / "data.yaml"
        header = f"# {data_yaml} with path: resolved (written by yolo-attn for this run)\n"
        paths.write_atomically(out, header + yaml.safe_dump(resolved, sort_keys=False))
        return out
    if Path(data.get("path") or ".").is_absolute() or data.get("path") == str(root):
        return data_yaml
    tmp = tempfile.NamedTemporaryFile("w", suffix=f"-{data_yaml.name}", prefix="yolo-attn-", delete=False)
    with tmp:
        yaml.safe_dump(resolved, tmp, sort_keys=False)
    return Path(tmp.name)


def _check_split(data_yaml, key, entries):
    images = [im for p in entries for im in _images_of(p)]
    if not images:
        raise DatasetError(f"{data_yaml}: the {key} split has no images in " + ", ".join(map(str, entries))
                           + f" (image types: {', '.join(sorted(IMAGE_SUFFIXES))}).")
    labelled = sum(label_path(im).is_file() for im in images)
    if not labelled:
        where = sorted({str(label_path(im).parent) for im in images[:1000]})[:3]
        raise DatasetError(
            f"{data_yaml}: the {key} split has {len(images)} images but no label files. yolov5 looks for one "
            f".txt per image in the matching labels folder, e.g.\n  {label_path(images[0])}\nlooked in: "
            + ", ".join(where) + "\nEach line is 'class x_center y_center width height', normalised to 0-1. "
            "Put the labels there (images/ -> labels/), or convert your annotations first.")


_CONVERT_HINTS = {
    "coco": "yolo-attn convert coco annotations/instances_train2017.json train2017 "
            "annotations/instances_val2017.json val2017 data/coco",
    "voc": "yolo-attn convert voc path/to/VOCdevkit data/voc",
}


def _offline_hint(data_yaml):
    how = ("\nThe YAML has a download: section, but this machine is offline, so yolov5 cannot fetch it. "
           "Copy the dataset there, or point path: at a local copy (see docs/datasets.md, 'COCO and VOC').")
    kind = next((k for k in _CONVERT_HINTS if Path(data_yaml).stem.lower() == k), None)
    if kind:
        how += (f"\nIf you have {kind.upper()} on disk in its original format, convert it once, offline:\n"
                f"  {_CONVERT_HINTS[kind]}\nthen pass --data {kind} (data/{kind}/data.yaml is used when present) "
                f"or --data path/to/OUT/data.yaml.")
    return how


def _offline_download_check(data_yaml, data, root):
    """yolov5's own YAMLs (coco.yaml, VOC.yaml) download what is missing: on an offline machine say so up front,
    with the way to use a copy already on disk, instead of letting yolov5's download fail."""
    if not data.get("download"):
        return
    missing = [p for key in ("train", "val") for p in _split_paths(data, root, key) if not _exists(p)]
    if missing and not online():
        raise DatasetError(f"{data_yaml}: the dataset is not on disk. Looked for:\n"
                           + "\n".join(f"  {p}" for p in missing) + _offline_hint(data_yaml))


# ------------------------------------------------------------------------------------------- the download guard
# Both engines' dataset checks run a data YAML's ``download:`` when its val split is missing: a URL is fetched, a
# ``bash ...`` line is run in a shell, anything else is exec'd as Python. Each engine's check is wrapped (its
# patches.py, ``guarded_check``) so that it may download only a plain URL, and only on a networked machine; code
# from a data YAML never runs, whichever route reached the check (flags, settings, resume, the sweep, the API).
URL_SUFFIXES = (".zip", ".tar", ".gz", ".tgz", ".xz", ".bz2", ".txz", ".tbz2")


def plain_url(download):
    """Whether ``download`` is one http(s) URL of an archive (what the engines fetch rather than run)."""
    return (isinstance(download, str) and download.lower().startswith(("http://", "https://"))
            and not any(c.isspace() for c in download.strip()) and "\n" not in download
            and download.strip().split("?", 1)[0].lower().endswith(URL_SUFFIXES))


def download_allowed(download, trusted=False):
    """Whether an engine may act on this ``download:`` value when the data is missing: a plain URL on a networked
    machine, or anything from a YAML the engine itself ships (``trusted``: its own coco.yaml is its code)."""
    if not download:
        return False
    return (trusted or plain_url(download)) and online()


def download_refusal(source, download, missing=None, trusted=False):
    """The DatasetError for a data YAML whose data is missing and whose ``download:`` is not run (see above)."""
    where = f"{source}: the dataset is not on disk" + (f" ({missing})" if missing else "") + "."
    if not download:
        how = " The YAML has no download: section: copy the dataset there, or point path: at a local copy."
    elif trusted or plain_url(download):
        how = (f" Its download: ({_shown(download)}) would be fetched on a networked machine, but this machine is "
               f"offline: copy the dataset there, or point path: at a local copy (see docs/datasets.md, 'COCO and "
               f"VOC').")
    else:
        how = (" Its download: section is code (Python or a shell command), and yolo-attn never runs code from a "
               "data YAML. Read it, fetch the dataset yourself with what you trust, then point path: at it (or "
               "give download: a plain https://...zip URL on a networked machine).")
    return DatasetError(where + how)


def yaml_download(source):
    """The ``download:`` of a data YAML (a path or an already-read mapping); None when it cannot be read (the caller
    then treats the download as refused)."""
    if isinstance(source, dict):
        return source.get("download")
    try:
        data = yaml.safe_load(Path(source).read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError, yaml.YAMLError, RecursionError, TypeError):
        return None
    return data.get("download") if isinstance(data, dict) else None


def inside(path, folder):
    """Whether ``path`` (resolved) is ``folder`` or inside it."""
    try:
        Path(path).resolve().relative_to(Path(folder).resolve())
        return True
    except (ValueError, OSError, RuntimeError):
        return False


def guarded_check(check, find_yaml, not_found, trusted_roots=()):
    """``check`` (an engine's dataset check, ``check(data, autodownload=True, ...)``) that never runs download code.

    find_yaml(data): the data YAML's path (or its mapping), None if unknown. not_found(exception): whether the
    exception is the engine's 'val split missing': the missing path ('' if unknown; then the DatasetError of
    ``download_refusal`` is raised), else None.
    trusted_roots: folders whose YAMLs belong to the engine (its shipped coco.yaml may download on a networked
    machine, as it always has). Wrapping a wrapped check returns it unchanged.
    """
    if getattr(check, "__yolo_attn_guarded__", False):
        return check

    @functools.wraps(check)
    def guarded(data, autodownload=True, *args, **kwargs):
        source = find_yaml(data)
        download = yaml_download(source) if source is not None else None
        trusted = not isinstance(source, dict) and source is not None and any(
            inside(source, root) for root in trusted_roots)
        try:
            return check(data, False, *args, **kwargs)  # the data on disk: the download is never looked at
        except Exception as e:
            missing = not_found(e)
            if missing is None:
                raise
        if autodownload and download_allowed(download, trusted):  # asks the network only now
            return check(data, True, *args, **kwargs)
        name = source if source is not None and not isinstance(source, dict) else data
        name = name if not isinstance(name, dict) else "the data YAML"
        raise download_refusal(name, download, missing or None, trusted)

    guarded.__yolo_attn_guarded__ = True
    return guarded
