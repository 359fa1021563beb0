"""The shape check both engines' parsers run on a freshly built model: each row once on a small image, so that a
row that cannot take what it is given is reported with its YAML row instead of a traceback from deep inside."""
import torch

from yolo_attn.errors import ModelConfigError
from yolo_attn.yaml_rows.bounds import MAX_PARAMS

CHECK_SIZE = 64  # the shape check's input (pixels): every row must accept what the row before gives it
MAX_ELEMENTS = 2 ** 25  # one row's output on the check's 64-px image (yolov5x's largest: 160×32×32 = 163,840)


def check_budget(model, labels):
    """Refuse a model no YOLO comes near (a huge arg, width or nc) before it takes memory: counted on the meta
    device."""
    sizes = [sum(p.numel() for p in m.parameters()) for m in model]
    if sum(sizes) > MAX_PARAMS:
        k = max(range(len(sizes)), key=sizes.__getitem__)
        raise ModelConfigError(f"{labels[k]}: {sizes[k]:,} parameters (the model {sum(sizes):,}); yolo-attn refuses "
                               f"models above {MAX_PARAMS:,} (yolov5x6 has 140M). Check this row's args, nc and "
                               f"width_multiple.")


def check_shapes(model, save, labels, channels=3, size=CHECK_SIZE, device=None, sizes_only=False):
    """Run the rows once on a small image (no gradients; eval mode except the head, whose training-mode output
    needs no strides), as the engines' ``_forward_once`` do, so that a row that cannot take what it is given (maps of
    different resolutions fused, a gate finer than its skip) is reported with its YAML row (``labels``) instead of
    a traceback from deep inside the build. On the meta device it computes shapes only, and a row whose output
    exceeds MAX_ELEMENTS is refused; returns False when an operation has no meta implementation (then run it
    again on the real model). ``sizes_only``: refuse only outputs above MAX_ELEMENTS; a row that fails ends the
    check (False), for the real build to report."""
    training = model.training
    outputs, x = [], torch.zeros(1, channels, size, size, device=device)
    model.eval()
    model[-1].train()
    try:
        with torch.no_grad():
            for m, where in zip(model, labels):
                if m.f != -1:
                    x = outputs[m.f] if isinstance(m.f, int) else [x if j == -1 else outputs[j] for j in m.f]
                try:
                    x = m(x)
                except NotImplementedError:
                    if device == "meta":
                        return False
                    raise
                except Exception as e:  # noqa: BLE001  (whatever the row's code raises on this input)
                    if sizes_only:
                        return False
                    shapes = [tuple(t.shape) for t in (x if isinstance(x, (list, tuple)) else [x])
                              if isinstance(t, torch.Tensor)]
                    raise ModelConfigError(f"{where}: cannot run on its input(s) of shape "
                                           f"{', '.join(map(str, shapes))} (a {size}×{size} image): "
                                           f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
                sizes = [t.numel() for t in (x if isinstance(x, (list, tuple)) else [x]) if isinstance(t, torch.Tensor)]
                if sum(sizes) > MAX_ELEMENTS:
                    raise ModelConfigError(f"{where}: gives {sum(sizes):,} values for a {size}×{size} image (more "
                                           f"than {MAX_ELEMENTS:,}); check its args (an upsampling factor, padding, "
                                           f"channels)")
                outputs.append(x if m.i in save else None)
    finally:
        model.train(training)
    return True
