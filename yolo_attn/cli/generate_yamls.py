"""``yolo-attn generate-yamls``: write the shipped variants (model_yamls/) from yolov5's yolov5s.yaml.

A file that exists with other content (your edits, or a variant of an older release) is left alone and listed;
``--force`` replaces it.
"""
from pathlib import Path

from yolo_attn import paths
from yolo_attn.cli.pipeline import Parser, run_cli
from yolo_attn.errors import UsageError
from yolo_attn.model_yaml.variants import render, variants


def main(argv):
    p = Parser("yolo-attn generate-yamls", __doc__)
    # installed (not a checkout): ./model_yamls, never the package's own folder
    p.add_argument("--out", default=str(paths.MODEL_YAMLS if paths.IN_CHECKOUT else Path("model_yamls")),
                   help="folder to write to (default: the checkout's model_yamls/; installed: ./model_yamls)")
    p.add_argument("--force", action="store_true", help="replace files whose content differs")
    opt, _ = p.parse(argv)
    out = Path(opt.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; give a folder")
    texts = {name: render(name) for name in sorted(variants())}
    edited = [name for name, text in texts.items()
              if (out / name).is_file() and (out / name).read_text(encoding="utf-8") != text]
    if edited and not opt.force:
        raise UsageError(f"{len(edited)} file(s) in {out} differ from what would be written, and are left as they "
                         f"are: {', '.join(edited)}. Save your edits under another name, or pass --force to "
                         f"replace them.")
    out.mkdir(parents=True, exist_ok=True)
    for name, text in texts.items():
        path = out / name
        if path.is_file() and path.read_text(encoding="utf-8") == text:
            continue
        paths.write_atomically(path, text)
        print(f"wrote {path}")
    print(f"{len(texts)} variants in {out}")


def cli():
    raise SystemExit(run_cli(main))


if __name__ == "__main__":
    cli()
