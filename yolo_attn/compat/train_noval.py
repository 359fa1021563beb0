"""yolov5 7.0.14's ``train.py --noval`` crashes after the first epoch (``map50s`` is only set when it validates).

``use_noval(train_module, opt, callbacks)`` keeps the promise of --noval (validate only the final epoch)
without the crash: yolov5 is told to validate every epoch, and a stand-in for its ``val`` module skips
the intermediate epochs, returning zero metrics of the shapes ``train()`` expects (zero fitness, so
``best.pt`` follows the last epoch until the real final validation).

The run's options record the choice as ``yolo_attn_noval: true`` (yolov5 itself is told ``noval: false``), in
``opt.yaml`` and every checkpoint, so that ``--resume``, which re-reads them, keeps it (``resume_noval``).
"""
import numpy as np


class _FinalEpochOnlyVal:
    def __init__(self, val_module, epochs):
        self._val, self._epochs, self.epoch = val_module, epochs, -1

    def __getattr__(self, name):
        return getattr(self._val, name)

    def on_epoch_end(self, epoch):
        self.epoch = epoch

    def run(self, *args, **kwargs):
        final = self.epoch + 1 >= self._epochs or kwargs.get("plots") or kwargs.get("verbose")
        if final or kwargs.get("model") is None:
            return self._val.run(*args, **kwargs)
        nc = int(kwargs["model"].nc)
        return (0.0,) * 7, np.zeros(nc), np.zeros(nc), (0.0, 0.0, 0.0)


def _install(train_module, epochs, callbacks):
    val = getattr(train_module.validate, "_val", train_module.validate)  # never wrap a stand-in in a stand-in
    stand_in = _FinalEpochOnlyVal(val, int(epochs))
    callbacks.register_action("on_train_epoch_end", "yolo_attn_noval", lambda epoch: stand_in.on_epoch_end(epoch))
    train_module.validate = stand_in


def use_noval(train_module, opt, callbacks):
    """Make ``--noval`` work for this training run (no-op when --noval was not given)."""
    if not getattr(opt, "noval", False):
        return
    _install(train_module, opt.epochs, callbacks)
    opt.noval = False
    opt.yolo_attn_noval = True  # saved in opt.yaml and the checkpoints: --resume keeps validating the final epoch only


def resume_noval(train_module, run_opt, callbacks):
    """For ``--resume``: yolov5 replaces the options by the run's saved ones (``run_opt``, from opt.yaml), in which
    --noval reads ``noval: false, yolo_attn_noval: true``; install the stand-in again for the remaining epochs."""
    if run_opt.get("yolo_attn_noval"):
        _install(train_module, run_opt["epochs"], callbacks)
