"""The README's table of layer types, generated from the registry so it cannot drift.

Each layer's YAML row, parameter count and cost come from the shipped ``model_yamls/yolov5s-<name>.yaml`` that
places it (built by the same generator, ``yolo_attn.model_yaml.variants``), measured against the stock yolov5s:
parameters are counted on the built model (nc=80); cost is the FLOPs of one 640×640 image, counted by
``torch.utils.flop_counter`` on a meta-device forward (shapes only: nothing is computed, deterministic). It counts
convolutions and matrix products (Non-local's and A²'s affinities included) as 2 FLOPs per multiply-add — the
convention of yolov5's own GFLOPs, whose stock yolov5s it reproduces (16.4 fused) — and no element-wise work
(activations, gates' products, softmax, pooling).
"""
import copy

import yaml

from yolo_attn.engines.yolov5.model import quiet
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
    """(parameters, FLOPs for one imgsz×imgsz image) of model dict ``d``, built and run on the meta device."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from yolo_attn.engines.yolov5.parser import parse_model

    with quiet(), torch.device("meta"), torch.no_grad():
        model, save = parse_model(copy.deepcopy(d), ch=[3])
        model.eval()
        model[-1].train()  # Detect in training mode returns its raw maps (eval would need strides)
        x, outputs = torch.empty(1, 3, imgsz, imgsz), []
        with FlopCounterMode(display=False) as counter:
            for m in model:  # yolov5's BaseModel._forward_once
                if m.f != -1:
                    x = outputs[m.f] if isinstance(m.f, int) else [x if j == -1 else outputs[j] for j in m.f]
                x = m(x)
                outputs.append(x if m.i in save else None)
    return sum(p.numel() for p in model.parameters()), counter.get_total_flops()


def _flow(x):
    return yaml.safe_dump(x, default_flow_style=True, width=10_000).strip()


def layer_rows():
    """One dict per registered layer: what the README table shows."""
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
        params = ", ".join(f"`{k}={v!r}`" for k, v in spec.hyper_parameters.items()) or "registered layer names"
        where = f"`{_flow(row['yaml_row'])}`" + (f" (`{row['file']}`)" if row["file"] else "")
        if row["file"]:
            cost = f"{row['params']:+,}", f"{(base_flops + row['flops']) / 1e9:.2f} ({row['flops'] / 1e9:+.4f})"
        else:
            cost = "sum of its members", "sum of its members"
        out.append(f"| `{names}` | {inputs} | {spec.paper} | {where} | {params} | {cost[0]} | {cost[1]} |")
    note = (f"Params: added to the stock yolov5s ({base_params:,} at nc=80) by the shipped file. GFLOPs: one "
            f"{IMGSZ}×{IMGSZ} image, stock {base_flops / 1e9:.2f}, in brackets the change; convolutions and matrix "
            f"products counted (2 per multiply-add, as yolov5), element-wise work not (`yolo_attn/benchmarks/layer_table.py`).")
    return "\n".join([BEGIN, *out, "", note, END])
