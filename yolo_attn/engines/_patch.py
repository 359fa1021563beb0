"""Named, undoable patches of another library, applied when the module they patch is imported.

A ``Patch`` names what it fixes, which versions need it and the test that reproduces the original failure, and
patches one or more modules by name. ``PatchSet.install()`` applies each patch to every target module that is
already imported and, through an import hook, to each target module as soon as it is imported later;
``uninstall()`` restores every original object and removes the hook. Nothing is patched for a library the program
never imports.
"""
import importlib.abc
import sys
import types
from dataclasses import dataclass, field
from typing import Callable


ORIGINALS = {}  # a replacement -> the library's object it replaced (the first one, for every module it is set in)


def original_of(obj):
    """The library's original of ``obj`` if it is one of the patches' replacements, else ``obj``."""
    try:
        return ORIGINALS.get(obj, obj)
    except TypeError:  # unhashable
        return obj


def replace(module, attr, value):
    """Set ``module.attr = value``; returns the undo, which restores the original, or removes an added name. The
    original is remembered (``original_of``) once per replacement, also when the module already holds ``value``
    because it imported the name from a module patched before (``from .tasks import parse_model``)."""
    missing = object()
    current = vars(module).get(attr, missing)
    original = original_of(value) if current is value else current
    if original is value:
        original = missing  # nothing known to restore: the undo removes the name
    elif original is not missing:
        try:
            ORIGINALS.setdefault(value, original)
        except TypeError:  # unhashable replacement: restored by this undo only
            pass
    setattr(module, attr, value)

    def undo():
        if vars(module).get(attr, missing) is not value:
            return  # someone replaced it after us: leave theirs
        if original is missing:
            delattr(module, attr)
        else:
            setattr(module, attr, original)

    return undo


class ModuleView(types.ModuleType):
    """A stand-in for a module (e.g. ``torch`` as one yolov5 module sees it) with some attributes overridden:
    the patched library's module gets the view, every other user of the real module sees it unchanged."""

    def __init__(self, module):
        super().__init__(module.__name__, module.__doc__)
        self.__wrapped__ = module

    def __getattr__(self, name):
        return getattr(self.__wrapped__, name)


def view_of(module, attr):
    """``module.attr`` as a ModuleView (made on first use, so several patches can override names in one view)."""
    current = getattr(module, attr)
    return current if isinstance(current, ModuleView) else ModuleView(current)


@dataclass(frozen=True)
class Patch:
    """One fix: ``apply(module)`` patches one imported target module and returns its undo callables.

    before: apply just before the target module runs (for names it imports at load time), not after.
    """

    name: str
    fixes: str
    needed: str
    test: str
    modules: tuple
    apply: Callable = field(repr=False)
    before: bool = False


class _Loader(importlib.abc.Loader):
    """Runs the hook's callbacks around a watched module's own loader."""

    def __init__(self, loader, hook):
        self.loader, self.hook = loader, hook

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        module.__spec__.loader = module.__loader__ = self.loader
        self.hook.run(module.__name__, None, before=True)
        self.loader.exec_module(module)
        self.hook.run(module.__name__, module, before=False)

    def __getattr__(self, name):
        return getattr(self.loader, name)


class _ImportHook(importlib.abc.MetaPathFinder):
    """Calls ``callback(module_name, module)`` before/after each watched module is first imported."""

    def __init__(self, callback, names):
        self.callback, self.names = callback, set(names)

    def run(self, name, module, before):
        self.callback(name, module, before)

    def find_spec(self, name, path, target=None):
        if name not in self.names:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _Loader(spec.loader, self)
                return spec
        return None


class PatchSet:
    """The patches of one engine, installed and uninstalled together."""

    def __init__(self, patches):
        self.patches = tuple(patches)
        self._undo = []
        self._hook = None

    @property
    def installed(self):
        return self._hook is not None

    def _targets(self):
        return {name for p in self.patches for name in p.modules}

    def _apply(self, name, module, before):
        for patch in self.patches:
            if name in patch.modules and patch.before == before:
                self._undo.append((patch.name, patch.apply(module)))

    def install(self):
        """Apply every patch to its imported targets now and to the others when they are imported (idempotent)."""
        if self.installed:
            return
        self._hook = _ImportHook(self._apply, self._targets())
        sys.meta_path.insert(0, self._hook)
        for patch in self.patches:
            for name in patch.modules:
                module = sys.modules.get(name)
                if module is not None:
                    self._undo.append((patch.name, patch.apply(module)))

    def uninstall(self):
        """Restore every patched object, newest first, and stop patching modules imported from now on."""
        if self._hook in sys.meta_path:
            sys.meta_path.remove(self._hook)
        self._hook = None
        while self._undo:
            _, undos = self._undo.pop()
            for undo in reversed(undos):
                undo()

    def applied(self):
        """Names of the patches applied so far (each once per patched module)."""
        return [name for name, _ in self._undo]
