"""DDP on this machine: step time of 1 vs N processes at the same total batch, the synchronisation overhead, and the
peak RAM of each training process with --cache ram, --cache disk and no cache.

  python -m yolo_attn.benchmarks.ddp [--nproc 2] [--cfg yolov5s-cbam.yaml] [--imgsz 160] [--batch 16]
                                     [--ram-images 400] [--ram-imgsz 320] [--skip-ram]

Step time: forward, loss (yolov5's ComputeLoss), backward and SGD step on random images with random boxes, the median
of --steps after 2 warm-up steps. One process uses all --threads; each of N processes (gloo, DDP as yolov5 wraps
it) gets threads/N and batch/N, so both use the same cores on the same total batch. The overhead is the N-process
step minus the same step under DDP's ``no_sync`` (no gradient all-reduce).
Peak RAM: one epoch of real training (``yolo_attn.cli.train`` under torchrun, --workers 0, no validation until the
end) on a generated shapes set of --ram-images images; each rank reports its peak resident set size (ru_maxrss) at
exit. With --cache ram every process holds the whole resized training set.
"""
import argparse
import atexit
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

RSS_DIR = "YOLO_ATTN_BENCH_RSS_DIR"


def _record_peak_rss():
    """Imported in every rank (``--import yolo_attn.benchmarks.ddp``): write this process's peak RSS at exit."""
    folder = os.environ.get(RSS_DIR)
    if folder:
        atexit.register(lambda: Path(folder, f"rank{os.environ.get('RANK', 0)}.json").write_text(
            json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})))


_record_peak_rss()


# -------------------------------------------------------------------------------------------------- step time
def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _batch(n, imgsz, seed):
    import torch

    g = torch.Generator().manual_seed(seed)
    imgs = torch.rand(n, 3, imgsz, imgsz, generator=g)
    centres, sizes = torch.rand(n * 4, 2, generator=g) * 0.6 + 0.2, torch.rand(n * 4, 2, generator=g) * 0.2 + 0.05
    boxes = torch.cat([centres, sizes], 1)
    labels = torch.cat([torch.arange(n).repeat_interleave(4)[:, None].float(),
                        torch.randint(0, 4, (n * 4, 1), generator=g).float(), boxes], 1)
    return imgs, labels


def _step_worker(rank, world, port, args, out):
    import torch
    import torch.distributed as dist

    from yolo_attn import engines

    torch.set_num_threads(max(1, args["threads"] // world))
    if world > 1:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        dist.init_process_group("gloo", rank=rank, world_size=world)
    engine = engines.of(args["cfg"])
    torch.manual_seed(0)
    model = engine.build_model(engine.resolve_cfg(args["cfg"]), nc=4).train()
    compute_loss = engine.loss_fn(model)
    net = torch.nn.parallel.DistributedDataParallel(model, static_graph=True) if world > 1 else model
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    imgs, targets = _batch(args["batch"] // world, args["imgsz"], rank)
    result = {}
    for mode in (("ddp", "no_sync") if world > 1 else ("single",)):
        times = []
        for _ in range(2 + args["steps"]):
            if world > 1:
                dist.barrier()
            start = time.perf_counter()
            with net.no_sync() if mode == "no_sync" else nullcontext():
                loss = compute_loss(net(imgs), targets)[0] * world
                loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            times.append(time.perf_counter() - start)
        result[mode] = sorted(times[2:])[len(times[2:]) // 2]
    Path(out, f"steps{world}-{rank}.json").write_text(json.dumps(result))
    if world > 1:
        dist.destroy_process_group()


def step_times(args, world, folder):
    import torch.multiprocessing as mp

    if world == 1:
        _step_worker(0, 1, 0, args, folder)
    else:
        mp.spawn(_step_worker, args=(world, _free_port(), args, folder), nprocs=world, join=True)
    ranks = [json.loads(Path(folder, f"steps{world}-{r}.json").read_text()) for r in range(world)]
    return {k: max(r[k] for r in ranks) for k in ranks[0]}  # a step ends when the slowest rank's does


# --------------------------------------------------------------------------------------------------- peak RAM
def _train(folder, nproc, cache, data, args):
    rss = Path(folder) / f"rss-{nproc}-{cache}"
    rss.mkdir()
    launch = ["--nproc-per-node", str(nproc)] if nproc > 1 else []
    argv = [sys.executable, "-m", "yolo_attn.cli.train", *launch, "--cfg", args.cfg, "--data", str(data), "--epochs",
            "1", "--imgsz", str(args.ram_imgsz), "--batch-size", str(args.batch), "--workers", "0", "--noval",
            "--noplots", "--device", "cpu", "--name", f"{nproc}-{cache}", "--import", "yolo_attn.benchmarks.ddp",
            *(["--cache", cache] if cache != "none" else [])]
    env = dict(os.environ, **{RSS_DIR: str(rss)}, OMP_NUM_THREADS=str(max(1, args.threads // nproc)))
    start = time.time()
    r = subprocess.run(argv, cwd=folder, capture_output=True, text=True, env=env)
    if r.returncode:
        raise SystemExit(f"training with {nproc} process(es), cache {cache} failed:\n{(r.stdout + r.stderr)[-3000:]}")
    peaks = [json.loads(p.read_text())["peak_rss_mb"] for p in sorted(rss.glob("rank*.json"))]
    return peaks, time.time() - start


def peak_ram(args, folder):
    from yolo_attn.datasets import shapes

    data = shapes.generate(Path(folder) / "shapes", train=args.ram_images, val=20, size=args.ram_imgsz, seed=3)
    runs = {}
    for nproc, cache in ((1, "ram"), (args.nproc, "none"), (args.nproc, "ram"), (args.nproc, "disk")):
        runs[(nproc, cache)] = _train(folder, nproc, cache, data, args)
        peaks, seconds = runs[(nproc, cache)]
        print(f"  {nproc} process(es), cache {cache:<4}: peak RSS per process "
              f"{', '.join(f'{p:.0f}' for p in peaks)} MB (total {sum(peaks):.0f} MB); run {seconds:.0f} s", flush=True)
    cached_mb = args.ram_images * args.ram_imgsz ** 2 * 3 / 2 ** 20
    print(f"  (the training set resized to {args.ram_imgsz} px is {cached_mb:.0f} MB of pixels; --cache ram holds it "
          f"in every process)")
    return runs


def main(argv=None):
    import torch

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nproc", type=int, default=2)
    p.add_argument("--cfg", default="yolov5s-cbam.yaml")
    p.add_argument("--imgsz", type=int, default=160)
    p.add_argument("--batch", type=int, default=16, help="total batch (divided among the processes)")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="CPU threads in all (default: all cores)")
    p.add_argument("--ram-images", type=int, default=400)
    p.add_argument("--ram-imgsz", type=int, default=320)
    p.add_argument("--skip-ram", action="store_true")
    args = p.parse_args(argv)
    print(f"{os.cpu_count()} CPU cores, torch {torch.__version__}, CUDA {'yes' if torch.cuda.is_available() else 'no'}"
          f"; {args.cfg} at {args.imgsz} px, total batch {args.batch}, {args.threads} threads in all")
    step_args = dict(cfg=args.cfg, imgsz=args.imgsz, batch=args.batch, steps=args.steps, threads=args.threads)
    with tempfile.TemporaryDirectory() as folder:
        one = step_times(step_args, 1, folder)["single"]
        many = step_times(step_args, args.nproc, folder)
        sync = many["ddp"] - many["no_sync"]
        print(f"step time: 1 process {one * 1000:.0f} ms; {args.nproc} processes (DDP, gloo) "
              f"{many['ddp'] * 1000:.0f} ms ({one / many['ddp']:.2f}x); synchronisation {1000 * sync:.0f} ms per step "
              f"({sync / many['ddp']:.0%} of it)", flush=True)
        if not args.skip_ram:
            print(f"peak RAM, one epoch of {args.cfg} on {args.ram_images} images at {args.ram_imgsz} px, "
                  f"batch {args.batch}, --workers 0:", flush=True)
            peak_ram(args, folder)


if __name__ == "__main__":
    main()
