"""The sweep's table written once from its row schema: ablation.csv, ablation.md, ablation.json, ablation.png.

The cost columns are the bench's own declarations (``yolo_attn.benchmarks.ablation.SCHEMA``), filled by its
``measure``; the accuracy and comparison columns are declared here.
"""
from __future__ import annotations

import math
from pathlib import Path

from yolo_attn.ablation.report import COCO, FIRST_ENGINE, METRICS
from yolo_attn.benchmarks import ablation as bench
from yolo_attn.benchmarks import table
from yolo_attn.benchmarks.table import Column

COST = ("params", "gflops", "cpu_ms", "cpu_ratio")


def _mean_std_cell(key, digits=4):
    def cell(row):
        mean, std = row.get(key), row.get(f"{key}_std")
        if mean is None:
            return "-"
        spread = "" if std is None or math.isnan(std) else f" ± {std:.{digits}f}"
        return f"{mean:.{digits}f}{spread}"
    return cell


def _seeds_cell(row):
    text = f"{row['seeds']}" if row["seeds"] == row["seeds_asked"] else f"{row['seeds']} of {row['seeds_asked']}"
    missing = [f"seed {s} failed" for s in row["seeds_failed"]] + [f"seed {s} not run" for s in row["seeds_not_run"]]
    return text + (f" ({', '.join(missing)})" if missing else "")


def _difference_cell(metric):
    def cell(row):
        d = row.get(f"d_{metric}")
        if d is None:
            return "-"
        return f"{d:+.4f} [{row[f'd_{metric}_low']:+.4f}, {row[f'd_{metric}_high']:+.4f}]"
    return cell


def _verdict_cell(metric):
    return lambda row: row.get(f"verdict_{metric}") or "-"


def schema(ci=0.95):
    """The sweep table's columns, in order (csv/json keys; markdown headers where the markdown shows them)."""
    level = f"{ci * 100:g}%"
    cols = [bench.column("model"), bench.column("cfg"), bench.column("attention"), *map(bench.column, COST),
            Column("seeds", "seeds", _seeds_cell, "runs", "finished runs of the variant (one per seed)"),
            Column("seeds_asked", unit="runs", source="--seeds"),
            Column("seeds_failed", source="seeds whose training or validation failed (log in DIR/logs)"),
            Column("seeds_not_run", source="seeds the sweep has not reached (stopped)")]
    for metric in METRICS:
        cols += [Column(metric, metric, _mean_std_cell(metric), "", f"the engine's {metric} (meta: engine) of each "
                        "run's best weights on the full validation split (its match record), mean over seeds"),
                 Column(f"{metric}_std", source="sample standard deviation over seeds (ddof=1)"),
                 Column(f"{metric}_per_seed", source="each finished seed's value, in seed order")]
    for key, header, stat in COCO:
        cols += [Column(key, header, _mean_std_cell(key, 3), "", f"pycocotools' {stat} (val.sh on COCO-format "
                        "data), mean over seeds", group="coco"),
                 Column(f"{key}_std", source="sample standard deviation over seeds", group="coco")]
    for metric in reversed(METRICS):
        cols += [Column(f"d_{metric}", f"Δ{metric} [{level} CI]", _difference_cell(metric), "",
                        f"mean over seeds of the variant minus the baseline's, full validation split"),
                 Column(f"d_{metric}_low", source=f"paired bootstrap over validation images: {level} percentile, low"),
                 Column(f"d_{metric}_high", source=f"paired bootstrap over validation images: {level} percentile, high"),
                 Column(f"verdict_{metric}", f"{metric} verdict", _verdict_cell(metric),
                        source="better: interval above 0; worse: below 0; within noise: contains 0", left=True)]
    return tuple(cols)


def markdown(rows, meta, ci):
    percent = f"{ci * 100:g}%"
    lines = [f"# Ablation sweep: {meta['baseline']} and variants, {meta['seeds']} seed(s) each", "",
             f"`{meta['command']}` — {meta['date']}; training flags: `{' '.join(meta['train_args']) or '-'}`; "
             f"validated on `{meta['data']}`.", "",
             table.markdown_table(schema(ci), rows), "",
             f"- params, GFLOPs, CPU ms, CPU ×: `scripts/bench.sh`'s measurements ({meta['cost']['imgsz']} px, "
             f"{meta['cost']['rounds']} interleaved rounds, {meta['cost']['threads']} threads, {meta['cost']['cpu']}"
             f"{'; --quick-bench, not representative' if meta['cost']['quick'] else ''}); params at "
             f"nc={meta['cost']['nc']}.",
             f"- mAP50, mAP50-95: the {meta.get('engine', FIRST_ENGINE)} engine's figures of each run's best weights on "
             "the whole validation split, mean ± sample std over the finished seeds (seeds column).",
             f"- Δ: variant minus baseline, each averaged over its seeds; in brackets the {percent} percentile "
             f"interval of a paired bootstrap: {meta['resamples']:,} resamples of the validation images (with "
             "replacement, seeded), the same resample applied to both models and every seed; seeds are not "
             "resampled. Verdict: better (interval above 0), worse (below 0), within noise (contains 0)."]
    lines += [f"- {note}" for note in meta["notes"]]
    return "\n".join(lines) + "\n"


def plot(rows, path, meta, ci):
    """mAP50-95 (mean ± std over seeds) against GFLOPs and against CPU latency; each variant's difference to the
    baseline with its interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(18, 5.5), dpi=110)
    scored = [r for r in rows if r.get("mAP50-95") is not None]
    for ax, key, label in ((axes[0], "gflops", f"GFLOPs at {meta['cost']['imgsz']} px"),
                           (axes[1], "cpu_ms", f"CPU latency, ms (batch 1, {meta['cost']['imgsz']} px)")):
        for r in (r for r in scored if r.get(key) is not None):
            base = r["model"] == meta["baseline"]
            std = r.get("mAP50-95_std")
            ax.errorbar([r[key]], [r["mAP50-95"]], yerr=[0 if std is None or math.isnan(std) else std],
                        fmt="*" if base else "o", color="black" if base else None, capsize=4, markersize=9)
            ax.annotate(r["model"], (r[key], r["mAP50-95"]), textcoords="offset points", xytext=(5, 5), fontsize=7)
        ax.set_xlabel(label)
        ax.set_ylabel(f"mAP50-95 (mean ± std over {meta['seeds']} seeds)")
        ax.grid(alpha=0.3)
    axes[0].set_title("accuracy vs GFLOPs", fontsize=10)
    axes[1].set_title("accuracy vs latency", fontsize=10)
    _difference_panel(axes[2], [r for r in rows if r.get("d_mAP50-95") is not None], meta, ci)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _difference_panel(ax, rows, meta, ci):
    for k, r in enumerate(rows):
        for dy, metric, marker in ((-0.12, "mAP50-95", "o"), (0.12, "mAP50", "s")):
            d = r[f"d_{metric}"]
            ax.errorbar([d], [k + dy], xerr=[[d - r[f"d_{metric}_low"]], [r[f"d_{metric}_high"] - d]], fmt=marker,
                        capsize=4, color="C0" if metric == "mAP50-95" else "C1", label=metric if k == 0 else None)
    ax.axvline(0, color="black", linewidth=1)
    ax.set_yticks(range(len(rows)), [r["model"] for r in rows], fontsize=8)
    ax.set_xlabel(f"difference to {meta['baseline']} ({ci * 100:g}% paired bootstrap interval)")
    ax.set_title("variant − baseline", fontsize=10)
    if rows:
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="x")


def write_all(rows, meta, out, ci):
    out = Path(out)
    cols = schema(ci)
    table.write_csv(cols, rows, out / "ablation.csv")
    (out / "ablation.md").write_text(markdown(rows, meta, ci), encoding="utf-8")
    (out / "ablation.json").write_text(table.json_document(cols, rows, meta), encoding="utf-8")
    plot(rows, out / "ablation.png", meta, ci)
    return [out / f"ablation.{ext}" for ext in ("md", "csv", "json", "png")]
