"""The shipped ``model_yamls/``: generated from yolov5's own yolov5s.yaml, so they cannot drift from it."""
import copy
from pathlib import Path

import yaml

from yolo_attn.model_yaml.edit import dump_model_yaml, insert_after, load_model_yaml, replace_concat

ENGINE = "yolov5"  # these variants are generated from this engine's own yolov5s.yaml, for it
BACKBONE_STAGE_OUTPUTS = (4, 6, 8)  # yolov5s rows: the C3 outputs at P3/8, P4/16, P5/32 that feed the neck
BACKBONE_C3S = (2, 4, 6, 8)  # yolov5s rows: the backbone's C3 blocks
SPPF_ROW = 9  # yolov5s: the end of the backbone, P5/32 (20×20 at 640 px), the lowest resolution
STAGE_DOWNSAMPLES = (3, 5, 7)  # yolov5s rows: the stride-2 3x3 Convs that open the P3, P4, P5 stages
# yolov5s head: the top-down Concats joining an upsampled coarse map with a backbone skip:
# (Concat row, skip row, gating row = the 1x1 Conv whose output was upsampled into the Concat)
TOP_DOWN_SKIPS = ((12, 6, 10), (16, 4, 14))


def replace_convs(d, rows, layer):
    """A copy of ``d`` where each 3x3 stride-s ``Conv`` row becomes ``[-1, 1, layer, [c2, {stride: s}]]``.

    For channel-changing layers that stand in for a 3x3 convolution (their papers replace the 3x3 conv of a
    bottleneck); c2 is the Conv's own (unscaled) output channel count, so width_multiple scales it alike."""
    out = copy.deepcopy(d)
    n_backbone = len(out["backbone"])
    for r in rows:
        section, k = ("backbone", r) if r < n_backbone else ("head", r - n_backbone)
        f, n, m, args = out[section][k]
        if m != "Conv" or len(args) < 3 or args[1] != 3:
            raise ValueError(f"row {r} is not a 3x3 Conv: {out[section][k]}")
        out[section][k] = [f, n, layer, [args[0], {"stride": args[2]}]]
    return out


def gate_skips(d, skips, layer):
    """A copy of ``d`` where the skip input of each Concat is first gated: ``[[skip, gate], 1, layer, []]``.

    ``skips``: (Concat row, skip row, gating row) triples. The gate row is inserted right before its Concat,
    and only that Concat's skip input is re-routed to it (other readers of the skip row, e.g. the next backbone
    row, keep reading it). Every ``from`` is re-numbered, relative ones staying relative."""
    n_backbone = len(d["backbone"])
    rows = list(d["backbone"]) + list(d["head"])
    gated = {c: (skip, gate) for c, skip, gate in skips}
    new_index, shift = {}, 0
    for i in range(len(rows)):
        shift += i in gated
        new_index[i] = i + shift
    out = {k: copy.deepcopy(v) for k, v in d.items() if k not in ("backbone", "head")}
    out["backbone"], out["head"] = [], []
    for i, (f, n, m, args) in enumerate(rows):
        section, p = ("backbone" if i < n_backbone else "head"), new_index[i]
        sources = f if isinstance(f, list) else [f]
        if i in gated:
            skip, gate = gated[i]
            if m != "Concat" or skip not in [j if j >= 0 else i + j for j in sources]:
                raise ValueError(f"row {i} is not a Concat reading row {skip}: {rows[i]}")
            out[section].append([[new_index[skip], new_index[gate]], 1, layer, []])
        if i == 0 and f == -1:
            out[section].append([f, n, m, copy.deepcopy(args)])
            continue
        mapped = []
        for j in sources:
            a = j if j >= 0 else i + j
            t = p - 1 if i in gated and a == gated[i][0] else new_index[a]
            mapped.append(t - p if j < 0 else t)
        out[section].append([mapped if isinstance(f, list) else mapped[0], n, m, copy.deepcopy(args)])
    return out


def attend_c3s(d, rows, layer, args=()):
    """A copy of ``d`` where each C3 row in ``rows`` carries ``layer`` inside its bottlenecks: ``[c2, {attn: layer}]``
    (``{attn: [layer, *args]}`` with args); nothing else changes, no row is added."""
    out = copy.deepcopy(d)
    n_backbone = len(out["backbone"])
    for r in rows:
        section, k = ("backbone", r) if r < n_backbone else ("head", r - n_backbone)
        f, n, m, c3_args = out[section][k]
        if m != "C3" or (c3_args and isinstance(c3_args[-1], dict)):
            raise ValueError(f"row {r} is not a stock C3: {out[section][k]}")
        out[section][k] = [f, n, m, [*c3_args, {"attn": [layer, *args] if args else layer}]]
    return out


_STAGES = """
Placement: one {name} after the C3 that ends each backbone stage feeding the neck (yolov5s rows 4, 6, 8:
P3/8, P4/16, P5/32), so every scale the neck and Detect read is re-weighted once. This mirrors the
papers, which put the module at the end of every stage/block of the backbone, and keeps the cost low
(three layers; none in the high-resolution stem). Consumers of those rows, Detect included, were
re-numbered by `yolo_attn.model_yaml.edit.insert_after`."""

_CONVS = """
Placement: replaces the stride-2 3x3 Conv that opens each backbone stage feeding the neck (yolov5s rows
3, 5, 7: into P3/8, P4/16, P5/32), as the paper replaces the 3x3 conv of its blocks. The arg is the Conv's
output channel count (scaled by width_multiple) and the stride is kept; no rows are added. {name} uses
its own BN and ReLU (the paper's), where the Conv had BN and SiLU."""

_C3S = """
Placement: inside every bottleneck of the backbone's four C3 blocks (yolov5s rows 2, 4, 6, 8), on the
residual branch before the addition, where the SE paper puts SE in a ResNet block: each row reads
[c2, {{attn: {row}}}]. No row is added, every stock C3 weight keeps its name (the attention's are
m.<k>.attn.*), so a stock yolov5s checkpoint transfers in full (`yolo_attn/engines/yolov5/c3attn.py`)."""

BASELINE = "yolov5s.yaml"
_BASELINE_HEADER = ("YOLOv5s baseline: yolov5 7.0.14's models/yolov5s.yaml, unchanged in structure\n"
                    "(7,235,389 params at nc=80).")

# How each place of ``yolo_attn.modules.PLACES`` is made from yolov5s, and the text explaining it (if shared).
_EDITS = {
    "stage_outputs": (lambda d, layer, args: insert_after(d, BACKBONE_STAGE_OUTPUTS, layer, args), _STAGES),
    "end_of_backbone": (lambda d, layer, args: insert_after(d, [SPPF_ROW], layer, args), ""),
    "neck_fusions": (lambda d, layer, args: replace_concat(d, layer, args), ""),
    "stage_downsamples": (lambda d, layer, args: replace_convs(d, STAGE_DOWNSAMPLES, layer), _CONVS),
    "top_down_skips": (lambda d, layer, args: gate_skips(d, TOP_DOWN_SKIPS, layer), ""),
    "c3_bottlenecks": (lambda d, layer, args: attend_c3s(d, BACKBONE_C3S, layer, args), _C3S),
}


def _flow(x):
    return yaml.safe_dump(x, default_flow_style=True, width=10_000).strip()


def _variant_name(spec, placement):
    return f"yolov5s-{placement.file_tag or spec.name.lower()}.yaml"


def variants():
    """{file name: (build(model dict) -> model dict, header)} for the baseline and every declared placement."""
    from yolo_attn.registry import registered_layers

    out = {BASELINE: (lambda d: d, _BASELINE_HEADER)}
    for spec in registered_layers():
        for placement in spec.placements:
            edit, text = _EDITS[placement.where]
            build = (lambda d, e=edit, n=spec.name, a=list(placement.args): e(d, n, a))
            row = _flow([spec.name, *placement.args]) if placement.args else spec.name
            out[_variant_name(spec, placement)] = (build, placement.header + text.format(name=spec.name, row=row))
    return out


def variant_names(spec):
    """The shipped files that place layer ``spec``, in declaration order."""
    return [_variant_name(spec, p) for p in spec.placements]


def variant_dict(name):
    """The model dict of shipped variant ``name``."""
    return variants()[name][0](load_model_yaml(base_yaml_path()))


def base_yaml_path():
    from yolo_attn import engines

    return engines.get(ENGINE).stock_yaml("yolov5s.yaml")


def render(name):
    """The text of shipped variant ``name``."""
    build, header = variants()[name]
    generated = "Generated by `yolo-attn generate-yamls` from yolov5's models/yolov5s.yaml; edit variants.py, not this file."
    return dump_model_yaml(build(load_model_yaml(base_yaml_path())), f"{header}\n\n{generated}")


def write_all(out_dir):
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = sorted(variants())
    for name in names:
        (out_dir / name).write_text(render(name), encoding="utf-8")
    return names
