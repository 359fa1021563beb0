"""The ultralytics version the adapter supports, and the ultralytics internals it relies on.

The adapter replaces or reproduces ultralytics functions (``patches.PATCHES``, the stock branches copied into
``parser.parse_with_registry``), so it is pinned to one release: ``ultralytics==8.4.190``. Each function it relies
on is fingerprinted (sha256 of its source, first 16 hex digits, of the stock object even while patched);
``changed()`` lists those whose source differs in the installed ultralytics, and the tests fail naming them.
To support a new release: re-read each listed function against the adapter, then update the fingerprint.
"""
import hashlib
import importlib
import inspect

SUPPORTED = "8.4.190"
PIN = f"ultralytics=={SUPPORTED}"

RELIED_ON = {
    # the parser: stock branches copied, the call from the model constructor, the YAML loader and scale guess
    "ultralytics.nn.tasks.parse_model": "7da6bb1410289030",
    "ultralytics.nn.tasks._initialize_yolo_model": "64bb1e835df15452",
    "ultralytics.nn.tasks.yaml_model_load": "bb688ef9d355599d",
    "ultralytics.nn.tasks.guess_model_scale": "dbcd00d04a211c7d",
    "ultralytics.nn.tasks.DetectionModel.__init__": "cee9a5f2437192d6",
    "ultralytics.nn.tasks.BaseModel._predict_once": "b932f70b581bec47",
    # checkpoints: where they are read (torch_load bindings) and how a pretrained model is merged
    "ultralytics.nn.tasks.torch_safe_load": "44f3a6d7f6a11903",
    "ultralytics.nn.tasks.load_checkpoint": "3399d0f461b2f4ff",
    "ultralytics.nn.tasks.BaseModel.load": "85314a5e08170ae0",
    "ultralytics.utils.torch_utils.strip_optimizer": "ff25c3f06964d958",
    "ultralytics.utils.torch_utils.intersect_dicts": "003c9c7f964a4af8",
    "ultralytics.data.utils.load_dataset_cache_file": "1c6cea96ce88f24d",
    "ultralytics.data.dataset.YOLODataset.get_labels": "bd53038c16bfa12e",
    # a __setstate__ the checkpoint loader lets run (checkpoints.pickle_scan.REVIEWED_SETSTATE): it only fills in
    # all_head_dim; re-read it when it changes
    "ultralytics.nn.modules.block.AAttn.__setstate__": "8656393cd5a13b30",
    # training: the trainer's rebuild, DDP workers, the offline patches
    "ultralytics.engine.model.Model.train": "478371e11f2ad0ac",
    "ultralytics.engine.trainer.BaseTrainer.setup_model": "33c98eece052d628",
    "ultralytics.utils.dist.generate_ddp_file": "7c80979f379ddf1a",
    "ultralytics.utils.checks.check_font": "ccf9e94073e9904f",
    "ultralytics.utils.checks.check_amp": "079b89ebc804c23b",
    # the anchor-free head and NMS the heatmaps read
    "ultralytics.nn.modules.head.Detect.forward": "164f309a5c8f7cb5",
    "ultralytics.nn.modules.head.Detect.forward_head": "11688d4db3c67b34",
    "ultralytics.nn.modules.head.Detect._inference": "b279d22be88b8ccb",
    "ultralytics.utils.nms.non_max_suppression": "51cdbaecdb0627c5",
    # the match record (matches.py): one metrics.stats entry per image (keys tp, conf, pred_cls, target_cls),
    # appended by update_metrics, emptied by init_metrics
    "ultralytics.utils.metrics.DetMetrics.__init__": "5be68d437a80319c",
    "ultralytics.utils.metrics.DetMetrics.update_stats": "5e527f9f9e2d8ab5",
    "ultralytics.models.yolo.detect.val.DetectionValidator.init_metrics": "5bb941fec1a6c266",
    "ultralytics.models.yolo.detect.val.DetectionValidator.update_metrics": "c8043746aafaa866",
}


def stock_object(dotted):
    """The ultralytics object named ``dotted`` (module path, then attributes), the original if a patch replaced it."""
    from yolo_attn.engines.ultralytics.stock import stock_of

    parts = dotted.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
            obj = stock_of(obj)
        return obj
    raise ImportError(dotted)


def fingerprint(obj):
    return hashlib.sha256(inspect.getsource(obj).encode()).hexdigest()[:16]


def require():
    """Refuse (UsageError, exit 2) an installed ultralytics the adapter was not audited against: another version,
    or a function in RELIED_ON whose source differs. Called before a command runs on this engine, so the user reads
    the supported version instead of a failure deep in a run."""
    from yolo_attn.errors import UsageError

    try:
        different = changed()
    except ImportError as e:
        raise UsageError(f"the ultralytics engine needs ultralytics ({e}). Install the supported version: "
                         f"pip install 'yolo-attn[ultralytics]' (that is {PIN}).") from None
    if different:
        raise UsageError("the installed ultralytics is not the one yolo-attn's ultralytics engine supports (" + PIN
                         + "):\n" + "\n".join(f"  {name}: {what}" for name, what in different)
                         + f"\nInstall it: pip install '{PIN}' (or pip install 'yolo-attn[ultralytics]').")


def changed():
    """[(name, what changed)] for the version and every function in RELIED_ON whose source is not the audited one."""
    import ultralytics

    out = []
    if ultralytics.__version__ != SUPPORTED:
        out.append(("ultralytics.__version__", f"{ultralytics.__version__} installed, {SUPPORTED} supported"))
    for name, expected in RELIED_ON.items():
        try:
            got = fingerprint(stock_object(name))
        except (ImportError, AttributeError, OSError, TypeError) as e:
            out.append((name, f"gone ({type(e).__name__}: {e})"))
            continue
        if got != expected:
            out.append((name, f"source changed (fingerprint {got}, audited {expected})"))
    return out
