"""Edit YOLOv5 model YAMLs structurally: insert layers or replace Concat fusions, re-numbering every ``from``; put
attention inside rows (a trailing ``{attn: X}``)."""
import copy
import re
from pathlib import Path

import yaml

from yolo_attn.errors import ModelConfigError


def load_model_yaml(path):
    """A model YAML as a dict (safe_load: YAML text is never evaluated)."""
    path = Path(path)
    try:
        d = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.constructor.ConstructorError as e:
        found = re.search(r"'(tag:[^']*)'", e.problem or "")
        tag = found.group(1).replace("tag:yaml.org,2002:", "!!") if found else "a tag"
        mark = e.problem_mark
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ModelConfigError(f"{path}: {tag}{at} is refused: a model YAML holds plain values only (numbers, words, "
                               f"lists, mappings); tags such as !!python/object, which would construct Python objects, "
                               f"are never loaded. Remove the tag.") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ModelConfigError(f"{path}: not valid YAML{at}: {getattr(e, 'problem', None) or e}. Check the "
                               f"brackets, commas and indentation there.") from None
    except UnicodeDecodeError as e:
        raise ModelConfigError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    if not isinstance(d, dict) or "backbone" not in d or "head" not in d:
        raise ModelConfigError(f"{path}: not a YOLOv5 model YAML (it needs 'backbone:' and 'head:' sections)")
    return d


def _rows(d):
    return list(d["backbone"]) + list(d["head"])


def _absolute(f, i):
    return [j if j >= 0 else i + j for j in (f if isinstance(f, list) else [f])]


def _renumber(d, new_index, consumer_index, inserted):
    """Rebuild backbone/head with 'from' indices mapped through ``consumer_index`` (old row -> new row)."""
    n_backbone = len(d["backbone"])
    placed = []  # (new index, section, row)
    for i, (f, n, m, args) in enumerate(_rows(d)):
        p, section = new_index[i], "backbone" if i < n_backbone else "head"
        if i == 0 and f == -1:
            mapped = -1
        else:
            originals = f if isinstance(f, list) else [f]
            targets = [consumer_index[t] for t in _absolute(f, i)]
            mapped = [t - p if j < 0 else t for j, t in zip(originals, targets)]
            mapped = mapped if isinstance(f, list) else mapped[0]
        placed.append((p, section, [mapped, n, m, copy.deepcopy(args)]))
        placed += [(q, section, extra) for q, extra in inserted.get(i, [])]
    placed.sort(key=lambda x: x[0])
    out = {k: copy.deepcopy(v) for k, v in d.items() if k not in ("backbone", "head")}
    for section in ("backbone", "head"):
        out[section] = [row for _, s, row in placed if s == section]
    return out


def insert_after(d, rows, layer, args=()):
    """A copy of model dict ``d`` with ``[-1, 1, layer, args]`` inserted after each row in ``rows``.

    Every consumer of an original row r (absolute or relative ``from``, Detect included) now reads the
    inserted layer's output, so the attention refines what row r produced for the whole network.
    """
    rows = sorted(set(int(r) for r in ([rows] if isinstance(rows, int) else rows)))
    total = len(_rows(d))
    for r in rows:
        if not 0 <= r < total - 1:
            raise ModelConfigError(f"cannot insert after row {r}: the model has rows 0..{total - 1} and the last "
                                   f"one (Detect) must stay last")
    new_index, consumer_index, inserted, shift = {}, {}, {}, 0
    for i in range(total):
        new_index[i] = i + shift
        if i in rows:
            shift += 1
            inserted[i] = [(i + shift, [-1, 1, layer, list(args)])]
        consumer_index[i] = i + shift
    return _renumber(d, new_index, consumer_index, inserted)


def replace_concat(d, layer, args=(), rows=None):
    """A copy of ``d`` where every two-input ``Concat`` of the head (or those at the layer indices ``rows``) becomes
    ``layer`` with the same inputs."""
    out = copy.deepcopy(d)
    n_backbone = len(out["backbone"])
    replaced = 0
    for k, row in enumerate(out["head"]):
        if row[2] == "Concat" and isinstance(row[0], list) and len(row[0]) == 2 and \
                (rows is None or n_backbone + k in rows):
            row[2], row[3] = layer, list(args)
            replaced += 1
    if rows is not None and replaced != len(set(rows)):
        raise ModelConfigError(f"rows {sorted(rows)} are not all two-input Concats of the head")
    if not replaced:
        raise ModelConfigError("the head has no two-input Concat to replace")
    return out


def attention_in_rows(d, rows, layer, hyper=None):
    """A copy of ``d`` with a trailing ``{attn: layer}`` (``{attn: [layer, hyper]}`` with hyper-parameters) appended to
    the args of each row in ``rows``: the attention goes inside those blocks (where, the engine's parser says)."""
    out = copy.deepcopy(d)
    all_rows = _rows(out)
    for r in sorted(set(int(r) for r in ([rows] if isinstance(rows, int) else rows))):
        if not 0 <= r < len(all_rows) - 1:
            raise ModelConfigError(f"row {r} cannot take attention: the model has rows 0..{len(all_rows) - 1} and the "
                                   f"last one is the detection head")
        args = all_rows[r][3]
        if args and isinstance(args[-1], dict):
            raise ModelConfigError(f"row {r} ({all_rows[r][2]}) already ends in a mapping {args[-1]}")
        args.append({"attn": [layer, dict(hyper)] if hyper else layer})
    return out


def dump_model_yaml(d, header=""):
    """YAML text in yolov5's compact layout: one row per line, each commented with its layer index."""
    flow = lambda x: yaml.safe_dump(x, default_flow_style=True, width=10_000).strip()  # noqa: E731
    lines = [f"# {line}".rstrip() for line in header.strip().splitlines()] + [""] if header.strip() else []
    for k, v in d.items():
        if k in ("backbone", "head"):
            continue
        if k == "anchors" and isinstance(v, list):
            lines.append("anchors:")
            lines += [f"  - {flow(a)}" for a in v]
        else:
            lines.append(f"{k}: {flow(v) if isinstance(v, (list, dict)) else yaml.safe_dump(v).strip().splitlines()[0]}")
    index = 0
    for section in ("backbone", "head"):
        lines += ["", f"{section}:", "  # [from, number, module, args]"]
        rows = d[section]
        for k, row in enumerate(rows):
            lead = "  [" if k == 0 else "   "
            lines.append(f"{lead}{flow(row)},  # {index}")
            index += 1
        lines.append("  ]")
    return "\n".join(lines) + "\n"


def dump_ultralytics_yaml(d, header=""):
    """YAML text in ultralytics' layout (``scales:`` as a block, rows as ``- [...]``), each row commented with its
    layer index."""
    flow = lambda x: yaml.safe_dump(x, default_flow_style=True, width=10_000).strip()  # noqa: E731
    lines = [f"# {line}".rstrip() for line in header.strip().splitlines()] + [""] if header.strip() else []
    for k, v in d.items():
        if k in ("backbone", "head"):
            continue
        if k == "scales" and isinstance(v, dict):
            lines.append("scales: # [depth, width, max_channels]")
            lines += [f"  {s}: {flow(x)}" for s, x in v.items()]
        else:
            lines.append(f"{k}: {flow(v) if isinstance(v, (list, dict)) else yaml.safe_dump(v).strip().splitlines()[0]}")
    index = 0
    for section in ("backbone", "head"):
        lines += ["", f"{section}:", "  # [from, repeats, module, args]"]
        for row in d[section]:
            lines.append(f"  - {flow(row)} # {index}")
            index += 1
    return "\n".join(lines) + "\n"
