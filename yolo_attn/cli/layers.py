"""``yolo-attn layers``: the registered layer types (``--markdown``: the table of docs/layers.md)."""
from yolo_attn.cli.pipeline import Parser, run_cli
from yolo_attn.registry import registered_layers


def main(argv):
    p = Parser("yolo-attn layers", __doc__)
    p.add_argument("--markdown", action="store_true", help="the table of docs/layers.md (params and GFLOPs on yolov5s)")
    opt, _ = p.parse(argv)
    if opt.markdown:
        from yolo_attn.benchmarks.layer_table import layer_table

        print(layer_table())
        return
    for spec in registered_layers():
        params = ", ".join(f"{k}={v!r}" for k, v in spec.hyper_parameters.items())
        print(f"{spec.name:<16} inputs={spec.inputs}  {spec.paper}\n{'':<16} hyper-parameters: {params}")


def cli():
    raise SystemExit(run_cli(main))


if __name__ == "__main__":
    cli()
