"""The table of layer types in docs/layers.md, generated from the registry so it cannot drift.

Each layer's YAML row, parameter count and cost come from the shipped ``model_yamls/yolov5s-<name>.yaml`` that
places it (built by the same generator, ``yolo_attn.model_yaml.variants``), measured against the stock yolov5s
by the ablation bench's own code (``yolo_attn.benchmarks.ablation``: ``build_variant``, ``flop_report``), so the
table and ``scripts/bench.sh`` print the same GFLOPs for the same model: parameters of the model as built (nc=80,
before fusing); FLOPs of one 640×640 image through the fused eval model, every operator counted by the rule of
``yolo_attn.benchmarks.flops`` (convolutions and matrix products 2 per multiply-add, element-wise work and
activations 1 per output element, reductions 1 per input element, ...), on the meta device (shapes only,
deterministic). The element-wise work matters here: it is most of what a gate such as SE or CBAM adds.
"""
import yaml

from yolo_attn.registry import registered_layers

BEGIN, END = "<!-- layer-table:begin (generated: yolo-attn layers --markdown) -->", "<!-- layer-table:end -->"
IMGSZ = 640


def shipped_yaml(spec):
    """The first shipped variant that places ``spec`` (``yolov5s-<name>.yaml``), or None."""
    from yolo_attn.model_yaml.variants import variant_names

    names = variant_names(spec)
    return names[0] if names else None


def variant_dict(name):
    """The model dict of shipped variant ``name``, straight from the generator."""
    from yolo_attn.model_yaml.variants import variant_dict as build

    return build(name)


def model_cost(d, imgsz=IMGSZ):
    """(parameters, FLOPs for one imgsz×imgsz image) of model dict ``d``, as the ablation bench counts them."""
    from yolo_attn.benchmarks.ablation import build_variant, flop_report

    variant = build_variant(d, nc=d.get("nc", 80), name="layer-table")
    return variant.params, flop_report(variant, imgsz).total


def _flow(x):
    return yaml.safe_dump(x, default_flow_style=True, width=10_000).strip()


def layer_rows():
    """One dict per registered layer: what the table in docs/layers.md shows."""
    base_params, base_flops = model_cost(variant_dict("yolov5s.yaml"))
    rows = []
    for spec in registered_layers():
        row = {"spec": spec, "file": shipped_yaml(spec), "params": None, "flops": None}
        if row["file"]:
            d = variant_dict(row["file"])
            row["yaml_row"] = next(r for r in d["backbone"] + d["head"] if r[2] == spec.name)
            params, flops = model_cost(d)
            row["params"], row["flops"] = params - base_params, flops - base_flops
        else:
            src = [-1, 6] if spec.inputs == 2 else -1
            row["yaml_row"] = [src, 1, spec.name, yaml.safe_load(spec.yaml_args)]
        rows.append(row)
    return rows, base_params, base_flops


def layer_table():
    rows, base_params, base_flops = layer_rows()
    out = ["| layer | inputs | paper | YAML row (in the shipped file) | hyper-parameters (defaults) "
           "| params on yolov5s | GFLOPs on yolov5s |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        spec = row["spec"]
        names = spec.name + "".join(f" / {a}" for a in spec.aliases)
        inputs = "2: [skip, gate]" if spec.out_from_first else str(spec.inputs)
        if spec.changes_channels:
            inputs += " (arg 1: out channels)"
        params = ", ".join(f"`{k}={v!r}`" for k, v in spec.hyper_parameters.items()) or (
            "registered layer names" if spec.members else "none")
        where = f"`{_flow(row['yaml_row'])}`" + (f" (`{row['file']}`)" if row["file"] else "")
        if row["file"]:
            cost = f"{row['params']:+,}", f"{(base_flops + row['flops']) / 1e9:.2f} ({row['flops'] / 1e9:+.4f})"
        else:
            cost = "sum of its members", "sum of its members"
        out.append(f"| `{names}` | {inputs} | {spec.paper} | {where} | {params} | {cost[0]} | {cost[1]} |")
    note = (f"Params: added to the stock yolov5s ({base_params:,} at nc=80) by the shipped file. GFLOPs: one "
            f"{IMGSZ}×{IMGSZ} image through the fused model, stock {base_flops / 1e9:.2f}, in brackets the change; "
            "counted as `scripts/bench.sh` counts them (the same code, `yolo_attn/benchmarks/flops.py`): every "
            "operator, convolutions and matrix products 2 per multiply-add (+ bias), element-wise work and "
            "activations 1 per output element, reductions 1 per input element, pooling per window element. "
            "yolov5's own GFLOPs (thop) count convolutions only.")
    return "\n".join([BEGIN, *out, "", note, END])
