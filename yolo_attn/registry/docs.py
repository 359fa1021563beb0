"""The README's table of layer types, generated from the registry so it cannot drift."""
from yolo_attn.registry.layers import registered_layers

BEGIN, END = "<!-- layer-table:begin (generated: yolo-attn layers --markdown) -->", "<!-- layer-table:end -->"


def layer_table():
    rows = ["| layer | inputs | paper | YAML row | hyper-parameters (defaults) |", "|---|---|---|---|---|"]
    for spec in registered_layers():
        src = "[-1, 6]" if spec.inputs == 2 else "-1"
        params = ", ".join(f"`{k}={v!r}`" for k, v in spec.hyper_parameters.items())
        names = spec.name + "".join(f" / {a}" for a in spec.aliases)
        rows.append(f"| `{names}` | {spec.inputs} | {spec.paper} | `[{src}, 1, {spec.name}, []]` | {params} |")
    return "\n".join([BEGIN, *rows, END])
