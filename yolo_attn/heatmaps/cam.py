"""Class-activation heatmaps for each final detection of a yolov5 or ultralytics (anchor-free) detector, all
detections' gradients in one pass. What differs between heads is the engine's head adapter (``heads.head_of``).

Pipeline for one image (``DetectionCAM``):

1. **Detect.** One forward pass without gradients. The rows before the first heatmap layer (the *prefix*) run
   once, their outputs are cached. The engine's own NMS runs on the decoded predictions and keeps, for every final
   detection, the index of its row among the raw predictions (the adapter's ``nms``: yolov5's rows riding through
   its NMS, ultralytics' ``return_idxs``).
2. **Gradients.** Each detection's target (``head.target_value``: objectness (yolov5 only), class probability, box
   outputs, or their sum) is a scalar function of its own raw row, which one Detect level produces. Per level, the gradients
   of all its detections' targets at the heatmap layers are taken from *one* forward pass of the rows after the
   prefix (the *suffix*) and *one* vectorised backward pass (``torch.func.vjp`` + ``torch.func.vmap``; the
   detections are the vmap batch, ``batch_size`` at a time). The backward starts at that level's output, stops at
   the heatmap layers, and computes no parameter gradients. Strategies (``strategy=``):

   - ``"auto"`` (default): per Detect level, the strategy measured fastest for the case at hand
     (``auto_strategy``): ``"batched"`` on a GPU, and on a CPU from ``AUTO_BATCHED_FROM`` detections on
     (``AUTO_BATCHED_FROM_SMALL`` for inputs up to 320 px); ``"sequential"`` otherwise, and on a CPU when
     torch.func cannot run a module (``"replicate"`` costs 1.1-4 times as much there). ``last_choice``
     holds what it chose for the last image.
   - ``"batched"``: as above (a level with a single detection goes the sequential way). Falls back to
     ``"replicate"``, with a warning, if a module cannot run under torch.func.
   - ``"replicate"``: the suffix runs once on a batch of N copies of the cached prefix outputs, then one backward
     of the sum of the per-copy targets (copies do not interact in eval mode, so each copy's gradient is its own
     detection's).
   - ``"sequential"``: one forward, then one backward per detection (activations only) - the reference the others
     are tested against, and the baseline of ``yolo_attn.benchmarks.heatmap_speed``.

3. **Maps.** pytorch-grad-cam (the ``grad-cam`` package) turns activations and gradients into maps: the chosen
   method's ``get_cam_image`` (Grad-CAM, Grad-CAM++, XGrad-CAM, HiRes-CAM, Layer-CAM, Eigen-CAM, ...), ReLU,
   ``scale_cam_image`` to the model input size and ``aggregate_multi_layers`` over the layers, exactly as its
   ``BaseCAM`` does. Gradient-free methods (Eigen-CAM, FEM) give one map per image, the same for every
   detection.

Layers are the modules named in ``model.named_modules()`` (a YAML row ``model.5`` or any module inside a row);
each must return one N×C×H×W feature map and run once per forward pass.
"""
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from yolo_attn.errors import BadParameter, UsageError
from yolo_attn.heatmaps.heads import check_target, head_of
from yolo_attn.heatmaps.model import device_of, freeze, resolve_layers, unfreeze
from yolo_attn.heatmaps.targets import target_cotangents

STRATEGIES = ("auto", "batched", "replicate", "sequential")
# "auto" on a CPU: the vectorised backward from this many detections at one Detect level on, one backward per
# detection below it; small inputs (at most SMALL_INPUT pixels) have small operations whose overhead batching saves,
# large ones are compute-bound. Measured (docs/heatmaps.md, yolov5s-cbam, layer-cam, medians of interleaved runs):
# at 640 px one-at-a-time is as fast or faster up to 6 detections at a level (3: 992 vs 995 ms on 1 thread, 581 vs
# 635 on 2; 6: 1722 vs 1819 on 1 thread), the vectorised pass wins from 10 on (2429 vs 2613 ms; 30: 6064 vs 7004 on
# 1 thread, 4186 vs 4714 on 2); at 160 px (trained) 3 per level tie (219 vs 220 ms), 5 per level: 247 vs 288 ms.
AUTO_BATCHED_FROM = 10
AUTO_BATCHED_FROM_SMALL = 4
SMALL_INPUT = 320 * 320  # between the sizes measured (160 and 640 px)


def auto_strategy(n, device, vmap_ok=True, pixels=640 * 640):
    """The strategy "auto" runs for ``n`` detections of one Detect level on ``device`` for an input of ``pixels``."""
    if n <= 1:
        return "sequential"
    if device.type != "cpu":
        return "batched" if vmap_ok else "replicate"  # not measured (no GPU here): few large kernels, not n small
    from_n = AUTO_BATCHED_FROM_SMALL if pixels <= SMALL_INPUT else AUTO_BATCHED_FROM
    return "batched" if vmap_ok and n >= from_n else "sequential"


# pytorch-grad-cam classes whose maps come from one forward/backward (activations and gradients): usable here.
_METHODS = {
    "gradcam": "GradCAM",
    "gradcam++": "GradCAMPlusPlus",
    "xgradcam": "XGradCAM",
    "hirescam": "HiResCAM",
    "layercam": "LayerCAM",
    "eigencam": "EigenCAM",
    "eigengradcam": "EigenGradCAM",
    "gradcamelementwise": "GradCAMElementWise",
    "fem": "FEM",
}
_ALIASES = {"gradcampp": "gradcam++", "gradcamplusplus": "gradcam++", "grad-cam": "gradcam", "eigen-cam": "eigencam"}
# grad-cam methods that need many extra forward passes per target (perturbations) or input gradients.
_NOT_SUPPORTED = {
    "scorecam": "one forward pass per activation channel and detection",
    "ablationcam": "one forward pass per activation channel and detection",
    "fullgrad": "gradients with respect to the input and every bias, not a layer's activations",
    "shapleycam": "second-order gradients (Hessian-vector products) per detection",
    "finercam": "comparisons between classifier categories",
    "randomcam": "nothing (random weights)",
    "kpcacam": "kernel PCA of every layer's positions (sklearn), which fails on small feature maps; use eigencam",
}
METHODS = tuple(_METHODS)


def method_class(name):
    """The pytorch-grad-cam class of a method name (case-insensitive; aliases gradcampp, grad-cam, eigen-cam)."""
    import pytorch_grad_cam

    key = _ALIASES.get(name.lower(), name.lower())
    if key in _NOT_SUPPORTED:
        raise BadParameter("method", f"{{name}} {name}: not supported for detections: it needs {_NOT_SUPPORTED[key]}. "
                         f"Supported: {', '.join(METHODS)}")
    if key not in _METHODS:
        raise BadParameter("method", f"{{name}} {name}: unknown; choose one of {', '.join(METHODS)}")
    return getattr(pytorch_grad_cam, _METHODS[key])


@dataclass
class Explained:
    """Detections of one image and their heatmaps, both in model-input pixels.

    detections: (n, 7) float array: x1, y1, x2, y2, conf, cls, row (row: index into the raw predictions).
    maps: (n, h, w) float32 in [0, 1], one per detection (pytorch-grad-cam's normalisation).
    """
    detections: np.ndarray
    maps: np.ndarray


class _Probe:
    """Forward hooks on the heatmap layers: record each output and (when set) add a zero 'delta' to it, so the
    gradient with respect to the delta is the gradient with respect to the layer's output."""

    def __init__(self, layers):
        self.layers = layers
        self.deltas = None
        self.acts = [None] * len(layers)
        self.handles = []

    def __enter__(self):
        for k, layer in enumerate(self.layers):
            self.handles.append(layer.module.register_forward_hook(self._hook(k)))
        return self

    def __exit__(self, *exc):
        for h in self.handles:
            h.remove()
        self.handles.clear()
        self.deltas = None
        self.acts = [None] * len(self.layers)

    def reset(self, deltas=None):
        self.deltas = deltas
        self.acts = [None] * len(self.layers)

    def _hook(self, k):
        def hook(module, inputs, output):
            if not (isinstance(output, torch.Tensor) and output.dim() == 4):
                kind = type(output).__name__ if not isinstance(output, torch.Tensor) else f"a {output.dim()}-D tensor"
                raise UsageError(f"layer {self.layers[k].label} returns {kind}, not a feature map (N×C×H×W); "
                                 f"choose another --layer")
            if self.acts[k] is not None:
                raise UsageError(f"layer {self.layers[k].label} runs more than once per forward pass, so its "
                                 f"activations are ambiguous; choose the row or another module")
            self.acts[k] = output
            if self.deltas is not None:
                return output + self.deltas[k]
            return None
        return hook

    def activations(self):
        missing = [self.layers[k].label for k, a in enumerate(self.acts) if a is None]
        if missing:
            raise UsageError(f"layer(s) {', '.join(missing)} did not run in the forward pass")
        return list(self.acts)


class DetectionCAM:
    """Per-detection heatmaps of a yolov5 detector (see the module docstring).

    model: a yolov5 or ultralytics DetectionModel in eval mode, unfused (its parameters stop requiring gradients
        while it is used here).
    layers: specs for ``model.resolve_layers`` (row indices, module names, layer types, 'backbone', 'neck',
        'attention'), or ``Layer`` objects; None: 'backbone' (the backbone rows the head reads).
    method: a pytorch-grad-cam method name (``METHODS``); target: one of the head's targets (``heads``).
    batch_size: detections per vectorised backward pass (memory grows with it).
    """

    def __init__(self, model, layers=None, method="layercam", target="all", conf_thres=0.25, iou_thres=0.45,
                 classes=None, max_det=300, batch_size=16, strategy="auto", eigen_smooth=False):
        self.head = head_of(model)
        check_target(self.head, target)
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
        if not 0 <= conf_thres <= 1:
            raise BadParameter("conf", f"{{name}} is a probability in [0, 1], got {conf_thres}")
        if not 0 <= iou_thres <= 1:
            raise BadParameter("iou", f"{{name}} is a probability in [0, 1], got {iou_thres}")
        if batch_size < 1:
            raise BadParameter("batch_size", f"{{name}} must be at least 1, got {batch_size}")
        self.model = model.eval()
        self.layers = layers if layers and all(hasattr(x, "module") for x in layers) else resolve_layers(model, layers)
        self.method = method
        self.cam = method_class(method)(model=model, target_layers=[])  # grad-cam's maths only; no hooks
        self.target, self.conf_thres, self.iou_thres = target, conf_thres, iou_thres
        self.classes, self.max_det, self.batch_size = classes, max_det, batch_size
        self.strategy, self.eigen_smooth = strategy, eigen_smooth
        self.vmap_ok = True  # False once torch.func failed on this model ("auto" then avoids it)
        self.last_choice = {}  # Detect level -> the strategy the last gradients() ran there
        self.start = min(layer.row for layer in self.layers)  # first row of the suffix
        self.device = device_of(model)

    # -- forward passes -------------------------------------------------------------------------------------------
    def _run(self, x, y, start, stop=None):
        """Rows start..stop-1 as yolov5's _forward_once runs them: ``x`` is row start-1's output (the image for
        start 0), ``y`` the outputs of rows 0..start-1 (appended to)."""
        for m in self.model.model[start:stop]:
            if m.f != -1:
                x = y[m.f] if isinstance(m.f, int) else [x if j == -1 else y[j] for j in m.f]
            x = m(x)
            y.append(x)
        return x

    def _prefix(self, image):
        """The rows before the first heatmap layer, run once and cached: (their last output, all their outputs)."""
        y = []
        with torch.no_grad():
            x = self._run(image, y, 0, self.start)
        return x, y

    def _suffix(self, cache, n=1):
        """Detect's outputs (decoded predictions, [raw rows per level]) for the suffix run on the cached prefix outputs
        (repeated n times)."""
        x, y = cache
        if n > 1:
            rep = lambda t: t.expand(n, *t.shape[1:]).contiguous() if isinstance(t, torch.Tensor) else t  # noqa: E731
            x, y = rep(x), [rep(t) for t in y]
        return self.head.split(self._run(x, list(y), self.start))

    # -- public API -----------------------------------------------------------------------------------------------
    def detect(self, image):
        """Final detections (n, 7) of a (1, 3, h, w) input, and the state the gradient pass reuses."""
        if image.dim() != 4 or image.shape[0] != 1:
            raise ValueError(f"one image at a time: expected a (1, 3, h, w) tensor, got {tuple(image.shape)}")
        image = image.to(self.device)
        flags = freeze(self.model)
        try:
            with _Probe(self.layers) as probe, torch.no_grad():
                cache = self._prefix(image)
                z, raw = self._suffix(cache)
                acts = [a.detach() for a in probe.activations()]
        finally:
            unfreeze(self.model, flags)
        det = self.head.nms(z, self.conf_thres, self.iou_thres, self.classes, self.max_det)[0]
        sizes = [r[0].numel() // r.shape[-1] for r in raw]  # rows per level, in z's order
        return det, {"cache": cache, "acts": acts, "size": (image.shape[3], image.shape[2]), "levels": sizes}

    def explain(self, image):
        """Detections and one heatmap per detection for a (1, 3, h, w) input in [0, 1] (RGB, letterboxed)."""
        det, state = self.detect(image)
        return Explained(det.cpu().numpy(), self.maps(det, state))

    __call__ = explain

    def maps(self, det, state, strategy=None):
        """(n, h, w) heatmaps of detections ``det`` (from ``detect``) at the model-input size."""
        n = len(det)
        w, h = state["size"]
        if n == 0:
            return np.zeros((0, h, w), np.float32)
        acts = [a.cpu().numpy() for a in state["acts"]]
        if not self.cam.uses_gradients:  # Eigen-CAM & co: a property of the image, not of a detection
            return np.repeat(self._cam_maps(acts, [None] * len(acts), (w, h)), n, axis=0)
        grads = self.gradients(state, det[:, 6].long(), det[:, 5].long(), strategy or self.strategy)
        return self._cam_maps(acts, [g.cpu().numpy() for g in grads], (w, h))

    def gradients(self, state, rows, cls, strategy=None):
        """Per layer, the (n, C, H, W) gradients of the n detections' targets at that layer's output.

        Detections are grouped by Detect level: a target reads one level's output only, so its backward pass
        starts there (a P3 detection's never runs through the rows that only feed P4 and P5)."""
        strategy = strategy or self.strategy
        offsets = np.cumsum([0] + state["levels"])
        level = torch.as_tensor(np.searchsorted(offsets, rows.cpu().numpy(), side="right") - 1)
        grads = [torch.zeros((len(rows), *a.shape[1:]), dtype=a.dtype, device=a.device) for a in state["acts"]]
        flags = freeze(self.model)
        self.last_choice = {}
        try:
            with _Probe(self.layers) as probe:
                for lv in level.unique().tolist():
                    idx = (level == lv).nonzero()[:, 0]
                    local = rows[idx] - int(offsets[lv])
                    for k, g in enumerate(self._level_gradients(probe, state, lv, local, cls[idx], strategy)):
                        grads[k][idx] = g
        finally:
            unfreeze(self.model, flags)
        return grads

    def _level_gradients(self, probe, state, level, local, cls, strategy):
        auto = strategy == "auto"
        if auto:
            strategy = auto_strategy(len(local), self.device, self.vmap_ok, state["size"][0] * state["size"][1])
        if strategy == "batched" and len(local) == 1:  # nothing to vectorise: torch.func would only add overhead
            strategy = "sequential"
        if strategy == "batched":
            try:
                self.last_choice[level] = strategy
                return self._batched(probe, state, level, local, cls)
            except (RuntimeError, NotImplementedError) as e:  # a module torch.func cannot transform
                self.vmap_ok = False
                strategy = auto_strategy(len(local), self.device, False) if auto else "replicate"
                warnings.warn(f"vectorised backward unavailable ({type(e).__name__}: {str(e)[:200]}); "
                              f"falling back to strategy {strategy!r}", RuntimeWarning)
                probe.reset()
                if not auto:
                    self.strategy = strategy  # for the next images too (one warning)
        self.last_choice[level] = strategy
        if strategy == "replicate":
            return self._replicate(probe, state, level, local, cls)
        return self._sequential(probe, state, level, local, cls)

    # -- gradient strategies (one Detect level; ``local``: rows within that level's raw output) -------------------
    def _zeros(self, state, n):
        return [torch.zeros((n, *a.shape[1:]), dtype=a.dtype, device=a.device) for a in state["acts"]]

    @staticmethod
    def _rows(raw_level, n=1):
        return raw_level.reshape(n, -1, raw_level.shape[-1])

    def _batched(self, probe, state, level, local, cls):
        def selected_rows(*deltas):
            probe.reset(deltas)
            _, raw = self._suffix(state["cache"])
            return self._rows(raw[level])[0, local]

        with torch.enable_grad():
            out, vjp_fn = torch.func.vjp(selected_rows, *self._zeros(state, 1))
            cot = target_cotangents(out, cls, self.target, self.head.target_value)  # (n, no): d target_i / d row_i
            n = len(local)
            grads = [[] for _ in self.layers]
            for s in range(0, n, self.batch_size):
                k = min(self.batch_size, n - s)
                onehot = torch.zeros((k, n, cot.shape[1]), dtype=cot.dtype, device=cot.device)
                onehot[torch.arange(k), torch.arange(s, s + k)] = cot[s:s + k]
                for layer_grads, g in zip(grads, torch.func.vmap(vjp_fn)(onehot)):
                    layer_grads.append(g[:, 0])
        probe.reset()
        return [torch.cat(g) for g in grads]

    def _replicate(self, probe, state, level, local, cls):
        n = len(local)
        grads = [[] for _ in self.layers]
        for s in range(0, n, self.batch_size):
            k = min(self.batch_size, n - s)
            deltas = [d.requires_grad_(True) for d in self._zeros(state, k)]
            probe.reset(deltas)
            with torch.enable_grad():
                _, raw = self._suffix(state["cache"], k)
                rows = self._rows(raw[level], k)[torch.arange(k), local[s:s + k]]
                total = self.head.target_value(rows, cls[s:s + k], self.target).sum()
                gs = torch.autograd.grad(total, deltas, allow_unused=True)
            for layer_grads, g, d in zip(grads, gs, deltas):
                layer_grads.append(torch.zeros_like(d) if g is None else g)
        probe.reset()
        return [torch.cat(g) for g in grads]

    def _sequential(self, probe, state, level, local, cls):
        deltas = [d.requires_grad_(True) for d in self._zeros(state, 1)]
        probe.reset(deltas)
        grads = [[] for _ in self.layers]
        with torch.enable_grad():
            _, raw = self._suffix(state["cache"])
            rows = self._rows(raw[level])[0]
            for r, c in zip(local, cls):
                t = self.head.target_value(rows[r][None], c[None], self.target).sum()
                gs = torch.autograd.grad(t, deltas, retain_graph=True, allow_unused=True)
                for layer_grads, g, d in zip(grads, gs, deltas):
                    layer_grads.append(torch.zeros_like(d) if g is None else g)
        probe.reset()
        return [torch.cat(g) for g in grads]

    # -- maps -----------------------------------------------------------------------------------------------------
    def _cam_maps(self, acts, grads, size):
        """pytorch-grad-cam's BaseCAM.compute_cam_per_layer + aggregate_multi_layers on our activations/gradients."""
        from pytorch_grad_cam.utils.image import scale_cam_image

        per_layer = []
        for layer, a, g in zip(self.layers, acts, grads):
            if g is not None:
                a = np.broadcast_to(a, g.shape)
            cam = self.cam.get_cam_image(None, layer.module, None, a, g, self.eigen_smooth)
            cam = np.maximum(cam, 0)
            per_layer.append(scale_cam_image(cam, size)[:, None, :])
        return self.cam.aggregate_multi_layers(per_layer).astype(np.float32)
