"""yolov5 7.0.14's ``train.py --noval`` crashes after the first epoch (``map50s`` is only set when it validates).

The fix keeps the promise of --noval (validate only the final epoch) without the crash: ``train()`` is told to
validate every epoch, and a stand-in for its ``val`` module skips the intermediate epochs, returning zero metrics
of the shapes ``train()`` expects (zero fitness, so ``best.pt`` follows the last epoch until the real final
validation). The run's options record the choice as ``yolo_attn_noval: true`` (yolov5 itself is told
``noval: false``), in ``opt.yaml`` and every checkpoint, so that ``--resume``, which re-reads them, keeps it.
"""
import functools

import numpy as np


class FinalEpochOnlyVal:
    """yolov5's ``val`` module, except that ``run`` returns zeros before the final epoch."""

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


def final_epoch_only(train_module, train):
    """``train(hyp, opt, device, callbacks)`` that honours ``opt.noval`` (or a resumed run's ``yolo_attn_noval``)
    through the stand-in, restoring yolov5's ``validate`` afterwards."""

    @functools.wraps(train)
    def train_noval(hyp, opt, device, callbacks):
        if not (getattr(opt, "noval", False) or getattr(opt, "yolo_attn_noval", False)):
            return train(hyp, opt, device, callbacks)
        opt.noval, opt.yolo_attn_noval = False, True  # saved in opt.yaml: --resume keeps validating the final epoch
        real = train_module.validate
        stand_in = FinalEpochOnlyVal(real, int(opt.epochs))
        callbacks.register_action("on_train_epoch_end", "yolo_attn_noval", stand_in.on_epoch_end)
        train_module.validate = stand_in
        try:
            return train(hyp, opt, device, callbacks)
        finally:
            train_module.validate = real
            actions = callbacks.get_registered_actions("on_train_epoch_end")
            actions[:] = [a for a in actions if a["name"] != "yolo_attn_noval"]

    return train_noval
