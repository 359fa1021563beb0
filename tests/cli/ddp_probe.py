"""Imported in every rank of the DDP tests (``--import ddp_probe``): saves the DDP-wrapped model's parameters when
the rank exits (DDP_PROBE_OUT), and kills one rank at its n-th training forward (DDP_PROBE_KILL="rank:n")."""
import atexit
import os
import signal

import torch
from torch.nn.modules.module import register_module_forward_hook
from torch.nn.parallel import DistributedDataParallel

_seen = {"model": None, "initial": None, "forwards": 0}


def _hook(module, args, output):
    if not isinstance(module, DistributedDataParallel):
        return
    if _seen["model"] is None:
        _seen["model"] = module.module
    _seen["forwards"] += 1
    kill = os.environ.get("DDP_PROBE_KILL")
    if kill and [int(v) for v in kill.split(":")] == [int(os.environ["RANK"]), _seen["forwards"]]:
        os.kill(os.getpid(), signal.SIGKILL)


def _first_parameters(module, args):
    if isinstance(module, DistributedDataParallel) and _seen["initial"] is None:
        _seen["initial"] = {k: v.detach().clone() for k, v in module.module.named_parameters()}


register_module_forward_hook(_hook)
torch.nn.modules.module.register_module_forward_pre_hook(_first_parameters)


@atexit.register
def _dump():
    out = os.environ.get("DDP_PROBE_OUT")
    if out and _seen["model"] is not None:
        final = {k: v.detach().clone() for k, v in _seen["model"].named_parameters()}
        torch.save({"initial": _seen["initial"], "final": final, "forwards": _seen["forwards"]},
                   os.path.join(out, f"rank{os.environ['RANK']}.pt"))
