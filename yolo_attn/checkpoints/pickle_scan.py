"""What a checkpoint's pickle would do when loaded, found by reading its opcodes without running any of them.

torch's restricted (``weights_only``) unpickler accepts only allow-listed GLOBALs, but an allowed class may then be
*called* with pickled arguments: ``REDUCE`` runs ``cls(*args)``, and the allowed ``torch._tensor._rebuild_from_type_v2``
calls whatever it is given. A yolov5 class called that way runs yolov5 code chosen by the file
(``DetectMultiBackend('x.onnx')`` opens and reads another file). So ``scan`` walks the pickle's opcodes
(``pickletools.genops``) with a symbolic stack and memo, knows which object each REDUCE/NEWOBJ/BUILD applies to, and
accepts only what torch itself writes for a model:

- calls (REDUCE) of the rebuild functions in ``CALLS`` (torch's tensor rebuilders, OrderedDict, set, numpy
  array/scalar/dtype reconstruction, paths, bytes), with arguments that are inert data;
- module objects made the way torch pickles every ``nn.Module``: ``NEWOBJ`` (``cls.__new__(cls)``, no arguments) of an
  allowed class, then ``BUILD`` with its state (``__dict__`` update by torch's own ``__setstate__``), with empty hooks;
- classes and functions as values only where torch puts them (dtypes and storage types; numpy's array class in its
  reconstruct; a tensor class and rebuild function in a tensor rebuild), never inside data, arguments or hooks.

Anything else raises ``Refused`` naming the object and the opcode's byte offset in ``data.pkl``.
"""
import pickletools

import torch
from torch._weights_only_unpickler import IMPORT_MAPPING, NAME_MAPPING, _get_allowed_globals, _tensor_rebuild_functions


class Refused(Exception):
    """The pickle does something a checkpoint never needs; the message says what and where."""


class UnknownGlobals(Refused):
    """The pickle names classes or functions that are neither model classes nor rebuild functions."""

    def __init__(self, names):
        self.names = sorted(names)
        super().__init__(f"its pickle names {', '.join(self.names)}")


TENSOR_REBUILDERS = frozenset(f"torch._utils.{f.__name__}" for f in _tensor_rebuild_functions())
TENSOR_TYPES = frozenset({"torch.Tensor", "torch.nn.parameter.Parameter"})
NUMPY_RECONSTRUCT = frozenset({"numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct"})
NUMPY_SCALAR = frozenset({"numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar"})
PATHS = frozenset(f"pathlib.{c}" for c in ("Path", "PosixPath", "WindowsPath", "PurePath", "PurePosixPath",
                                           "PureWindowsPath"))
# name -> what its arguments may be (checked by _check_call)
CALLS = {**{name: "tensor" for name in TENSOR_REBUILDERS}, "torch._tensor._rebuild_from_type_v2": "from_type",
         "collections.OrderedDict": "data", "builtins.set": "data", "builtins.bytearray": "data",
         "builtins.complex": "data", "torch.Size": "data", "torch.device": "data",
         "torch.serialization._get_layout": "data", "_codecs.encode": "bytes",
         **{name: "numpy_array" for name in NUMPY_RECONSTRUCT}, **{name: "data" for name in NUMPY_SCALAR},
         "numpy.dtype": "data", **{name: "data" for name in PATHS},
         "ultralytics.utils.IterableSimpleNamespace": "data"}  # an unstripped ultralytics last.pt: the EMA's args
# classes made by NEWOBJ besides the model classes the caller allows
PLAIN_CLASSES = frozenset({"argparse.Namespace", "torch.nn.parameter.Parameter"})
# Module classes' own __setstate__ read and found inert, for the pinned engine versions: ultralytics 8.4.190's AAttn
# (YOLO12's area attention) calls nn.Module's and sets ``all_head_dim = head_dim * num_heads`` when it is missing.
REVIEWED_SETSTATE = frozenset({"ultralytics.nn.modules.block.AAttn.__setstate__"})
# results that BUILD may set the state of (torch/numpy set it with their own code)
BUILDABLE_RESULTS = TENSOR_REBUILDERS | NUMPY_RECONSTRUCT | {"numpy.dtype", "torch._tensor._rebuild_from_type_v2",
                                                             "torch.nn.parameter.Parameter", "argparse.Namespace",
                                                             "ultralytics.utils.IterableSimpleNamespace"}
# the opcodes torch's weights_only unpickler implements (it refuses every other one, so the scan does too)
OPCODES = frozenset({"GLOBAL", "NEWOBJ", "REDUCE", "BUILD", "APPEND", "APPENDS", "SETITEM", "SETITEMS", "MARK",
                     "TUPLE", "TUPLE1", "TUPLE2", "TUPLE3", "NONE", "NEWFALSE", "NEWTRUE", "EMPTY_TUPLE",
                     "EMPTY_LIST", "EMPTY_DICT", "EMPTY_SET", "BININT", "BININT1", "BININT2", "BINFLOAT",
                     "BINUNICODE", "SHORT_BINSTRING", "BINPERSID", "BINGET", "LONG_BINGET", "BINPUT", "LONG_BINPUT",
                     "LONG1", "PROTO", "STOP"})


def _data_globals():
    """GLOBALs that are plain values in a checkpoint: torch dtypes, storage types, quantisation schemes."""
    kinds = (torch.dtype, torch.qscheme, torch.serialization.StorageType)
    return frozenset(name for name, obj in _get_allowed_globals().items()
                     if isinstance(obj, kinds) or (isinstance(obj, type) and "Storage" in name))


class _Ref:
    """A GLOBAL: a class or function the pickle names."""

    def __init__(self, name, pos):
        self.name, self.pos = name, pos


class _Made:
    """An object the pickle makes: by a call (REDUCE), ``__new__`` (NEWOBJ) or a storage load (BINPERSID).
    ``items``: what is put into it (for the dicts, lists and OrderedDicts the pickle fills)."""

    def __init__(self, by, how, module=False, kind=None):
        self.by, self.how, self.module, self.kind, self.items = by, how, module, kind, []
        self.no_modules = False  # passed where module objects must never be (tensor arguments, hooks)
        self.sealed = False  # a module's hooks: nothing may be added later (through the memo)


def _global_name(arg):
    module, name = arg.split(" ", 1)
    if (module, name) in NAME_MAPPING:
        module, name = NAME_MAPPING[(module, name)]
    elif module in IMPORT_MAPPING:
        module = IMPORT_MAPPING[module]
    return f"{module}.{name}"


class _Scan:
    def __init__(self, module_class):
        self.module_class, self.data_globals = module_class, _data_globals()
        self.stack, self.marks, self.memo = [], [], {}

    # ------------------------------------------------------------------------------------------------ values
    def inert(self, value, where, modules=True, seen=None):
        """``value`` may be stored as data: no class or function except dtypes/storage types, and (``modules``)
        module objects only where their owner holds them."""
        seen = set() if seen is None else seen
        if id(value) in seen:
            return
        seen.add(id(value))
        if isinstance(value, _Ref):
            if value.name not in self.data_globals:
                raise Refused(f"{where} holds {value.name} itself (a class or function named at byte {value.pos}) as "
                              f"a value; a checkpoint holds only data and model objects")
        elif isinstance(value, _Made):
            if value.module and not modules:
                raise Refused(f"{where} holds a {value.by} object, where only tensors and plain data belong")
            value.no_modules = value.no_modules or not modules
            for item in value.items:
                self.inert(item, where, modules, seen)
        elif isinstance(value, tuple):
            for item in value:
                self.inert(item, where, modules, seen)

    def ref(self, value, allowed, what, pos):
        if not (isinstance(value, _Ref) and value.name in allowed):
            raise Refused(f"byte {pos}: {what} is {_describe(value)}, not one of {', '.join(sorted(allowed))}")
        return value

    # ------------------------------------------------------------------------------------------------ opcodes
    def call(self, func, args, pos):
        if not isinstance(func, _Ref) or func.name not in CALLS:
            raise Refused(f"byte {pos}: it calls {_describe(func)} with pickled arguments (REDUCE). Loading a "
                          f"checkpoint calls only torch's tensor rebuilders and a few data types; a model class is "
                          f"made empty and given its saved state, never called")
        if not isinstance(args, tuple):
            raise Refused(f"byte {pos}: the arguments of {func.name} are not a tuple")
        kind, where = CALLS[func.name], f"the arguments of {func.name} (byte {pos})"
        if kind == "from_type":  # _rebuild_from_type_v2(func, new_type, args, state) calls func(*args)
            if len(args) != 4 or not isinstance(args[2], tuple):
                raise Refused(f"byte {pos}: {func.name} with unexpected arguments")
            self.ref(args[0], TENSOR_REBUILDERS, f"the function {func.name} would call", pos)
            self.ref(args[1], TENSOR_TYPES, f"the tensor type of {func.name}", pos)
            args = args[2:]
        elif kind == "tensor" and func.name.endswith("_rebuild_wrapper_subclass") and args:
            self.ref(args[0], TENSOR_TYPES, f"the tensor type of {func.name}", pos)
            args = args[1:]
        elif kind == "numpy_array":
            if not args:
                raise Refused(f"byte {pos}: {func.name} without arguments")
            self.ref(args[0], {"numpy.ndarray"}, f"the array type of {func.name}", pos)
            args = args[1:]
        elif kind == "bytes" and not (len(args) == 2 and isinstance(args[0], str) and args[1] == "latin1"):
            raise Refused(f"byte {pos}: {func.name} with arguments other than (text, 'latin1')")
        self.inert(args, where, modules=False)
        container = "dict" if func.name == "collections.OrderedDict" else None
        return _Made(func.name, "call", kind=container)

    def new(self, cls, args, pos):
        if not isinstance(cls, _Ref):
            raise Refused(f"byte {pos}: NEWOBJ of {_describe(cls)}")
        if cls.name in PLAIN_CLASSES:
            self.inert(args, f"the arguments of {cls.name} (byte {pos})", modules=False)
            return _Made(cls.name, "new")
        klass = self.module_class(cls.name)
        if klass is None:
            raise Refused(f"byte {pos}: it makes a {cls.name} object, which is not a model class")
        if args != ():
            raise Refused(f"byte {pos}: it passes arguments to {cls.name}.__new__; torch makes module objects "
                          f"without any")
        for special in ("__new__", "__setstate__"):
            owner = next((c for c in klass.__mro__ if special in vars(c)), object)
            reviewed = f"{owner.__module__}.{owner.__qualname__}.{special}" in REVIEWED_SETSTATE
            if owner is not object and not owner.__module__.startswith("torch.") and not reviewed:
                raise Refused(f"byte {pos}: {cls.name} has its own {special} ({owner.__module__}."
                              f"{owner.__qualname__}.{special}), which loading would run")
        return _Made(cls.name, "new", module=True)

    def build(self, target, state, pos):
        where = f"the state given to {_describe(target)} (BUILD at byte {pos})"
        if isinstance(target, _Made) and target.module:
            self.inert(state, where)
            self.no_hooks(target, state, pos)
        elif isinstance(target, _Made) and (target.by in BUILDABLE_RESULTS or target.kind == "dict"):
            self.inert(state, where, modules=False)
        else:
            raise Refused(f"byte {pos}: it sets the state of {_describe(target)} (BUILD); only module objects, "
                          f"tensors, arrays and OrderedDicts take a state")

    def no_hooks(self, target, state, pos):
        """A module's hooks are called by torch on every forward/backward/state_dict: a checkpoint has none."""
        if not (isinstance(state, _Made) and state.kind == "dict"):
            raise Refused(f"byte {pos}: the state of the {target.by} object is {_describe(state)}, not a dict")
        pairs = state.items
        for key, value in zip(pairs[::2], pairs[1::2]):
            if not (isinstance(key, str) and "hook" in key):
                continue
            if isinstance(value, _Made) and value.kind and not value.items:
                value.sealed = True
            elif value is not None and value is not False:
                raise Refused(f"byte {pos}: the {target.by} object has {key} set; a saved model has no hooks, and "
                              f"torch would call them")

    def fill(self, target, items, pos, kind):
        if not (isinstance(target, _Made) and target.kind == kind):
            raise Refused(f"byte {pos}: it adds items to {_describe(target)}, not a {kind}")
        if target.sealed:
            raise Refused(f"byte {pos}: it adds hooks to a module object after giving it its state")
        for item in items:
            self.inert(item, f"a {kind} (byte {pos})", modules=not target.no_modules)
        target.items += items

    def persistent(self, pid, pos):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise Refused(f"byte {pos}: a persistent id that is not a tensor storage: {pid!r:.80}")
        self.ref(pid[1], self.data_globals, "the storage type", pos)
        self.inert(pid[2:], f"a storage id (byte {pos})", modules=False)
        return _Made("storage", "storage")

    # ------------------------------------------------------------------------------------------------ stack
    def pop(self, pos, n=1):
        if len(self.stack) < n:
            raise Refused(f"byte {pos}: malformed pickle (stack underflow)")
        values = self.stack[-n:]
        del self.stack[-n:]
        return values if n > 1 else values[0]

    def pop_mark(self, pos):
        if not self.marks:
            raise Refused(f"byte {pos}: malformed pickle (no MARK)")
        items, self.stack = self.stack, self.marks.pop()
        return items

    def step(self, op, arg, pos):
        name = op.name

        def push(value):
            self.stack.append(value)  # (the current stack: MARK and pop_mark replace it)

        if name not in OPCODES:
            raise Refused(f"byte {pos}: pickle opcode {name}, which torch's restricted loader does not accept")
        if name == "GLOBAL":
            push(_Ref(_global_name(arg), pos))
        elif name == "REDUCE":
            func, args = self.pop(pos, 2)
            push(self.call(func, args, pos))
        elif name == "NEWOBJ":
            cls, args = self.pop(pos, 2)
            push(self.new(cls, args, pos))
        elif name == "BUILD":
            target, state = self.pop(pos, 2)
            self.build(target, state, pos)
            push(target)
        elif name in ("APPEND", "APPENDS", "SETITEM", "SETITEMS"):
            items = [self.pop(pos)] if name == "APPEND" else self.pop(pos, 2) if name == "SETITEM" else \
                self.pop_mark(pos)
            if not self.stack:
                raise Refused(f"byte {pos}: malformed pickle ({name} without a target)")
            self.fill(self.stack[-1], list(items), pos, "list" if name.startswith("APPEND") else "dict")
        elif name == "MARK":
            self.marks.append(self.stack)
            self.stack = []
        elif name.startswith("TUPLE") or name == "EMPTY_TUPLE":
            n = {"EMPTY_TUPLE": 0, "TUPLE1": 1, "TUPLE2": 2, "TUPLE3": 3}.get(name)
            items = self.pop_mark(pos) if n is None else self.pop(pos, n) if n > 1 else \
                [self.pop(pos)] if n == 1 else []
            push(tuple(items))
        elif name in ("EMPTY_LIST", "EMPTY_DICT", "EMPTY_SET"):
            push(_Made(name[6:].lower(), "literal", kind={"EMPTY_LIST": "list", "EMPTY_DICT": "dict"}.get(name)))
        elif name == "BINPERSID":
            push(self.persistent(self.pop(pos), pos))
        elif name in ("BINPUT", "LONG_BINPUT"):
            if not self.stack:
                raise Refused(f"byte {pos}: malformed pickle (memo of an empty stack)")
            self.memo[arg] = self.stack[-1]
        elif name in ("BINGET", "LONG_BINGET"):
            if arg not in self.memo:
                raise Refused(f"byte {pos}: malformed pickle (memo {arg} is empty)")
            push(self.memo[arg])
        elif name in ("NONE", "NEWFALSE", "NEWTRUE"):
            push({"NONE": None, "NEWFALSE": False, "NEWTRUE": True}[name])
        elif name == "STOP":
            self.inert(self.pop(pos), "the checkpoint")
        elif name != "PROTO":
            push(arg)  # ints, floats, strings


def _describe(value):
    if isinstance(value, _Ref):
        return value.name
    if isinstance(value, _Made):
        return f"a {value.by} object"
    return f"a {type(value).__name__} value"


def known_globals(module_class):
    """Whether a GLOBAL name may appear at all: a rebuild function, a data type, or an allowed model class."""
    plain = set(CALLS) | _data_globals() | TENSOR_TYPES | PLAIN_CLASSES | {"numpy.ndarray"}
    return lambda name: name in plain or module_class(name) is not None


def scan(data, module_class):
    """The GLOBAL names in the pickle ``data`` (bytes of a torch.save archive's data.pkl), after checking that loading
    it only rebuilds tensors and data and makes module objects from their state (see the module docstring).

    ``module_class(name)``: the nn.Module class a GLOBAL names if it is an allowed model class, else None.
    Raises ``UnknownGlobals`` (listing every name that is neither), ``Refused`` (the first thing loading would do
    that a checkpoint never needs), ``ValueError`` for a pickle that is cut off or not a pickle.
    """
    ops = list(pickletools.genops(data))
    if not ops or ops[-1][0].name != "STOP":
        raise ValueError("the pickle ends before its STOP opcode")
    names = {_global_name(arg) for op, arg, _ in ops if op.name == "GLOBAL"}
    known = known_globals(module_class)
    unknown = [name for name in names if not known(name)]
    if unknown:
        raise UnknownGlobals(unknown)
    state = _Scan(module_class)
    for op, arg, pos in ops:
        state.step(op, arg, pos)
    return names


__all__ = ["Refused", "UnknownGlobals", "scan", "known_globals"]
