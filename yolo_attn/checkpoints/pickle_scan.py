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


# --- bounds: the scan's cost and what loading may allocate (docs/security.md gives the measured real sizes) ---
MAX_OPS = 1_000_000  # opcodes in data.pkl, and memo entries (yolo11x last.pt with SGD state: 121,352 and 25,963;
                     # genops alone reads 2M opcodes in 0.5 s)
MAX_DEPTH = 200  # nesting of containers/objects (last.pt with SGD state: yolov5x 27, yolo11x 33)
MAX_ELEMENTS = 2 ** 31  # elements of one tensor, array or storage

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
        self.state = None  # a module object's BUILD state (the dict of its attributes)
        self.height = 0  # how deep it nests (Scan.grow)


def global_name(arg):
    """``module.qualname`` of a GLOBAL opcode's argument (py2 names mapped as torch maps them)."""
    module, name = arg.split(" ", 1)
    if (module, name) in NAME_MAPPING:
        module, name = NAME_MAPPING[(module, name)]
    elif module in IMPORT_MAPPING:
        module = IMPORT_MAPPING[module]
    return f"{module}.{name}"


class _Scan:
    def __init__(self, module_class, model_class=None):
        self.module_class, self.data_globals = module_class, _data_globals()
        self.model_class = model_class or module_class
        self.stack, self.marks, self.memo = [], [], {}
        self.storages = []  # (record key, numel, storage type name) of every tensor storage the pickle loads
        self.checked, self.tuple_heights = {}, {}  # id -> (object, ...): see inert() and height()
        self.data_seen = {}  # id -> object: values data_only() found free of modules
        self.sized = {}  # id -> tuple: tuples check_sizes() passed

    # ------------------------------------------------------------------------------------------------ values
    def inert(self, value, where, modules=True):
        """``value`` may be stored as data: no class or function except dtypes/storage types, and (``modules``)
        module objects only where their owner holds them. Iterative, and each object is walked once per mode (what is
        added to it later is checked by ``fill``), so a memo-shared object costs nothing more each time it is used."""
        stack = [value]
        while stack:
            v = stack.pop()
            if not isinstance(v, (_Ref, _Made, tuple)):
                continue
            done = self.checked.get(id(v))
            if done is not None and (done[1] or modules):
                continue
            self.checked[id(v)] = (v, not modules)  # (the object is kept: its id stays its own)
            if isinstance(v, _Ref):
                if v.name not in self.data_globals:
                    raise Refused(f"{where} holds {v.name} itself (a class or function named at byte {v.pos}) as "
                                  f"a value; a checkpoint holds only data and model objects")
            elif isinstance(v, _Made):
                if v.module and not modules:
                    raise Refused(f"{where} holds a {v.by} object, where only tensors and plain data belong")
                v.no_modules = v.no_modules or not modules
                stack.extend(v.items)
            else:
                stack.extend(v)

    def height(self, value):
        """How deep ``value`` nests (kept per object as it is made and filled: O(1))."""
        if isinstance(value, _Made):
            return value.height
        if isinstance(value, tuple):
            return self.tuple_heights.get(id(value), (None, 0))[1]
        return 0

    def grow(self, target, items, pos):
        """``target`` now holds ``items``: its height, bounded by MAX_DEPTH (deeper data would break the recursive
        code that later walks a checkpoint: repr, deepcopy, module traversal)."""
        h = 1 + max((self.height(x) for x in items), default=0)
        if h > MAX_DEPTH:
            raise Refused(f"byte {pos}: objects nested more than {MAX_DEPTH} levels deep; a yolo11x last.pt nests 33")
        if isinstance(target, _Made):
            target.height = max(target.height, h)
        else:
            self.tuple_heights[id(target)] = (target, h)
        return target

    def check_tree(self, root):
        """Where module objects may be: the checkpoint dict's 'model'/'ema' (a model class) and the ``_modules`` of a
        module object, nowhere else (not in another attribute, a list, a namespace, ...): yolov5/ultralytics call
        what they find in a model's attributes, and a module there would be code chosen by the file. Every module
        object is given its state (a dict) exactly once."""
        if not (isinstance(root, _Made) and root.kind == "dict"):
            return  # not a checkpoint dict: load_checkpoint says what it is
        pairs = root.items
        todo = []
        for key, value in zip(pairs[::2], pairs[1::2]):
            if isinstance(value, _Made) and value.module:
                if key not in ("model", "ema"):
                    raise Refused(f"the checkpoint's {key!r} is a {value.by} object; only 'model' and 'ema' hold a "
                                  f"model")
                if self.model_class(value.by) is None:
                    raise Refused(f"the checkpoint's {key!r} is a {value.by} object, which is not a model class "
                                  f"(a yolov5/ultralytics DetectionModel, SegmentationModel, ...)")
                todo.append((value, f"the checkpoint's {key!r}", 0))
            else:
                self.data_only(value, f"the checkpoint's {key!r}")
        done = set()
        while todo:
            module, where, depth = todo.pop()
            if id(module) in done:
                continue
            done.add(id(module))
            if depth > MAX_DEPTH:
                raise Refused(f"{where}: modules nested more than {MAX_DEPTH} deep")
            state = module.state
            if state is None:
                raise Refused(f"{where} ({module.by}) is made but never given its state")
            pairs = state.items
            for key, value in zip(pairs[::2], pairs[1::2]):
                if key != "_modules":
                    self.data_only(value, f"{where} ({module.by}).{key}")
                    continue
                if not (isinstance(value, _Made) and value.kind == "dict"):
                    raise Refused(f"{where} ({module.by})._modules is {_describe(value)}, not a dict")
                if id(value) in done:
                    continue  # (one dict shared through the memo: walked once)
                done.add(id(value))
                sub = value.items
                for name, child in zip(sub[::2], sub[1::2]):
                    if child is None:
                        continue
                    if not (isinstance(name, str) and isinstance(child, _Made) and child.module):
                        raise Refused(f"{where} ({module.by})._modules[{name!r:.40}] is {_describe(child)}, not a "
                                      f"module")
                    todo.append((child, f"{where}.{name}", depth + 1))

    def data_only(self, value, where):
        """``value`` holds no module object at any depth (iteratively: its depth is bounded by ``inert``)."""
        stack, seen = [value], self.data_seen  # (shared by every call: an object shared through the memo is walked
        while stack:                                 # once, however many attributes hold it)
            v = stack.pop()
            if id(v) in seen:
                continue
            seen[id(v)] = v
            if isinstance(v, _Made):
                if v.module:
                    raise Refused(f"{where} holds a {v.by} object; a model's modules are only in its _modules (a "
                                  f"module elsewhere would be called by yolov5/ultralytics code as the file chose)")
                stack.extend(v.items)
            elif isinstance(v, tuple):
                stack.extend(v)

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
        if func.name == "builtins.bytearray" and any(isinstance(a, int) for a in args):
            raise Refused(f"byte {pos}: builtins.bytearray of a size ({args[0]!r:.40}): it would allocate memory; a "
                          f"checkpoint stores bytes, not sizes")
        self.inert(args, where, modules=False)
        check_sizes(args, where, self.sized)
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
            if target.state is not None:
                raise Refused(f"byte {pos}: it gives the {target.by} object its state twice (BUILD)")
            self.inert(state, where)
            self.no_hooks(target, state, pos)
            target.state = state
        elif isinstance(target, _Made) and (target.by in BUILDABLE_RESULTS or target.kind == "dict"):
            self.inert(state, where, modules=False)
            check_sizes(state, where, self.sized)
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
        self.grow(target, items, pos)

    def persistent(self, pid, pos):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise Refused(f"byte {pos}: a persistent id that is not a tensor storage: {pid!r:.80}")
        self.ref(pid[1], self.data_globals, "the storage type", pos)
        self.inert(pid[2:], f"a storage id (byte {pos})", modules=False)
        key, numel = pid[2], pid[4]
        if not (isinstance(key, str) and isinstance(numel, int) and not isinstance(numel, bool)
                and 0 <= numel <= MAX_ELEMENTS):
            raise Refused(f"byte {pos}: a tensor storage with record {key!r:.40} and {numel!r:.40} elements")
        self.storages.append((key, numel, pid[1].name))
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
            push(_Ref(global_name(arg), pos))
        elif name == "REDUCE":
            func, args = self.pop(pos, 2)
            push(self.grow(self.call(func, args, pos), [args], pos))
        elif name == "NEWOBJ":
            cls, args = self.pop(pos, 2)
            push(self.new(cls, args, pos))
        elif name == "BUILD":
            target, state = self.pop(pos, 2)
            self.build(target, state, pos)
            push(self.grow(target, [state], pos) if isinstance(target, _Made) else target)
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
            push(self.grow(tuple(items), items, pos) if items else ())
        elif name in ("EMPTY_LIST", "EMPTY_DICT", "EMPTY_SET"):
            push(_Made(name[6:].lower(), "literal", kind={"EMPTY_LIST": "list", "EMPTY_DICT": "dict"}.get(name)))
        elif name == "BINPERSID":
            push(self.persistent(self.pop(pos), pos))
        elif name in ("BINPUT", "LONG_BINPUT"):
            if not self.stack:
                raise Refused(f"byte {pos}: malformed pickle (memo of an empty stack)")
            if len(self.memo) >= MAX_OPS:
                raise Refused(f"byte {pos}: more than {MAX_OPS:,} memo entries")
            self.memo[arg] = self.stack[-1]
        elif name in ("BINGET", "LONG_BINGET"):
            if arg not in self.memo:
                raise Refused(f"byte {pos}: malformed pickle (memo {arg} is empty)")
            push(self.memo[arg])
        elif name in ("NONE", "NEWFALSE", "NEWTRUE"):
            push({"NONE": None, "NEWFALSE": False, "NEWTRUE": True}[name])
        elif name == "STOP":
            root = self.pop(pos)
            self.inert(root, "the checkpoint")
            self.check_tree(root)
        elif name != "PROTO":
            push(arg)  # ints, floats, strings


def _describe(value):
    if isinstance(value, _Ref):
        return value.name
    if isinstance(value, _Made):
        return f"a {value.by} object"
    return f"a {type(value).__name__} value"


def check_sizes(value, where, seen=None):
    """A tuple of integers (a shape, a size, a stride) must not describe more than MAX_ELEMENTS elements: loading
    allocates some of them before it checks them against the stored bytes. ``seen``: {id: tuple} already checked
    (a tuple shared through the memo is checked once per scan)."""
    stack, seen = [value], {} if seen is None else seen
    while stack:
        v = stack.pop()
        if isinstance(v, tuple):
            if id(v) in seen:
                continue
            seen[id(v)] = v
            if v and all(isinstance(x, int) and not isinstance(x, bool) for x in v):
                total = 1
                for x in v:
                    total *= abs(x) if x else 1
                    if total > MAX_ELEMENTS:
                        raise Refused(f"{where} gives a size of more than {MAX_ELEMENTS:,} elements ({v!r:.60})")
            stack.extend(v)
        elif isinstance(v, int) and not isinstance(v, bool) and abs(v) > 2 ** 62:
            raise Refused(f"{where} holds an integer of {v.bit_length()} bits")


def known_globals(module_class):
    """Whether a GLOBAL name may appear at all: a rebuild function, a data type, or an allowed model class."""
    plain = set(CALLS) | _data_globals() | TENSOR_TYPES | PLAIN_CLASSES | {"numpy.ndarray"}
    return lambda name: name in plain or module_class(name) is not None


def scan(data, module_class, model_class=None):
    """A ``_Scan`` of the pickle ``data`` (bytes of a torch.save archive's data.pkl), after checking that loading it
    only rebuilds tensors and data and makes module objects from their state (see the module docstring); its
    ``names`` are the GLOBAL names, its ``storages`` the tensor storages the pickle loads.

    ``module_class(name)``: the nn.Module class a GLOBAL names if it is an allowed model class, else None;
    ``model_class(name)``: the same for the checkpoint's 'model'/'ema' (default: ``module_class``).
    Raises ``UnknownGlobals`` (listing every name that is neither), ``Refused`` (the first thing loading would do
    that a checkpoint never needs, or a bound exceeded), ``ValueError`` for a pickle that is cut off or not a pickle.
    """
    names, count, last = set(), 0, None
    for op, arg, pos in pickletools.genops(data):  # first pass: bounds and names only, nothing kept per opcode
        count += 1
        if count > MAX_OPS:
            raise Refused(f"its data.pkl has more than {MAX_OPS:,} pickle opcodes; the largest real checkpoints "
                          f"have far fewer")
        last = op.name
        if last not in OPCODES:  # at once: a bomb of some other opcode costs nothing to refuse
            raise Refused(f"byte {pos}: pickle opcode {last}, which torch's restricted loader does not accept")
        if last == "GLOBAL":
            names.add(global_name(arg))
    if last != "STOP":
        raise ValueError("the pickle ends before its STOP opcode")
    known = known_globals(module_class)
    unknown = [name for name in names if not known(name)]
    if unknown:
        raise UnknownGlobals(unknown)
    state = _Scan(module_class, model_class)
    for op, arg, pos in pickletools.genops(data):
        state.step(op, arg, pos)
    state.names = names
    return state


__all__ = ["MAX_DEPTH", "MAX_ELEMENTS", "MAX_OPS", "OPCODES", "Refused", "UnknownGlobals", "check_sizes",
           "global_name", "known_globals", "scan"]
