"""A results table declared once: each column's name, header, unit, format and source, written to csv/md/json.

A ``Column`` is the single declaration of one figure. The csv and json writers use its ``key`` (the field name),
the markdown writer its ``header`` and ``cell``; a column without a header is in the csv and json only. Columns
of a ``group`` (e.g. the GPU figures) appear only when some row has a value for one of them. ``source`` says which
measurement or computation fills the value; it goes into the json's column list, next to the unit.
"""
import csv
import json
from dataclasses import dataclass
from typing import Callable, Optional, Union


@dataclass(frozen=True)
class Column:
    key: str  # the row's field: the csv header and the json name
    header: Optional[str] = None  # the markdown header; None: csv and json only
    fmt: Union[str, Callable] = "{}"  # markdown cell: a format spec ('.2f', ','), or a function of the row
    unit: str = ""
    source: str = ""  # which measurement or computation fills it
    group: str = ""  # shown only when some row has a value in a column of this group
    left: bool = False  # left-aligned in the markdown (text)

    def cell(self, row):
        if callable(self.fmt):
            return self.fmt(row)
        value = row.get(self.key)
        if value is None:
            return "-"
        return self.fmt.format(value) if "{" in self.fmt else format(value, self.fmt)

    def describe(self):
        return {"key": self.key, "header": self.header, "unit": self.unit, "source": self.source}


def visible(schema, rows):
    """The columns to write: every ungrouped one, and the groups some row has a value for."""
    groups = {c.group for c in schema if c.group and any(r.get(c.key) is not None for r in rows)}
    return [c for c in schema if not c.group or c.group in groups]


def csv_value(value):
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, (list, tuple)):
        return ";".join(str(csv_value(v)) for v in value)
    return value


def write_csv(schema, rows, path):
    cols = visible(schema, rows)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([c.key for c in cols])
        for r in rows:
            w.writerow([csv_value(r.get(c.key)) for c in cols])


def markdown_table(schema, rows):
    cols = [c for c in visible(schema, rows) if c.header is not None]
    lines = ["| " + " | ".join(c.header for c in cols) + " |",
             "|" + "|".join("---" if c.left else "---:" for c in cols) + "|"]
    lines += ["| " + " | ".join(c.cell(r) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def json_document(schema, rows, meta):
    cols = visible(schema, rows)
    return json.dumps({"meta": meta, "columns": [c.describe() for c in cols],
                       "rows": [{c.key: r.get(c.key) for c in cols} for r in rows]}, indent=2, default=str) + "\n"
