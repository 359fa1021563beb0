"""Map checkpoint tensors to a model by structure, not by index.

yolov5 matches checkpoint tensors by name (``model.10.conv.weight``), so inserting one row shifts every
later name and those layers silently start from scratch. Here each YOLO row is described by its
signature — the names below ``model.<i>.`` and their shapes, which pins down the layer type and width —
and the two row sequences are aligned by a longest common subsequence: rows keep their order in the
graph, inserted or replaced rows are skipped, and every source row that still exists in the target
receives its tensors wherever its index moved.

Attention added *inside* a block lives under a nested submodule named ``attn`` (a C3 row's bottlenecks:
``m.0.attn.fc1.weight``; ``yolo_attn.engines.yolov5.c3attn``). Those tensors are set aside from the signature, so a
C3 with inner attention is the same layer as a stock C3 (and vice versa): the block's own tensors transfer, and each
inner attention (the tensors below one ``<path>.attn.``: ``m.0.attn.``, ``m.0.1.attn.``) too when both sides hold the
same tensors there (names and shapes: the same attention); otherwise the target row is listed in
``fresh_inner_rows`` (an inner attention of it starts fresh). Ultralytics' own blocks hold attention under such
names too (C2PSA's ``m.0.attn.qkv``, YOLO26's C3k2 ``m.0.1.attn``): a stock one still transfers beside a new one. A top-level ``attn.`` (the identity-start wrapper of a
whole attention row) is not nested and stays in the signature.
"""
import re
from dataclasses import dataclass, field

_ROW = re.compile(r"^model\.(\d+)\.(.+)$")
_INNER = re.compile(r"\.attn\.")  # attention nested inside a block (m.0.attn.*), not a row's own top-level attn.


def is_inner_attention(suffix):
    return bool(_INNER.search(suffix))


def inner_groups(keys, shapes):
    """{'<path>.attn.': {suffix: shape}} of the inner attention tensors among ``keys`` (suffix -> full key)."""
    groups = {}
    for suffix, key in keys.items():
        m = _INNER.search(suffix)
        if m:
            groups.setdefault(suffix[:m.end()], {})[suffix] = tuple(shapes[key].shape)
    return groups


def row_signatures(state_dict):
    """{row: (signature, {suffix: key})} for the ``model.<row>.<suffix>`` tensors of a yolov5 state dict; the
    signature leaves out inner attention tensors (``is_inner_attention``)."""
    rows = {}
    for key, tensor in state_dict.items():
        m = _ROW.match(key)
        if m:
            rows.setdefault(int(m.group(1)), {})[m.group(2)] = (key, tuple(tensor.shape))
    return {i: (tuple(sorted((s, shape) for s, (_, shape) in v.items() if not is_inner_attention(s))),
                {s: k for s, (k, _) in v.items()}) for i, v in sorted(rows.items())}


def align(source, target):
    """Order-preserving pairs (source row, target row) with equal signatures: a longest common subsequence."""
    a, b = list(source), list(target)
    n, m = len(a), len(b)
    best = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        for j in range(m - 1, -1, -1):
            best[i][j] = best[i + 1][j + 1] + 1 if source[a[i]][0] == target[b[j]][0] else \
                max(best[i + 1][j], best[i][j + 1])
    pairs, i, j = [], 0, 0
    while i < n and j < m:
        if source[a[i]][0] == target[b[j]][0]:
            pairs.append((a[i], b[j]))
            i, j = i + 1, j + 1
        elif best[i + 1][j] >= best[i][j + 1]:
            i += 1
        else:
            j += 1
    return pairs


@dataclass
class TransferReport:
    moved: dict = field(default_factory=dict)  # source row -> target row
    new_rows: list = field(default_factory=list)  # target rows with no source
    dropped_rows: list = field(default_factory=list)  # source rows with no place in the target
    transferred: int = 0  # source tensors carried over
    source_tensors: int = 0
    excluded: int = 0
    fresh_inner_rows: list = field(default_factory=list)  # matched target rows whose inner attention starts fresh

    def summary(self):
        shifted = {s: t for s, t in self.moved.items() if s != t}
        lines = [f"Transferred {self.transferred}/{self.source_tensors} source tensors by structure "
                 f"({len(self.moved)} layers matched, {len(shifted)} of them at a new index"
                 + (f", {self.excluded} excluded by name" if self.excluded else "") + ")"]
        if shifted:
            lines.append("  moved: " + ", ".join(f"{s}->{t}" for s, t in shifted.items()))
        if self.new_rows:
            lines.append("  new (initialised fresh): " + ", ".join(map(str, self.new_rows)))
        if self.fresh_inner_rows:
            lines.append("  attention inside these blocks initialised fresh: " + ", ".join(map(str, self.fresh_inner_rows)))
        if self.dropped_rows:
            lines.append("  not transferred (no matching layer in the target): " + ", ".join(map(str, self.dropped_rows)))
        return "\n".join(lines)


def structural_transfer(source_sd, target_sd, exclude=()):
    """(state dict renamed to the target's keys, TransferReport). ``exclude``: substrings, as yolov5's."""
    source, target = row_signatures(source_sd), row_signatures(target_sd)
    report = TransferReport(source_tensors=sum(len(keys) for _, keys in source.values()))
    out = {}
    for s, t in align(source, target):
        report.moved[s] = t
        inner = [inner_groups(keys, sd) for sd, keys in ((source_sd, source[s][1]), (target_sd, target[t][1]))]
        same = {g for g, v in inner[0].items() if inner[1].get(g) == v}  # the same attention there: carried
        if set(inner[1]) - same:  # else the target's starts fresh
            report.fresh_inner_rows.append(t)
        for suffix, key in source[s][1].items():
            m = _INNER.search(suffix)
            if m and suffix[:m.end()] not in same:
                continue
            new_key = target[t][1][suffix]
            if any(x in key or x in new_key for x in exclude):
                report.excluded += 1
                continue
            out[new_key] = source_sd[key]
    report.transferred = len(out)
    report.new_rows = [t for t in target if t not in report.moved.values()]
    report.dropped_rows = [s for s in source if s not in report.moved]
    return out, report
