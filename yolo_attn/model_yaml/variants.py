"""The shipped ``model_yamls/``: generated from yolov5's own yolov5s.yaml, so they cannot drift from it."""
from pathlib import Path

import copy

from yolo_attn.model_yaml.edit import dump_model_yaml, insert_after, load_model_yaml, replace_concat

BACKBONE_STAGE_OUTPUTS = (4, 6, 8)  # yolov5s rows: the C3 outputs at P3/8, P4/16, P5/32 that feed the neck
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


_STAGES = """\
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

VARIANTS = {
    "yolov5s.yaml": (lambda d: d, "YOLOv5s baseline: yolov5 7.0.14's models/yolov5s.yaml, unchanged in structure\n"
                                  "(7,235,389 params at nc=80)."),
    "yolov5s-se.yaml": (lambda d: insert_after(d, BACKBONE_STAGE_OUTPUTS, "SE"),
                        "YOLOv5s + SE (Hu et al., CVPR 2018), r=16.\n" + _STAGES.format(name="SE")),
    "yolov5s-eca.yaml": (lambda d: insert_after(d, BACKBONE_STAGE_OUTPUTS, "ECA"),
                         "YOLOv5s + ECA (Wang et al., CVPR 2020), adaptive kernel size.\n" + _STAGES.format(name="ECA")),
    "yolov5s-cbam.yaml": (lambda d: insert_after(d, BACKBONE_STAGE_OUTPUTS, "CBAM"),
                          "YOLOv5s + CBAM (Woo et al., ECCV 2018), r=16, 7x7 spatial kernel.\n"
                          + _STAGES.format(name="CBAM")),
    "yolov5s-coordatt.yaml": (lambda d: insert_after(d, BACKBONE_STAGE_OUTPUTS, "CoordAtt"),
                              "YOLOv5s + Coordinate Attention (Hou et al., CVPR 2021), reduction 32.\n"
                              + _STAGES.format(name="CoordAtt")),
    "yolov5s-aff.yaml": (lambda d: replace_concat(d, "AFF"),
                         "YOLOv5s + AFF (Dai et al., WACV 2021), r=4: the neck's four Concat fusions\n"
                         "([-1,6], [-1,4], [-1,14], [-1,10]) become attentional feature fusion of the two\n"
                         "equal-channel maps, so each following C3 reads C channels instead of 2C."),
    "yolov5s-mscam.yaml": (lambda d: insert_after(d, BACKBONE_STAGE_OUTPUTS, "MSCAM"),
                           "YOLOv5s + MS-CAM (Dai et al., WACV 2021), r=4, as a one-input attention.\n"
                           + _STAGES.format(name="MSCAM")),
    "yolov5s-iaff.yaml": (lambda d: replace_concat(d, "iAFF"),
                          "YOLOv5s + iAFF (Dai et al., WACV 2021), r=4: the neck's four Concat fusions\n"
                          "([-1,6], [-1,4], [-1,14], [-1,10]) become iterative attentional feature fusion of the\n"
                          "two equal-channel maps, so each following C3 reads C channels instead of 2C."),
    "yolov5s-nonlocal.yaml": (lambda d: insert_after(d, [SPPF_ROW], "NonLocal"),
                              "YOLOv5s + Non-local block (Wang et al., CVPR 2018), embedded Gaussian, C/2 inner\n"
                              "channels, zero-initialised output BN (the block starts as the identity).\n"
                              "Placement: one block after SPPF (row 9), at P5/32 (20×20 at 640 px). Its affinity\n"
                              "grows as (H·W)², so it is used only at the lowest resolution; the paper also adds\n"
                              "it to a late, low-resolution stage (res4)."),
    "yolov5s-doubleattn.yaml": (lambda d: insert_after(d, [SPPF_ROW], "DoubleAttn", [1024]),
                                "YOLOv5s + A² double attention (Chen et al., NeurIPS 2018), c_m = c_n = C/4,\n"
                                "residual. Placement: one block after SPPF (row 9), at P5/32, the lowest\n"
                                "resolution, like the Non-local variant (A² summarises the whole map into\n"
                                "global descriptors). Its arg is the output channel count (1024, scaled by\n"
                                "width_multiple like a Conv), here equal to its input."),
    "yolov5s-selectivekernel.yaml": (lambda d: replace_convs(d, STAGE_DOWNSAMPLES, "SelectiveKernel"),
                                     "YOLOv5s + Selective Kernel convs (Li et al., CVPR 2019): M=2 branches (3x3 and\n"
                                     + "3x3 dilated 2), G=32, r=16, L=32." + _CONVS.format(name="SelectiveKernel")),
    "yolov5s-splitattn.yaml": (lambda d: replace_convs(d, STAGE_DOWNSAMPLES, "SplitAttn"),
                               "YOLOv5s + split-attention convs (ResNeSt, Zhang et al. 2020): radix 2,\n"
                               "cardinality 1, reduction 4." + _CONVS.format(name="SplitAttn")),
    "yolov5s-selfcalibconv.yaml": (lambda d: replace_convs(d, STAGE_DOWNSAMPLES, "SelfCalibConv"),
                                   "YOLOv5s + self-calibrated convs (Liu et al., CVPR 2020; not the 2023 SCConv),\n"
                                   "pooling r=4." + _CONVS.format(name="SelfCalibConv")),
    "yolov5s-sge.yaml": (lambda d: insert_after(d, BACKBONE_STAGE_OUTPUTS, "SGE"),
                         "YOLOv5s + Spatial Group-wise Enhance (Li et al., 2019), 64 groups.\n"
                         + _STAGES.format(name="SGE")),
    "yolov5s-scse.yaml": (lambda d: insert_after(d, BACKBONE_STAGE_OUTPUTS, "scSE"),
                          "YOLOv5s + scSE (Roy et al., MICCAI 2018), r=2, x·cSE + x·sSE.\n"
                          + _STAGES.format(name="scSE")),
    "yolov5s-secbam.yaml": (lambda d: insert_after(d, BACKBONE_STAGE_OUTPUTS, "SECBAM"),
                            "YOLOv5s + SE then CBAM on one row ('dual attention' in tutorials), r=16, 7x7.\n"
                            + _STAGES.format(name="SECBAM")),
    "yolov5s-attngate.yaml": (lambda d: gate_skips(d, TOP_DOWN_SKIPS, "AttnGate"),
                              "YOLOv5s + attention gates (Oktay et al., Attention U-Net, 2018) on the neck's\n"
                              "top-down skips, as in the U-Net decoder: before each top-down Concat the backbone\n"
                              "skip (P4 row 6, P3 row 4) is gated by the coarser map that is being upsampled into\n"
                              "that Concat (the 1x1 Conv rows 10 and 14), i.e. from: [skip, gate] = [6, 10] and\n"
                              "[4, 14] in the stock numbering. The gated skip keeps its channels, so the Concat\n"
                              "and everything after it are unchanged; rows are re-numbered."),
}


def base_yaml_path():
    import yolov5

    return Path(yolov5.__file__).parent / "models" / "yolov5s.yaml"


def render(name):
    """The text of shipped variant ``name``."""
    build, header = VARIANTS[name]
    generated = "Generated by `yolo-attn generate-yamls` from yolov5's models/yolov5s.yaml; edit variants.py, not this file."
    return dump_model_yaml(build(load_model_yaml(base_yaml_path())), f"{header}\n\n{generated}")


def write_all(out_dir):
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in VARIANTS:
        (out_dir / name).write_text(render(name), encoding="utf-8")
    return sorted(VARIANTS)
