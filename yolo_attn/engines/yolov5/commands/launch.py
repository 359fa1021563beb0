"""Training on several processes, GPUs or nodes: yolov5's own DDP under torchrun (``torch.distributed.run``).

Launcher side (``train.sh --nproc-per-node N ...``): the options are checked once, here, then this process becomes
torchrun's agent (``python -m yolo_attn.engines.yolov5.commands.launch TORCHRUN_ARGS``; ``python -m
yolo_attn.cli.launch`` runs the same), which starts N copies of
``python -m yolo_attn.cli.train`` with the same arguments minus the launch options and exits with their status.
Rank side (every process torchrun starts, also under a plain ``torchrun -m yolo_attn.cli.train``): the user's
``--import`` modules, output on rank 0 only, the process group (``commands/train.py``: rank 0 prepares the one
run folder, the other ranks take its files).

A rank that dies: torchrun's agent notices within its monitor interval (0.1 s), stops the node's other ranks
(SIGTERM, then SIGKILL) and exits non-zero. Ranks on other nodes fail in their next collective when the dead peer's
connection closes, at the latest after the process-group timeout (``--ddp-timeout``, 1800 s by default).
"""
import importlib
import os
import socket
import sys
import warnings
from pathlib import Path

from yolo_attn.errors import UsageError

LAUNCH_OPTIONS = ("--nproc-per-node", "--nnodes", "--node-rank", "--master-addr", "--master-port")
DEFAULT_PORT = 29500  # torchrun's
MAX_DDP_TIMEOUT = 7 * 24 * 3600  # seconds; a larger one overflows torch's timedelta (and would never end anyway)


def add_options(parser):
    g = parser.add_argument_group("several processes, GPUs or nodes (yolov5's DDP under torchrun)")
    g.add_argument("--nproc-per-node", type=int, metavar="N", help="processes on this node: one per GPU (or N CPU "
                   "processes with --device cpu); --batch-size is the total over all processes")
    g.add_argument("--nnodes", type=int, default=1, metavar="M", help="number of nodes (default 1)")
    g.add_argument("--node-rank", type=int, default=0, metavar="R", help="this node's index, 0..M-1")
    g.add_argument("--master-addr", metavar="A", help="address of node 0 (needed with --nnodes > 1)")
    g.add_argument("--master-port", type=int, metavar="P",
                   help=f"free port on node 0 (default: any free port on one node, {DEFAULT_PORT} on several)")
    g.add_argument("--ddp-timeout", type=int, default=1800, metavar="S",
                   help="seconds a rank waits for the others in a collective before failing (default 1800)")
    parser.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                        help="import MODULE first, in every process (e.g. one that registers your own layers); "
                             "repeatable")


def import_modules(names):
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as e:
            raise UsageError(f"--import {name}: cannot import it ({e}). Give a module name importable from "
                             f"{Path.cwd()} or your PYTHONPATH, e.g. --import my_layers for ./my_layers.py") from None


def wanted(opt):
    """Whether this call should launch torchrun (rather than train, or be one of its ranks)."""
    from yolo_attn.engines.yolov5 import ddp

    return opt.nproc_per_node is not None and not ddp.distributed()


# ------------------------------------------------------------------------------------------------ launcher side
def rank_argv(argv):
    """``argv`` without the launch options (``--opt value`` and ``--opt=value``)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in LAUNCH_OPTIONS:
            skip = True
        elif not arg.startswith(tuple(f"{o}=" for o in LAUNCH_OPTIONS)):
            out.append(arg)
    return out


def check_topology(opt):
    if opt.nproc_per_node < 1:
        raise UsageError(f"--nproc-per-node must be at least 1, got {opt.nproc_per_node}")
    if opt.nnodes < 1 or not 0 <= opt.node_rank < opt.nnodes:
        raise UsageError(f"--node-rank must be in 0..{opt.nnodes - 1} (--nnodes {opt.nnodes}), got {opt.node_rank}")
    if opt.nnodes > 1 and not opt.master_addr:
        raise UsageError("--nnodes > 1 needs --master-addr: the address of node 0, the same on every node "
                         "(and the same --master-port)")
    check_timeout(opt.ddp_timeout)
    if opt.master_port is not None and not 1 <= opt.master_port <= 65535:
        raise UsageError(f"--master-port must be a TCP port, 1 to 65535, got {opt.master_port} (on a single node, "
                         f"leave it out and torchrun picks a free one)")
    if opt.nnodes == 1 and opt.master_addr and not is_this_machine(opt.master_addr):
        raise UsageError(f"--master-addr {opt.master_addr} is not an address of this machine, and with one node "
                         f"(--nnodes 1) node 0 is this machine: torchrun would wait for it without end. Leave "
                         f"--master-addr out (or give --nnodes and --node-rank for a run on several nodes)")


def check_timeout(seconds):
    if not 1 <= seconds <= MAX_DDP_TIMEOUT:
        raise UsageError(f"--ddp-timeout must be a number of seconds from 1 to {MAX_DDP_TIMEOUT} (7 days), got "
                         f"{seconds}")


def is_this_machine(addr):
    """Whether ``addr`` names this machine: it resolves to an address a socket here can bind (a loopback, 0.0.0.0,
    one of this machine's interfaces). A name that does not resolve is not this machine."""
    try:
        infos = socket.getaddrinfo(addr, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError, ValueError):
        return False
    for family, _, _, _, sockaddr in infos:
        try:
            with socket.socket(family, socket.SOCK_STREAM) as s:
                s.bind((sockaddr[0], 0))
            return True
        except OSError:
            continue
    return False


def check_cpu_processes(nproc, kind, cores):
    """CPU processes (gloo) against the machine: each needs a core of its own; more only thrash (100000 of them
    would exhaust memory before training starts)."""
    if kind == "cpu" and nproc > cores:
        raise UsageError(f"--nproc-per-node {nproc} CPU processes, but this machine gives this run {cores} core(s): "
                         f"use at most --nproc-per-node {cores} (one process per core)")


def cuda_devices(device_arg, available):
    """How many CUDA devices a run with ``--device device_arg`` can use, ``available`` being torch's count."""
    device_arg = str(device_arg).strip().lower().replace("cuda:", "")
    return len([d for d in device_arg.split(",") if d.strip()]) if device_arg else available


def check_devices(nproc, device_arg, cuda_available, cuda_count):
    """One process per GPU: a CUDA run needs ``nproc`` devices; CPU runs (``--device cpu``, or no GPU) take any N."""
    device = str(device_arg).strip().lower()
    if device == "cpu" or (not device and not cuda_available):
        return "cpu"
    if not cuda_available:
        raise UsageError(f"--device {device_arg}: no CUDA device is available here. Train on CPU processes with "
                         f"--device cpu (gloo), or run on a machine with GPUs")
    usable = min(cuda_devices(device, cuda_count), cuda_count)
    if nproc > usable:
        given = f"--device {device_arg} gives" if device else "there are"
        raise UsageError(f"--nproc-per-node {nproc} but {given} only {usable} CUDA device(s) on this node: one "
                         f"process per GPU. Use --nproc-per-node {usable} (or --device cpu for CPU processes)")
    return "cuda"


def check_training_options(train_opt, world):
    """What yolov5's DDP refuses, said before anything starts (yolov5 would assert in every rank)."""
    for flag, on in (("--image-weights", train_opt.image_weights), ("--evolve", train_opt.evolve)):
        if on:
            raise UsageError(f"{flag} does not work with several processes (yolov5's DDP forbids it). Drop it, or "
                             f"train in one process (no --nproc-per-node)")
    batch = int(train_opt.batch_size)
    if batch == -1:
        raise UsageError("--batch-size -1 (AutoBatch) does not work with several processes; give the total batch, "
                         "a multiple of the number of processes")
    if batch % world:
        raise UsageError(f"--batch-size {batch} is the total over all {world} processes and must be a multiple of "
                         f"{world} (e.g. --batch-size {max(world, batch // world * world)})")


def check_port(addr, port):
    """A port already taken on this machine (another run?) would make torchrun fail with a traceback."""
    host = addr or "127.0.0.1"
    try:
        local = socket.gethostbyname(host) in ("127.0.0.1", "0.0.0.0") or host in (socket.gethostname(), "localhost")
    except OSError:
        local = False
    if not local:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("", port))
        except OSError:
            raise UsageError(f"--master-port {port} is in use on this machine (another training run?). Give a free "
                             f"port, the same on every node (on a single node, leave --master-port out and torchrun "
                             f"picks one)") from None


def torchrun_args(opt, argv):
    args = ["--nproc-per-node", str(opt.nproc_per_node), "--nnodes", str(opt.nnodes)]
    if opt.nnodes == 1 and opt.master_port is None:
        args.append("--standalone")  # rendezvous on a free local port
    else:
        args += ["--node-rank", str(opt.node_rank), "--master-addr", opt.master_addr or "127.0.0.1",
                 "--master-port", str(opt.master_port or DEFAULT_PORT)]
    return args + ["-m", "yolo_attn.cli.train", *rank_argv(argv)]


def launch(opt, argv, train_opt):
    """Check, then become torchrun's agent: this process is replaced (``exec``) by a lean one that imports neither
    yolov5 nor the user's modules, so the agent holds little memory while the ranks train."""
    import torch

    from yolo_attn import threads

    check_topology(opt)
    world = opt.nproc_per_node * opt.nnodes
    kind = check_devices(opt.nproc_per_node, train_opt.device, torch.cuda.is_available(), torch.cuda.device_count())
    check_cpu_processes(opt.nproc_per_node, kind, threads.cores())
    check_training_options(train_opt, world)
    if opt.master_port is not None and opt.node_rank == 0:
        check_port(opt.master_addr, opt.master_port)
    print(f"yolo-attn: {world} {'CPU' if kind == 'cpu' else 'GPU'} process(es) "
          f"({opt.nproc_per_node} on this node, node {opt.node_rank} of {opt.nnodes}) under torchrun", flush=True)
    sys.stderr.flush()
    agent = "yolo_attn.engines.yolov5.commands.launch"
    os.execv(sys.executable, [sys.executable, "-m", agent, *torchrun_args(opt, argv)])


def agent(args):
    """torchrun with ``args``, here; the exit status of the ranks, and a failure said in one line."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    try:
        run(get_args_parser().parse_args(args))
    except ChildFailedError as e:
        first, failure = e.get_first_failure()
        others = sorted(r for r in e.failures if r != first)
        print(f"\nyolo-attn: error: training failed: rank {first} {_exit(failure.exitcode)} (its messages are above)"
              + (f"; torchrun then stopped rank(s) {', '.join(map(str, others))}" if others else ""), file=sys.stderr)
        return failure.exitcode if failure.exitcode > 0 else 1
    except SignalException as e:
        print(f"\nyolo-attn: training stopped by signal {e.sigval.name}", file=sys.stderr)
        return 128 + int(e.sigval)
    return 0


def _exit(code):
    return f"exited with code {code}" if code >= 0 else f"was killed by signal {-code}"


# ---------------------------------------------------------------------------------------------------- rank side
def quiet_other_ranks():
    """Only rank 0 prints: other ranks' standard output and Python warnings are dropped (errors still show)."""
    from yolo_attn.engines.yolov5 import ddp

    if ddp.rank() > 0:
        sys.stdout = open(os.devnull, "w")
        warnings.simplefilter("ignore")


if __name__ == "__main__":
    sys.exit(agent(sys.argv[1:]))
