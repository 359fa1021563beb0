"""The shape of a model YAML and of its rows: ``[from, number, module, args]`` with ``from`` naming earlier rows,
the unknown-layer error, yolo-attn's ``identity_start:`` key, and the bounds no real YOLO model comes near (a model
YAML is data: an alias bomb, a billion-parameter row or a million repeats is refused before anything is built)."""
import math

from yolo_attn.errors import ModelConfigError
from yolo_attn.registry.layers import layer_names, suggest
from yolo_attn.yaml_rows.bounds import (MAX_CHANNELS, MAX_MULTIPLE, MAX_NC, MAX_REPEATS, MAX_VALUES,  # noqa: F401
                                        check_channels, check_repeats, check_size, row_label)


def check_from(f, i, where):
    """``from`` must name the image (row 0) or earlier rows."""
    sources = f if isinstance(f, list) else [f]
    if not sources or not all(isinstance(j, int) and not isinstance(j, bool) for j in sources):
        raise ModelConfigError(f"{where}: 'from' must be an integer or a list of integers, got {f!r}")
    for j in sources:
        if j == -1 and i == 0:
            continue  # the image
        if not (-i <= j < i):
            if i == 0:
                raise ModelConfigError(f"{where}: 'from' index {j} does not name an earlier layer; the first layer "
                                       f"reads the input image: write -1.")
            raise ModelConfigError(
                f"{where}: 'from' index {j} does not name an earlier layer; layer {i} can take "
                f"-1..-{i} (relative) or 0..{i - 1} (absolute).")

def check_row(row, i, where):
    """Shape of row ``i``: [from, number, module, args] with valid ``from`` and ``number`` and a named module."""
    if not (isinstance(row, (list, tuple)) and len(row) == 4 and isinstance(row[3], list)):
        raise ModelConfigError(f"{where}: expected [from, number, module, args], got {row!r}")
    f, n, name, _ = row
    check_from(f, i, where)
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ModelConfigError(f"{where}: 'number' must be a positive integer, got {n!r}")
    if not isinstance(name, str):
        raise ModelConfigError(f"{where}: the layer type must be a name, got {name!r}")

def unknown_layer(name, where, engine_layers, engine):
    """The error for a layer name that is neither registered nor the engine's own."""
    known = layer_names()
    return ModelConfigError(
        f"{where}: unknown layer type {name!r}.{suggest(name, known + sorted(engine_layers))}\n"
        f"  attention layers (yolo-attn): {', '.join(known)}\n"
        f"  {engine} layers: {', '.join(sorted(engine_layers))}\n"
        f"  torch layers: nn.<Name>, e.g. nn.Upsample\n"
        f"  Fix the name in the YAML (attention names are case-insensitive), or register your own layer with "
        f"yolo_attn.register().")

def identity_rows_of(d, n_rows):
    """The yolo-attn YAML key ``identity_start: [rows]``: attention rows that start as the identity."""
    rows = d.get("identity_start") or []
    if not (isinstance(rows, list) and all(isinstance(r, int) and 0 <= r < n_rows for r in rows)):
        raise ModelConfigError(f"model YAML 'identity_start:' must be a list of row indices 0..{n_rows - 1}, "
                               f"got {rows!r}")
    return set(rows)


# --- bounds: in bounds.py (one set for every engine) -------------------------------------------------------------


def _positive_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0


def check_model_fields(d):
    """``nc``, ``depth_multiple``, ``width_multiple`` and ``anchors`` must be what every YOLO model YAML gives."""
    for key in ("depth_multiple", "width_multiple"):
        v = d[key]
        if not _positive_number(v) or v > MAX_MULTIPLE:
            raise ModelConfigError(f"model YAML '{key}: {v!r}': must be a number above 0 and at most {MAX_MULTIPLE:g} "
                                   f"(yolov5n/s/m/l/x use 0.33/0.33/0.67/1.0/1.33 for depth and "
                                   f"0.25/0.5/0.75/1.0/1.25 for width)")
    nc = d["nc"]
    if not (isinstance(nc, int) and not isinstance(nc, bool) and 1 <= nc <= MAX_NC):
        raise ModelConfigError(f"model YAML 'nc: {nc!r}': must be the number of classes, an integer from 1 to {MAX_NC}")
    anchors = d["anchors"]
    if isinstance(anchors, int) and not isinstance(anchors, bool):
        ok = 1 <= anchors <= 16
    else:
        ok = isinstance(anchors, list) and 1 <= len(anchors) <= 16 and all(
            isinstance(a, list) and a and len(a) % 2 == 0 and len(a) == len(anchors[0]) and len(a) <= 32
            and all(_positive_number(v) for v in a) for a in anchors)
    if not ok:
        raise ModelConfigError(f"model YAML 'anchors: {anchors!r}': expected one list of w, h pairs (positive "
                               f"numbers) per detection level, e.g. [10, 13, 16, 30, 33, 23], or a number of "
                               f"anchors per level from 1 to 16")
