"""``scripts/bench.sh`` for ultralytics YAMLs: params, GFLOPs, CPU latency, training step, peak memory and mAP per
model, the baseline first (default model_yamls/ultralytics/yolo11n.yaml), written as the yolov5 table is.

Each figure is taken as for yolov5 (``yolo_attn.benchmarks.ablation``): GFLOPs by yolo-attn's own counter
(``benchmarks.flops``; ultralytics' thop figure is not used: in an environment that also has yolov5, yolov5's
``thop`` shadows ``ultralytics-thop`` and ultralytics reports 0), latency of the fused model in interleaved rounds,
the training step on the unfused model (its training output is a dict of tensors), CPU memory counted from tensor
storages. GPU figures are not taken for ultralytics models.
"""
import copy
import datetime
import sys
from pathlib import Path

import torch

from yolo_attn.benchmarks import ablation
from yolo_attn.benchmarks.flops import count_flops
from yolo_attn.benchmarks.latency import inference_fn, interleaved_times, peak_tensor_memory, summarize_times
from yolo_attn.engines.ultralytics.commands.common import engine_errors, start

BASELINE = "yolo11n.yaml"


def train_step_fn(model, x):
    """Forward in train mode and backward of the sum of every output tensor (ultralytics returns a dict)."""
    def run():
        out = model(x)
        tensors = [t for t in (out.values() if isinstance(out, dict) else out) for t in
                   (t if isinstance(t, (list, tuple)) else [t]) if isinstance(t, torch.Tensor)]
        sum(t.float().sum() for t in tensors).backward()
        model.zero_grad(set_to_none=True)

    return run


def build_variant(cfg, nc):
    from yolo_attn.engines.ultralytics.model import build_model, quiet

    torch.manual_seed(0)
    model = build_model(cfg, nc=nc)
    params = sum(p.numel() for p in model.parameters())
    infer = copy.deepcopy(model).eval()
    with quiet(), torch.no_grad():
        infer.fuse(verbose=False)
    for p in infer.parameters():
        p.requires_grad_(False)
    layers = ablation.attention_layers(model)
    return ablation.Variant(Path(str(cfg)).stem, Path(str(cfg)), ablation.attention_label(layers), layers, params,
                            model.train(), infer)


def measure(s):
    from yolo_attn.engines.ultralytics.yamls import resolve_cfg

    if s.threads:
        torch.set_num_threads(int(s.threads))
    cfgs = list(dict.fromkeys([resolve_cfg(s.baseline)] + [resolve_cfg(c) for c in s.cfgs]))
    variants = []
    for cfg in cfgs:
        print(f"building {Path(str(cfg)).name}", file=sys.stderr)
        variants.append(build_variant(cfg, s.nc))
    base = variants[0].name
    rows = {v.name: {"model": v.name, "cfg": str(v.cfg), "attention": v.attention, "params": v.params}
            for v in variants}
    for v in variants:
        report = count_flops(v.infer_model, s.imgsz)
        rows[v.name].update(gflops=report.total / 1e9, gflops_attention=report.attention / 1e9)
    x = torch.rand(1, 3, s.imgsz, s.imgsz, generator=torch.Generator().manual_seed(0))
    times = interleaved_times({v.name: inference_fn(v.infer_model, x) for v in variants}, s.rounds, s.warmup)
    for name, (ms, ratio) in summarize_times(times, base).items():
        rows[name].update(cpu_ms=ms, cpu_ratio=ratio)
    xt = torch.rand(s.train_batch, 3, s.train_imgsz, s.train_imgsz, generator=torch.Generator().manual_seed(1))
    if s.training_step:
        times = interleaved_times({v.name: train_step_fn(v.train_model, xt) for v in variants}, s.train_rounds,
                                  s.train_warmup)
        for name, (ms, ratio) in summarize_times(times, base).items():
            rows[name].update(train_ms=ms, train_ratio=ratio)
    for v in variants:
        r = rows[v.name]
        if s.memory:
            r.update(cpu_mem_infer_mb=peak_tensor_memory(inference_fn(v.infer_model, x)) / ablation.MB,
                     cpu_mem_train_mb=peak_tensor_memory(train_step_fn(v.train_model, xt)) / ablation.MB)
        r["cpu_goal"] = v.cpu_goal
        r["cpu_goal_met"] = None if r["cpu_goal"] is None else bool(r["cpu_ratio"] <= r["cpu_goal"])
        r["train_goal_met"] = None if v.name == base or "train_ratio" not in r else bool(
            r["train_ratio"] <= ablation.TRAIN_GOAL)
    notes = ["ultralytics engine: yolov5 GFLOPs column not applicable; no GPU figures"]
    if s.runs:
        runs = ablation.find_runs(s.runs, variants)
        for name, entry in runs.items():
            rows[name].update({k: entry[k] for k in ("mAP50", "mAP50-95", "run")})
        missing = [v.name for v in variants if v.name not in runs]
        if missing:
            notes.append(f"no run found in {s.runs} for: {', '.join(missing)}")
    meta = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "command": s.command, "quick": s.quick,
            "cpu": ablation.cpu_name(), "threads": torch.get_num_threads(), "torch": torch.__version__, "gpu": None,
            "imgsz": s.imgsz, "rounds": s.rounds, "warmup": s.warmup, "train_imgsz": s.train_imgsz,
            "train_batch": s.train_batch, "train_rounds": s.train_rounds, "channels_last": False,
            "fold_attn_bn": False, "nc": s.nc, "baseline": base, "notes": notes}
    return [rows[v.name] for v in variants], meta


@engine_errors
def main(opt, settings):
    """bench.sh's options and settings (``cli.bench``), for ultralytics YAMLs."""
    start([])
    if settings.baseline == ablation.BASELINE:  # the yolov5 default: compare with the ultralytics baseline instead
        settings.baseline = BASELINE
    rows, meta = measure(settings)
    files = ablation.write_all(rows, meta, opt.out)
    print(ablation.markdown(rows, meta))
    print("wrote " + ", ".join(str(f) for f in files), file=sys.stderr)
