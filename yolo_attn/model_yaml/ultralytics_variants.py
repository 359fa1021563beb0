"""The shipped ``model_yamls/ultralytics/``: generated from ultralytics' own YAMLs by the same structural edits as the
yolov5 variants (``edit.insert_after``, ``edit.replace_concat``), so they cannot drift from the stock files.

Regenerate with ``python -m yolo_attn.model_yaml.ultralytics_variants [--out DIR]``; a test regenerates them and
compares byte for byte. Each file keeps every scale of its stock YAML; the scale letter in the file name picks one
(``yolo11n-cbam.yaml``: n), as ultralytics does.
"""
import argparse
import textwrap
from pathlib import Path

from yolo_attn.model_yaml.edit import (attention_in_rows, dump_ultralytics_yaml, insert_after, load_model_yaml,
                                      replace_concat)

# family -> (stock YAML under ultralytics/cfg/models, model name, backbone rows that end the P3, P4, P5 stages,
#            what those rows are, equal-channel neck Concats at scale n)
ENGINE = "ultralytics"  # these variants are generated from this engine's own YAMLs, for it
FAMILIES = {
    "yolo11": ("11/yolo11.yaml", "YOLO11{}", (4, 6, 8), "C3k2", (15,)),
    "yolov8": ("v8/yolov8.yaml", "YOLOv8{}", (4, 6, 8), "C2f", ()),
    "yolov5u": ("v5/yolov5.yaml", "YOLOv5{}u", (4, 6, 8), "C3", (12, 16, 19, 22)),
    "yolo26": ("26/yolo26.yaml", "YOLO26{}", (4, 6, 8), "C3k2", ()),
    "yolo12": ("12/yolo12.yaml", "YOLO12{}", (4, 6, 8), "C3k2 (P3) or A2C2f (P4, P5)", ()),
}

_STAGES = """
Placement: one {layer} after the {block} that ends each backbone stage feeding the neck ({family} rows
{rows}: P3/8, P4/16, P5/32; the P5 one feeds {p5}), so every scale the neck and Detect read is re-weighted
once, as in the yolov5s variants and the papers (a module at the end of every stage). Consumers of those rows,
the neck's Concats included, were re-numbered by `yolo_attn.model_yaml.edit.insert_after`."""

_FUSIONS = """
Placement: {layer} replaces the neck Concat{s} {rows}, the only one{s} whose two inputs have equal channels at
scale {scale} ({channels}); the other Concats join unequal maps and stay (at scales m, l, x the Concats 12 and 21
are equal too: a YAML for those scales can replace them as well). The fused map has the inputs' channel count
(the Concat had twice that), so the rows after it are narrower. Edited by
`yolo_attn.model_yaml.edit.replace_concat`."""


def _baseline(family, scale):
    stock, name, *_ = FAMILIES[family]
    return f"{name.format(scale)} baseline: ultralytics' cfg/models/{stock}, unchanged in structure.", lambda d: d


P5_FEEDS = {"yolo11": "SPPF and C2PSA", "yolo26": "SPPF and C2PSA", "yolo12": "the neck directly: YOLO12 has no SPPF"}


def _stage_variant(family, scale, layer):
    from yolo_attn.registry import lookup

    _, name, rows, block, _ = FAMILIES[family]
    spec = lookup(layer)
    p5 = P5_FEEDS.get(family, "SPPF")
    header = f"{name.format(scale)} + {spec.name} ({spec.paper}), default hyper-parameters.\n" + _STAGES.format(
        layer=spec.name, block=block, family=family, rows=", ".join(map(str, rows)), p5=p5)
    return header, lambda d: insert_after(d, rows, spec.name)


def _fusion_variant(family, scale, layer, channels):
    from yolo_attn.registry import lookup

    _, name, _, _, rows = FAMILIES[family]
    spec = lookup(layer)
    header = f"{name.format(scale)} + {spec.name} ({spec.paper}).\n" + _FUSIONS.format(
        layer=spec.name, s="s" if len(rows) > 1 else "", rows=", ".join(map(str, rows)), scale=scale,
        channels=channels)
    return header, lambda d: replace_concat(d, spec.name, rows=rows)


_END = """
Placement: one {layer} after the last backbone row ({family} row {row}, {what}), at P5/32 (20x20 at 640 px), the
lowest resolution: its cost is quadratic in the map size (as the yolov5s variant, after SPPF). Consumers of that
row were re-numbered by `yolo_attn.model_yaml.edit.insert_after`."""
END_OF_BACKBONE = {"yolo11": (10, "C2PSA")}  # family -> (last backbone row, what it is)


def _end_variant(family, scale, layer):
    from yolo_attn.registry import lookup

    _, name, *_ = FAMILIES[family]
    spec = lookup(layer)
    row, what = END_OF_BACKBONE[family]
    header = f"{name.format(scale)} + {spec.name} ({spec.paper}), default hyper-parameters.\n" + _END.format(
        layer=spec.name, family=family, row=row, what=what)
    return header, lambda d: insert_after(d, [row], spec.name)


# In-block kinds: kind -> (the block, family -> rows, where X sits, why there). A trailing {attn: X} on those rows
# (yolo_attn/engines/ultralytics/blocks.py builds it); the file is {family}{scale}-{FILE_STEMS[kind]}.
IN_BLOCK = {
    "c3k2": ("C3k2", {"yolo11": (4, 6, 8), "yolo26": (4, 6, 8)},
             "on the residual branch of every bottleneck inside the C3k2 blocks that end the backbone stages P3/8, "
             "P4/16, P5/32 ({family} rows {rows}; in C3k2 rows with c3k, and at scales m, l, x, where ultralytics "
             "turns c3k on, the bottlenecks inside each C3k): x + {layer}(cv2(cv1(x))), the C3k2_{layer} of other "
             "projects. The stage ends, as in the stand-alone variants; row 2 (16 channels per bottleneck at scale n) "
             "and the neck stay stock."),
    "c2psa": ("C2PSA", {"yolo11": (10,), "yolo26": (10,)},
              "in place of the self-attention of each PSABlock of the C2PSA at the end of the backbone ({family} row "
              "{rows}, P5/32): PSABlock.attn (ultralytics' multi-head Attention) is {layer}, so each block computes "
              "x + {layer}(x), then x + ffn(x), the C2PSA_{layer} of other projects. PSA's feed-forward and every "
              "stock weight name of the block stay."),
    "a2c2f": ("A2C2f", {"yolo12": (6, 8)},
              "in place of the area attention of each ABlock of the A2C2f rows that have it ({family} rows {rows}, "
              "P4/16 and P5/32, a2: True): ABlock.attn (AAttn) is {layer}, so each block computes x + {layer}(x), "
              "then x + mlp(x), the A2C2f_{layer} of other projects. The neck's A2C2f rows (a2: False, no attention) "
              "stay stock."),
}
FILE_STEMS = {"stage": "{layer}", "end": "{layer}", "c3k2": "c3k2{layer}", "c2psa": "c2psa-{layer}",
              "a2c2f": "a2c2f-{layer}"}
# (kind, layer) -> (hyper-parameters written into the {attn: [X, {...}]} mapping, why)
IN_BLOCK_HYPER = {
    ("c3k2", "ema"): ({"groups": 8}, "EMA with groups: 8, not its default 32: the bottlenecks of rows 4 and 6 have "
                                     "32 channels at scale n, which 32 groups would cut into single channels; 8 "
                                     "divides every bottleneck width at every scale n..x (32 to 192 channels)."),
    ("c2psa", "shsa"): ({"residual": False}, "SHSA with residual: false: PSABlock adds x itself (x + attn(x)), as it "
                                             "did for the attention replaced; SHSA's own skip would add x twice."),
    ("c2psa", "cga"): ({"residual": False}, "CGA with residual: false: PSABlock adds x itself (x + attn(x)), as it "
                                            "did for the attention replaced; CGA's own skip would add x twice."),
    ("a2c2f", "cga"): ({"residual": False}, "CGA with residual: false: ABlock adds x itself (x + attn(x)), as it did "
                                            "for the area attention replaced; CGA's own skip would add x twice."),
}
WHY_LAYER = {
    "shsa": "SHSA is a self-attention (single-head, on a fraction of the channels) designed as a cheaper "
            "replacement of multi-head self-attention in a transformer block: the role PSA's Attention plays.",
    "cga": "CGA is a self-attention (cascaded group attention over local windows) designed to replace multi-head "
           "self-attention in a transformer block at a fraction of its memory traffic: the role {what} plays.",
}


def _in_block_variant(kind):
    def variant(family, scale, layer):
        from yolo_attn.registry import lookup

        _, name, *_ = FAMILIES[family]
        block, rows_of, where = IN_BLOCK[kind]
        spec, rows = lookup(layer), rows_of[family]
        hyper, why_hyper = IN_BLOCK_HYPER.get((kind, layer), (None, "Default hyper-parameters."))
        header = (f"{name.format(scale)} + {spec.name} ({spec.paper}) inside {block}.\n\nPlacement: {spec.name} sits "
                  + where.format(family=family, rows=", ".join(map(str, rows)), layer=spec.name)
                  + " Written as a trailing {attn: ...} on those rows (docs/layers.md, \"Attention inside "
                    "ultralytics' blocks\"); edited by `yolo_attn.model_yaml.edit.attention_in_rows`.\n\n"
                  + why_hyper)
        if layer in WHY_LAYER:
            header += " " + WHY_LAYER[layer].format(what="PSA's Attention" if kind == "c2psa" else "area attention")
        return header, lambda d: attention_in_rows(d, rows, spec.name, hyper)

    return variant


# kind -> function(family, scale, layer) -> (header, edit)
KINDS = {"stage": _stage_variant, "end": _end_variant, **{k: _in_block_variant(k) for k in IN_BLOCK}}
# (family, scale, kind, layers): one file {family}{scale}-{FILE_STEMS[kind]}.yaml each
SHIPPED = (
    ("yolo26", "n", "stage", ("cbam", "se", "coordatt", "ema", "simam")),
    ("yolo12", "n", "stage", ("cbam", "se")),
    ("yolo26", "n", "c3k2", ("cbam", "ema")),
    ("yolo26", "n", "c2psa", ("shsa", "cga")),
    ("yolo11", "n", "c3k2", ("cbam",)),
    ("yolo12", "n", "a2c2f", ("cga",)),
)


# file name -> (family, header, edit)
def variants():
    out = {}
    for family, scale in (("yolo11", "n"), ("yolov8", "n"), ("yolov5u", "s"), ("yolo26", "n"), ("yolo12", "n")):
        stem = {"yolov5u": "yolov5su"}.get(family, f"{family}{scale}")
        out[f"{stem}.yaml"] = (family, *_baseline(family, scale))
    for layer in ("cbam", "se", "eca", "coordatt"):
        out[f"yolo11n-{layer}.yaml"] = ("yolo11", *_stage_variant("yolo11", "n", layer))
    out["yolo11n-aff.yaml"] = ("yolo11", *_fusion_variant("yolo11", "n", "aff", "128 and 128 channels"))
    for layer in ("ela", "lska", "mlca", "cpca", "caa"):  # issue #23
        out[f"yolo11n-{layer}.yaml"] = ("yolo11", *_stage_variant("yolo11", "n", layer))
    out["yolov8n-cbam.yaml"] = ("yolov8", *_stage_variant("yolov8", "n", "cbam"))
    out["yolov5su-cbam.yaml"] = ("yolov5u", *_stage_variant("yolov5u", "s", "cbam"))
    out["yolo11n-bilevelroutingattention.yaml"] = ("yolo11", *_end_variant("yolo11", "n", "BiLevelRoutingAttention"))
    out["yolo11n-dattention.yaml"] = ("yolo11", *_end_variant("yolo11", "n", "DAttention"))
    for layer in ("irmb", "cga"):  # windowed attention: linear in H·W, at every stage output
        out[f"yolo11n-{layer}.yaml"] = ("yolo11", *_stage_variant("yolo11", "n", layer))
    out["yolo11n-shsa.yaml"] = ("yolo11", *_end_variant("yolo11", "n", "SHSA"))
    for family, scale, kind, layers in SHIPPED:
        for layer in layers:
            out[f"{family}{scale}-{FILE_STEMS[kind].format(layer=layer)}.yaml"] = (family, *KINDS[kind](family, scale, layer))
    return out


def stock_yaml(family):
    from yolo_attn import engines

    return engines.get(ENGINE).stock_yaml(FAMILIES[family][0])


def render(name):
    """The text of shipped variant ``name``."""
    family, header, edit = variants()[name]
    header = "\n".join(textwrap.fill(" ".join(part.split()), 112) for part in header.split("\n\n"))
    generated = (f"Generated by `python -m yolo_attn.model_yaml.ultralytics_variants` from ultralytics' "
                 f"cfg/models/{FAMILIES[family][0]}; edit ultralytics_variants.py, not this file.")
    return dump_ultralytics_yaml(edit(load_model_yaml(stock_yaml(family))), f"{header}\n\n{generated}")


def write_all(out_dir):
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = sorted(variants())
    for name in names:
        (out_dir / name).write_text(render(name), encoding="utf-8")
    return names


def main(argv=None):
    from yolo_attn import paths

    p = argparse.ArgumentParser(prog="python -m yolo_attn.model_yaml.ultralytics_variants", description=__doc__)
    out = (paths.MODEL_YAMLS if paths.IN_CHECKOUT else Path("model_yamls")) / "ultralytics"  # never the package
    p.add_argument("--out", default=str(out), help="folder (default: the checkout's model_yamls/ultralytics/; "
                                                   "installed: ./model_yamls/ultralytics)")
    names = write_all(p.parse_args(argv).out)
    print(f"{len(names)} ultralytics variants written")


if __name__ == "__main__":
    main()
