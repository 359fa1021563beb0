"""The registry of layer types: the single source of truth for names and aliases. It holds the ``LayerSpec`` each
module declares (``yolo_attn.modules``), itself; registering adds only the names."""
import difflib
import unicodedata

from yolo_attn.modules import LayerSpec

_REGISTRY = {}


def register(spec):
    """Add a layer type (a LayerSpec, or a class declared with ``declare_layer``: the spec it carries). Names are
    unique case-insensitively and must not shadow each other; a clash leaves the registry unchanged."""
    if isinstance(spec, type):
        spec = LayerSpec.of(spec)
    keys = [key.lower() for key in (spec.name, *spec.aliases)]
    for key in keys:
        if key in _REGISTRY and _REGISTRY[key] is not spec:
            raise ValueError(f"layer name {key!r} is already registered for {_REGISTRY[key].name}")
    for key in keys:
        _REGISTRY[key] = spec
    return spec


def find_layer(name):
    """The LayerSpec registered under ``name`` (case-insensitive), or None."""
    return _REGISTRY.get(str(name).lower())


def registered_layers():
    """Every registered LayerSpec once, in registration order."""
    seen = {}
    for spec in _REGISTRY.values():
        seen.setdefault(spec.name, spec)
    return list(seen.values())


def layer_names():
    return [spec.name for spec in registered_layers()]


def suggest(name, candidates):
    """" Did you mean 'X'?" for a close name, or what the name is in other projects when yolo-attn lacks it.

    Compatibility-normalised (NFKC: full-width 'ＣＢＡＭ' reads 'CBAM') and case-insensitive."""
    from yolo_attn.registry.elsewhere import elsewhere

    text = unicodedata.normalize("NFKC", str(name))
    what = elsewhere(text)
    if what:
        return f" {text!r} is {what}; yolo-attn has no layer that computes it."
    lowered = {key: spec.name for key, spec in _REGISTRY.items()}  # aliases point to their layer
    lowered.update({c.lower(): c for c in candidates})
    if text.lower() in lowered and text != str(name):
        return f" Did you mean {lowered[text.lower()]!r}?"
    close = difflib.get_close_matches(text.lower(), list(lowered), n=1, cutoff=0.7)
    return f" Did you mean {lowered[close[0]]!r}?" if close else ""
