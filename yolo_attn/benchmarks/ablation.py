"""The ablation table: params, GFLOPs, latency, training-step time, peak memory, mAP per model YAML, for the models of
one engine (what differs per engine is asked of its ``Engine``: the YAMLs, fusing, and which extra figures its models
have, ``Engine.bench_extras``). The one measuring path of ``scripts/bench.sh`` and of the sweep's cost columns.

  scripts/bench.sh [--cfgs A.yaml B.yaml ...] [--imgsz 640] [--device auto|cpu|0] [--runs runs/train] --out DIR

Every figure is taken in one process, the baseline (model_yamls/yolov5s.yaml) and the variants side by side:

- params: of the model as trained (before fusing), nc=80 unless --nc.
- GFLOPs: at the real input size (1×3×imgsz×imgsz) on the fused eval model, every aten call counted by
  the rule in ``yolo_attn.benchmarks.flops`` (convs/matmuls 2·MACs, element-wise 1 per output element,
  reductions 1 per input element, ...); the attention modules' share, and yolov5's own thop figure for
  comparison.
- CPU latency: fused (yolov5's ``fuse()``), eval, ``torch.inference_mode``, batch 1, interleaved rounds
  (``yolo_attn.benchmarks.latency``): median ms and the median paired ratio to the baseline.
- training step: forward in train mode + backward of the sum of the outputs, unfused, batch
  ``--train-batch`` at ``--train-imgsz``, interleaved likewise: ratio to the baseline.
- peak memory: tensor bytes alive at once beyond the weights (CPU: counted from tensor storages; GPU:
  ``torch.cuda.max_memory_allocated``), for the inference call and for the training step.
- mAP50 / mAP50-95: from run folders (``--runs DIR``: DIR/*/summary.json, matched by the run's cfg).
- GPU (when one is available, or ``--device 0``): fp16 latency and ratio, mixed-precision training-step
  ratio and peak memory, with the device named.
"""
import copy
import dataclasses
import datetime
import json
import platform
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch

from yolo_attn import engines
from yolo_attn.benchmarks import table
from yolo_attn.benchmarks.flops import count_flops, yolov5_gflops
from yolo_attn.benchmarks.table import Column
from yolo_attn.benchmarks.latency import (inference_fn, interleaved_times, peak_cuda_memory, peak_tensor_memory,
                                          summarize_times, train_step_fn)
from yolo_attn.registry import find_layer

TRAIN_GOAL = 1.15
MB = 2 ** 20

FULL = dict(imgsz=640, rounds=30, warmup=3, train_imgsz=320, train_batch=2, train_rounds=10, train_warmup=2)
QUICK = dict(imgsz=128, rounds=3, warmup=1, train_imgsz=64, train_batch=2, train_rounds=2, train_warmup=1)



@dataclass
class Settings:
    cfgs: list = field(default_factory=list)
    baseline: str = None  # None: the engine's bench_baseline
    imgsz: int = FULL["imgsz"]
    rounds: int = FULL["rounds"]
    warmup: int = FULL["warmup"]
    train_imgsz: int = FULL["train_imgsz"]
    train_batch: int = FULL["train_batch"]
    train_rounds: int = FULL["train_rounds"]
    train_warmup: int = FULL["train_warmup"]
    nc: int = 80
    device: str = "auto"
    runs: str = None
    threads: int = None
    channels_last: bool = False
    fold_attn_bn: bool = False
    quick: bool = False
    command: str = ""
    training_step: bool = True  # the training-step time and ratio (train × columns)
    memory: bool = True  # the peak memory columns


@dataclass
class Variant:
    name: str
    cfg: Path
    attention: str
    layers: dict
    params: int
    train_model: torch.nn.Module
    infer_model: torch.nn.Module

    @property
    def cpu_goal(self):
        """The CPU latency goal: the loosest of its layers' goals; None if any layer has none (or no layers)."""
        goals = [find_layer(name).cpu_goal for name in self.layers]
        if not goals or None in goals:
            return None
        return max(goals)


def _log(msg):
    print(msg, file=sys.stderr, flush=True)


def attention_layers(model):
    """{'CBAM': 3}: the registered attention layers among the rows of a detection model, with their counts."""
    from yolo_attn.registry import registered_layers

    specs = {spec.cls: spec for spec in registered_layers()}
    counts = {}
    for m in getattr(model, "model", model).children():
        spec = specs.get(type(m))
        if spec:
            counts[spec.name] = counts.get(spec.name, 0) + 1
    return counts


def attention_label(layers):
    return ", ".join(f"{k}×{v}" for k, v in layers.items()) or "-"


def build_variant(cfg, nc=80, fold_attn_bn=False, name=None, engine=None):
    """The model of ``cfg`` (a YAML path or name, or a model dict with ``name``) as its engine (``engines.of(cfg)``
    unless given) trains it (train mode) and a fused eval copy for inference."""
    engine = engine or engines.of(cfg)
    torch.manual_seed(0)
    model = engine.build_model(cfg, nc=nc)
    params = sum(p.numel() for p in model.parameters())
    infer = copy.deepcopy(model).eval()
    with torch.no_grad():
        engine.fuse(infer)
        if fold_attn_bn:
            from yolo_attn.benchmarks.fold import fold_attention_bn

            fold_attention_bn(infer)
    for p in infer.parameters():
        p.requires_grad_(False)
    layers = attention_layers(model)
    cfg = Path(name or "") if isinstance(cfg, dict) else Path(str(cfg))
    return Variant(name or cfg.stem, cfg, attention_label(layers), layers, params, model.train(), infer)


def flop_report(variant, imgsz):
    """The FLOPs of one 1×3×imgsz×imgsz image through the variant's fused eval model, every operator counted
    (``flops.count_flops``): the one FLOP figure of the bench, the sweep and the layer table of docs/layers.md."""
    return count_flops(variant.infer_model, imgsz)


# ------------------------------------------------------------------ run folders


def _run_cfg(summary_path, summary):
    cfg = summary.get("cfg")
    if cfg:
        return cfg
    opt = summary_path.parent / "opt.yaml"
    if opt.is_file():
        import yaml

        try:
            return (yaml.safe_load(opt.read_text()) or {}).get("cfg") or None
        except yaml.YAMLError:
            return None
    return None


def find_runs(runs_dir, variants):
    """{variant name: {'mAP50', 'mAP50-95', 'run', 'data', 'epochs'}} from DIR/*/summary.json (and DIR/*/*/).

    A run belongs to a variant when its cfg (summary.json's 'cfg', else the run's opt.yaml) has the variant's
    YAML file name; a run that names no cfg is matched by its folder name = the YAML's stem.
    Several runs for one variant: the most recent summary.json wins.
    """
    root = Path(runs_dir)
    found = sorted(set(root.glob("*/summary.json")) | set(root.glob("*/*/summary.json")))
    best = {}
    for path in found:
        try:
            summary = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if "mAP50" not in summary or "mAP50-95" not in summary:
            continue
        cfg = _run_cfg(path, summary)
        for v in variants:
            if cfg:
                match = Path(str(cfg)).name == v.cfg.name
            else:
                match = path.parent.name == v.name
            if not match:
                continue
            key = path.stat().st_mtime
            if v.name not in best or key > best[v.name][0]:
                best[v.name] = (key, {"mAP50": float(summary["mAP50"]), "mAP50-95": float(summary["mAP50-95"]),
                                      "run": str(path.parent), "data": summary.get("data"),
                                      "epochs": summary.get("epochs")})
    return {name: entry for name, (_, entry) in best.items()}


# ------------------------------------------------------------------ measuring


def _gpu_device(device):
    """torch.device for the GPU figures, or None for CPU only; '0' without a GPU is a usage error."""
    from yolo_attn.errors import UsageError

    d = str(device).strip().lower()
    if d in ("cpu", ""):
        return None
    if d == "auto":
        return torch.device("cuda:0") if torch.cuda.is_available() else None
    if not torch.cuda.is_available():
        raise UsageError(f"--device {device}: no CUDA GPU is available here; use --device cpu (or auto)")
    index = d.split(",")[0].replace("cuda:", "")
    if not index.isdigit() or int(index) >= torch.cuda.device_count():
        raise UsageError(f"--device {device}: not a GPU index here (found {torch.cuda.device_count()} GPU(s))")
    return torch.device(f"cuda:{int(index)}")


def cpu_name():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _input(batch, imgsz, device="cpu", dtype=torch.float32, channels_last=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, 3, imgsz, imgsz, generator=g).to(device=device, dtype=dtype)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def measure(settings, engine):
    """Build every model of ``engine``, measure it, return (rows, meta)."""
    extras = engine.bench_extras
    s = dataclasses.replace(settings, channels_last=settings.channels_last and "channels_last" in extras,
                            fold_attn_bn=settings.fold_attn_bn and "fold_attn_bn" in extras)
    if s.threads:
        torch.set_num_threads(int(s.threads))
    gpu = _gpu_device(s.device) if "gpu" in extras else None
    with engine.usage_errors():
        variants = build_variants(s, engine)
    base = variants[0].name
    rows = {v.name: {"model": v.name, "cfg": str(v.cfg), "attention": v.attention, "params": v.params}
            for v in variants}
    _count_flops(variants, rows, s, "thop_gflops" in extras)
    x = _input(1, s.imgsz, channels_last=s.channels_last)
    _log(f"CPU inference: {s.rounds} interleaved rounds × {len(variants)} models, batch 1, {s.imgsz} px, "
         f"{torch.get_num_threads()} threads")
    times = interleaved_times({v.name: inference_fn(v.infer_model, x) for v in variants}, s.rounds, s.warmup)
    for name, (ms, ratio) in summarize_times(times, base).items():
        rows[name].update(cpu_ms=ms, cpu_ratio=ratio)
    xt = _input(s.train_batch, s.train_imgsz)
    if s.training_step:
        _log(f"CPU training step: {s.train_rounds} interleaved rounds, batch {s.train_batch}, {s.train_imgsz} px")
        times = interleaved_times({v.name: train_step_fn(v.train_model, xt) for v in variants}, s.train_rounds,
                                  s.train_warmup)
        for name, (ms, ratio) in summarize_times(times, base).items():
            rows[name].update(train_ms=ms, train_ratio=ratio)
    if s.memory:
        _log("peak memory")
        for v in variants:
            rows[v.name].update(cpu_mem_infer_mb=peak_tensor_memory(inference_fn(v.infer_model, x)) / MB,
                                cpu_mem_train_mb=peak_tensor_memory(train_step_fn(v.train_model, xt)) / MB)

    gpu_name = None
    if gpu is not None:
        gpu_name = torch.cuda.get_device_name(gpu)
        _log(f"GPU ({gpu_name}): fp16 inference and mixed-precision training step")
        _measure_gpu(variants, rows, base, gpu, s)
    goal_rows(variants, rows, base)

    lacking = [what for key, what in (("thop_gflops", "yolov5 GFLOPs column not applicable"),
                                      ("gpu", "no GPU figures")) if key not in extras]
    notes = [f"{engine.name} engine: " + "; ".join(lacking)] if lacking else []
    if s.runs:
        runs = find_runs(s.runs, variants)
        for name, entry in runs.items():
            rows[name].update({k: entry[k] for k in ("mAP50", "mAP50-95", "run")})
        settings_seen = {(str(e.get("data")), str(e.get("epochs"))) for e in runs.values()}
        if len(settings_seen) > 1:
            notes.append("mAP runs differ in data or epochs: " + "; ".join(
                f"{n}: data={e.get('data')}, epochs={e.get('epochs')}" for n, e in runs.items()))
        missing = [v.name for v in variants if v.name not in runs]
        if missing:
            notes.append(f"no run found in {s.runs} for: {', '.join(missing)}")
    uncounted = sorted({op for r in rows.values() for op in r.pop("_uncounted", {})})
    if uncounted:
        notes.append("operators counted as 0 FLOPs (no rule): " + ", ".join(uncounted))

    meta = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": s.command,
        "quick": s.quick,
        "cpu": cpu_name(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "gpu": gpu_name,
        "imgsz": s.imgsz, "rounds": s.rounds, "warmup": s.warmup,
        "train_imgsz": s.train_imgsz, "train_batch": s.train_batch, "train_rounds": s.train_rounds,
        "channels_last": s.channels_last, "fold_attn_bn": s.fold_attn_bn, "nc": s.nc,
        "baseline": base, "notes": notes,
    }
    return [rows[v.name] for v in variants], meta


def goal_rows(variants, rows, base):
    """Each row's latency goal (the loosest of its layers') and whether the measured ratios meet the goals."""
    for v in variants:
        r = rows[v.name]
        r["cpu_goal"] = v.cpu_goal
        r["cpu_goal_met"] = None if v.cpu_goal is None else bool(r["cpu_ratio"] <= v.cpu_goal)
        r["train_goal_met"] = None if v.name == base or "train_ratio" not in r else bool(r["train_ratio"] <= TRAIN_GOAL)


def build_variants(s, engine):
    """The baseline and the variants of settings ``s``, built by ``engine`` (baseline first)."""
    variants = []
    for cfg in engine.bench_cfgs(s.cfgs, s.baseline or engine.bench_baseline):
        _log(f"building {Path(str(cfg)).name}")
        variants.append(build_variant(cfg, s.nc, s.fold_attn_bn, engine=engine))
    if s.channels_last:
        for v in variants:
            v.infer_model.to(memory_format=torch.channels_last)
    return variants


def _count_flops(variants, rows, s, thop_gflops):
    _log(f"counting FLOPs at {s.imgsz} px")
    for v in variants:
        report = flop_report(v, s.imgsz)
        rows[v.name].update(gflops=report.total / 1e9, gflops_attention=report.attention / 1e9,
                            _uncounted=dict(report.uncounted))
        if thop_gflops:
            rows[v.name]["gflops_yolov5"] = yolov5_gflops(v.infer_model, s.imgsz)


def _measure_gpu(variants, rows, base, device, s):
    sync = lambda: torch.cuda.synchronize(device)  # noqa: E731
    infer = {v.name: copy.deepcopy(v.infer_model).to(device).half() for v in variants}
    if s.channels_last:
        for m in infer.values():
            m.to(memory_format=torch.channels_last)
    x = _input(1, s.imgsz, device, torch.float16, s.channels_last)
    times = interleaved_times({n: inference_fn(m, x) for n, m in infer.items()}, s.rounds, max(s.warmup, 10), sync)
    for name, (ms, ratio) in summarize_times(times, base).items():
        rows[name].update(gpu_ms=ms, gpu_ratio=ratio)
    for n, m in infer.items():
        rows[n]["gpu_mem_infer_mb"] = peak_cuda_memory(inference_fn(m, x), device) / MB
    del infer
    train = {v.name: copy.deepcopy(v.train_model).to(device) for v in variants}
    xt = _input(s.train_batch, s.train_imgsz, device)
    times = interleaved_times({n: train_step_fn(m, xt, autocast_device="cuda") for n, m in train.items()},
                              s.train_rounds, max(s.train_warmup, 3), sync)
    for name, (_, ratio) in summarize_times(times, base).items():
        rows[name]["gpu_train_ratio"] = ratio
    del train
    torch.cuda.empty_cache()


# ------------------------------------------------------------------ writing


def _goal_cell(row):
    goal = row.get("cpu_goal")
    if goal is None:
        return "-"
    return f"≤{goal:.2f} {'✓' if row.get('cpu_goal_met') else '✗'}"


def _train_cell(row):
    ratio = row.get("train_ratio")
    return "-" if ratio is None else f"{ratio:.2f}" + (" ✗" if row.get("train_goal_met") is False else "")


_INFER = "fused eval model, inference_mode, batch 1 at imgsz, interleaved rounds (latency.interleaved_times)"
_TRAIN = "forward + backward of the summed outputs, unfused, train batch at train imgsz, interleaved rounds"
# The table's columns, in order: csv and json use the keys, the markdown the headers (None: not in the markdown).
SCHEMA = (
    Column("model", "model", lambda r: f"`{r['model']}`", source="the model YAML's file stem", left=True),
    Column("cfg", source="the model YAML's path"),
    Column("attention", "attention", source="registered attention layers among the model's rows, with counts",
           left=True),
    Column("params", "params", ",", "parameters", "the model as trained (before fusing), nc classes"),
    Column("gflops", "GFLOPs", ".2f", "GFLOPs", "flops.count_flops: every operator of the fused model, 1×3×imgsz²"),
    Column("gflops_attention", "attn GFLOPs", ".3f", "GFLOPs", "flops.count_flops: inside the attention modules"),
    Column("gflops_yolov5", "yolov5 GFLOPs", ".2f", "GFLOPs", "flops.yolov5_gflops: thop at 32 px × (imgsz/32)²"),
    Column("cpu_ms", "CPU ms", ".1f", "ms", "median time of one call: " + _INFER),
    Column("cpu_ratio", "CPU ×", ".3f", "× baseline", "median per-round ratio to the baseline: " + _INFER),
    Column("cpu_goal", "goal", _goal_cell, "× baseline", "the layers' declared cpu_goal (registry), loosest"),
    Column("cpu_goal_met", source="cpu_ratio <= cpu_goal"),
    Column("train_ms", unit="ms", source="median time of one training step: " + _TRAIN),
    Column("train_ratio", "train ×", _train_cell, "× baseline", "median per-round ratio to the baseline: " + _TRAIN),
    Column("train_goal_met", source=f"train_ratio <= {TRAIN_GOAL}"),
    Column("cpu_mem_infer_mb", "peak MB infer", ".1f", "MiB", "latency.peak_tensor_memory of the inference call"),
    Column("cpu_mem_train_mb", "peak MB train", ".1f", "MiB", "latency.peak_tensor_memory of the training step"),
    Column("mAP50", "mAP50", ".4f", "", "the run's summary.json (--runs)"),
    Column("mAP50-95", "mAP50-95", ".4f", "", "the run's summary.json (--runs)"),
    Column("run", source="the run folder the mAPs come from (--runs)"),
    Column("gpu_ms", "GPU ms", ".2f", "ms", "fp16 inference on the GPU, interleaved rounds", group="gpu"),
    Column("gpu_ratio", "GPU ×", ".3f", "× baseline", "per-round ratio of the GPU inference", group="gpu"),
    Column("gpu_train_ratio", "GPU train ×", ".2f", "× baseline", "mixed-precision training step ratio", group="gpu"),
    Column("gpu_mem_infer_mb", "GPU MB", ".1f", "MiB", "torch.cuda.max_memory_allocated in the inference call",
           group="gpu"),
)
CPU_COLUMNS = [c.key for c in SCHEMA if not c.group]
GPU_COLUMNS = [c.key for c in SCHEMA if c.group == "gpu"]


def column(key):
    """The declaration of one column (for tables that show some of these figures, e.g. the sweep's)."""
    return next(c for c in SCHEMA if c.key == key)


def columns(rows):
    return [c.key for c in table.visible(SCHEMA, rows)]


def write_csv(rows, path):
    table.write_csv(SCHEMA, rows, path)


def markdown_table(rows):
    return table.markdown_table(SCHEMA, rows)


def goal_note():
    """The latency goals as declared by the layers (``cpu_goal``), grouped by goal."""
    from yolo_attn.registry import registered_layers

    by_goal = {}
    for spec in registered_layers():
        if spec.cpu_goal is not None:
            by_goal.setdefault(spec.cpu_goal, []).append(spec.name)
    return ", ".join(f"≤{goal:.2f} for {', '.join(names)}" for goal, names in sorted(by_goal.items()))


def markdown(rows, meta):
    quick = " **--quick: few rounds at a small size, not representative**" if meta.get("quick") else ""
    gpu = f"; GPU: {meta['gpu']} (fp16 inference, mixed-precision training step)" if meta.get("gpu") else ""
    extras = [t for t, on in (("channels-last", meta.get("channels_last")),
                              ("attention BN folded", meta.get("fold_attn_bn"))) if on]
    lines = [
        f"# Ablation: {meta['baseline']} and variants{quick}", "",
        f"`{meta['command']}` — {meta['date']}; CPU: {meta['cpu']}, {meta['threads']} threads; torch {meta['torch']}"
        f"{gpu}.", "",
        markdown_table(rows), "",
        f"- params: as trained (nc={meta['nc']}). GFLOPs: fused model, 1×3×{meta['imgsz']}×{meta['imgsz']}, every "
        "operator counted (convs 2·MACs + bias, element-wise and activations 1 per output element, reductions 1 per "
        "input element, BN 2 per element; `yolo_attn/benchmarks/flops.py`); attn GFLOPs: the attention modules' "
        "share; yolov5 GFLOPs: yolov5's own figure (thop at 32 px × (size/32)², no attention ops).",
        f"- CPU ms: fused{', ' + ', '.join(extras) if extras else ''}, eval, inference_mode, batch 1, "
        f"{meta['imgsz']} px, median of {meta['rounds']} rounds interleaved with the baseline in one process; CPU ×: "
        f"median of the per-round ratios to `{meta['baseline']}`. Goal (issue #6, declared by the layers): "
        f"{goal_note()}; '-': no latency goal set for that layer.",
        f"- train ×: forward + backward of the summed outputs, unfused, batch {meta['train_batch']} at "
        f"{meta['train_imgsz']} px, {meta['train_rounds']} interleaved rounds; goal ≤{TRAIN_GOAL:.2f} "
        "(✗ marks a miss).",
        "- peak MB: tensor memory alive at once beyond the weights: activations in the inference call; activations, "
        "saved tensors and gradients in the training step (CPU: counted from tensor storages, "
        "`yolo_attn/benchmarks/latency.py`; GPU: torch.cuda.max_memory_allocated).",
    ]
    lines += [f"- {n}" for n in meta.get("notes", [])]
    return "\n".join(lines) + "\n"


def plot(rows, path, meta):
    """CPU latency vs GFLOPs for every model; beside it, latency ratio vs mAP50-95 for the models with a run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with_map = [r for r in rows if r.get("mAP50-95") is not None]
    fig, axes = plt.subplots(1, 2 if with_map else 1, figsize=(13 if with_map else 7, 5), dpi=120, squeeze=False)
    panels = [(axes[0][0], [(r["gflops"], r["cpu_ms"], r["model"]) for r in rows],
               f"GFLOPs at {meta['imgsz']} px (attention ops included)",
               f"CPU latency, ms (batch 1, threads={meta['threads']})", "latency vs GFLOPs")]
    if with_map:
        panels.append((axes[0][1], [(r["cpu_ratio"], r["mAP50-95"], r["model"]) for r in with_map],
                       f"CPU latency / {meta['baseline']}", "mAP50-95", "accuracy vs latency"))
    for ax, pts, xlabel, ylabel, title in panels:
        for x, y, name in pts:
            base = name == meta["baseline"]
            ax.scatter([x], [y], s=60 if base else 30, marker="*" if base else "o", color="black" if base else None)
            ax.annotate(name, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title + (" (--quick, not representative)" if meta.get("quick") else ""), fontsize=10)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_all(rows, meta, out):
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(rows, out / "ablation.csv")
    (out / "ablation.md").write_text(markdown(rows, meta))
    (out / "ablation.json").write_text(table.json_document(SCHEMA, rows, meta))
    plot(rows, out / "ablation.png", meta)
    return [out / n for n in ("ablation.csv", "ablation.md", "ablation.png", "ablation.json")]
