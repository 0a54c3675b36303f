"""The generated step calls ppl's array kernels; it does not link their code in.

Numba links the LLVM code of every jitted function a function calls into the caller's module,
then optimises and compiles the whole again. A generated step calls some 40-80 array kernels
(``cpu.py`` and ``cpu_*.py``): linked, they made ~3/4 of the step's IR, and the LLVM time of a
new program went mostly to re-optimising and re-emitting kernels already compiled. An array
kernel loops over rows, so inlining it into the step buys little: 2-8% of a step at batch 1,
nothing measurable at batch 32, against a new graph compiling 1.4-2x faster (BENCHMARKS.md, "The
step calls the kernels instead of linking them"); the step declares each kernel and calls the
machine code already in the process. The per-element helpers (``scalar.py``, ``rng.py``) stay
linked and inlined, and kernels keep linking the kernels they call.

Seven parts, installed once (``install``):
- While Numba lowers a function of a generated module (``ppl_gen_*``), the code libraries of
  the array kernels it calls are not linked in: the call is a call to the kernel's symbol,
  which the JIT resolves to the kernel's code, compiled or loaded from the cache during typing.
- Each such symbol is recorded in the cache folder: its module, function and signature.
- Before Numba rebuilds *any* function from its disk cache (a step, or a user's @njit function
  that linked a step), the kernel symbols its code declares and this process lacks are loaded
  first (``kernel.compile(signature)``: the kernel's own cache). A symbol without a record, or
  still missing after it (the kernel's cache was rebuilt since), makes that load a cache miss,
  so the function is compiled again: a cached object with an unresolved symbol would abort the
  process inside LLVM.
- A generated step (``step`` / ``step_rows`` of a ``ppl_gen_*`` module) is optimised once, at
  LLVM's O1 (``STEP_OPT``: no per-function passes, then the module's at O1) instead of twice at
  O3: it is a straight line of kernel calls, so O3 buys nothing at run time (within 2% at
  batch 1 and 32) and cost ~15% of a new graph's compile. Functions it calls, and a user's
  function that calls it, keep Numba's level. A step of kernel calls only (compiled with
  ``_nrt=False``: no user function or row loop of its own, ppl/compiler.py) is also turned into
  machine code at LLVM's code generation level 0 (``STEP_CODEGEN``): ~0.2 s of a two-layer
  graph's first step, run time within 1% (BENCHMARKS.md, "Compile time of a new graph"). Numba
  has one target machine for every module, so the step's object is made here and handed to
  the JIT through Numba's object cache hook, as Numba hands in an object loaded from its disk
  cache; the object is kept for the disk cache. (``inspect_asm`` of such a step shows code
  generated at O3, not the code that runs.)
- The module of a function of ``ppl.kernels`` is optimised twice (``KERNEL_PASSES``). Numba
  runs LLVM's per-function passes before it links a function's callees in, then the module's
  O3 once: a loop over an inlined helper (sigmoid, log, ...) was then left scalar in some
  kernels (REBAR's row function: 35 us a call where 5 us is possible). A caller that links
  such a function optimises its copy again and vectorises it, but in the process that compiled
  them the JIT resolves the shared symbol to the first, scalar copy: a REBAR program ran 2x
  slower in its first process than once loaded from the cache (BENCHMARKS.md).
- A function of ``ppl.kernels`` compiles with Numba's reference counting (NRT) on, set
  explicitly: a step of kernel calls compiles without it (ppl/compiler.py), and Numba lets a
  callee compiled while typing its caller inherit the caller's setting. For the same reason a
  function that sets no ``fastmath`` compiles without fast-math flags and one that sets no
  ``error_model`` with ``"numpy"``: inherited, they were those of whichever caller compiled the
  function first, and Numba's disk cache does not key on them, so a helper's rounding (and
  whether a division by zero raised) depended on the order in which a process, or the one that
  filled the cache, compiled things (BENCHMARKS.md, "REBAR's conditional logistic without log1p").
- A private module-level function of ``ppl.kernels`` (``_name``: the helpers that kernels share,
  row functions) is inlined into its callers (``INLINE_HELPERS``: LLVM's alwaysinline, Numba's
  ``forceinline``). Called, each array argument costs an NRT_incref and an NRT_decref (a call and
  an atomic operation each) around every call, which Numba's reference-count pruning cannot
  remove across a call: ~0.1 us of a 64-element kernel (0.25-0.3 -> 0.11-0.22 us, BENCHMARKS.md),
  and once per row where a row function is called in a loop. Inlined, the pairs meet in one
  function and are pruned. The public kernels are not inlined (the step calls them).
"""
import hashlib
import importlib
import os
import pickle
import threading

PREFIX = "_ZN3ppl7kernels"          # Numba's mangled names of functions in ppl.kernels.*
KERNEL_MODULES = "ppl.kernels.cpu"  # cpu.py and cpu_*.py: the array kernels
GENERATED = "ppl_gen_"              # the modules of generated steps
# LLVM optimisation levels of a generated step's own code, per Numba pass (None: Numba's own)
STEP_OPT = {"_optimize_functions": 0, "_optimize_final_module": 1}
STEP_CODEGEN = 0      # LLVM code generation level of a step of kernel calls (None: Numba's, 3)
STEP_NAMES = ("step", "step_rows")
KERNEL_PASSES = 2     # runs of the module optimisation of a ppl.kernels function (1: Numba's)
CALL_KERNELS = True   # False: link the kernels into the step as Numba does (benchmarks/kernel_calls.py)
INLINE_HELPERS = True  # private helpers of ppl.kernels (``_name``) inlined into their callers

_compiling = threading.local()   # .stack: the dispatchers this thread is compiling, innermost last
_kernel_libs = {}  # id(code library) -> (library, mangled name, record) of array kernels
_recorded = set()  # mangled names whose record this process has written or read


def _records_dir():
    from ._cache import cache_root, kernels_version
    return cache_root() / "numba" / kernels_version() / "symbols"


def _record_path(name):
    return _records_dir() / hashlib.sha256(name.encode()).hexdigest()[:32]


def _write_record(name, record):
    if name in _recorded:
        return
    path = _record_path(name)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(pickle.dumps((name, record)))
        os.replace(tmp, path)
    _recorded.add(name)


def _load_symbol(name, engine) -> bool:
    """Load the kernel overload that defines `name` from its record; True when it is defined."""
    try:
        stored, (modname, qualname, argtypes) = pickle.loads(_record_path(name).read_bytes())
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError):
        return False
    if stored != name or not modname.startswith(KERNEL_MODULES):
        return False
    try:
        kernel = getattr(importlib.import_module(modname), qualname, None)
        if kernel is None or not hasattr(kernel, "compile"):
            return False
        kernel.compile(tuple(argtypes))
    except Exception:   # a kernel renamed or retyped since: the caller is compiled again instead
        return False
    return engine.is_symbol_defined(name)


def _calls_resolvable(target_context, libdata, modname="") -> bool:
    """Whether a cached code library (`libdata`, Numba's serialised form) may be loaded: every
    ppl kernel symbol its object code declares is defined in this process, loading it from its
    record when it is not yet."""
    if modname.startswith("ppl.kernels"):
        return True   # kernels link the kernels they call
    try:
        _name, kind, data = libdata
        bitcode = data[1] if kind == "object" else data
    except (TypeError, ValueError, IndexError):
        return True
    if not isinstance(bitcode, bytes) or PREFIX.encode() not in bitcode:
        return True
    from llvmlite import binding as ll
    engine = target_context.codegen()._engine
    missing = [f.name for f in ll.parse_bitcode(bitcode).functions
               if f.is_declaration and f.name.startswith(PREFIX) and not engine.is_symbol_defined(f.name)]
    return all(_load_symbol(n, engine) for n in missing)


def _in_module(func, prefix: str) -> bool:
    return func is not None and (getattr(func, "__module__", None) or "").startswith(prefix)


def _private_helper(disp) -> bool:
    """Whether `disp` is a private module-level function of ppl.kernels (``_name``), not a kernel."""
    fn = disp.py_func
    mod = importlib.import_module(fn.__module__)
    return fn.__name__.startswith("_") and getattr(mod, fn.__name__, None) is disp


def _compiling_func():
    """The Python function of the innermost dispatcher this thread is compiling, or None."""
    stack = getattr(_compiling, "stack", None)
    return getattr(stack[-1], "py_func", None) if stack else None


def _compiling_step() -> bool:
    func = _compiling_func()
    return _in_module(func, GENERATED) and func.__name__ in STEP_NAMES


def _compiling_call_step() -> bool:
    """Whether the innermost function being compiled is a generated step of kernel calls only:
    the compiler turns Numba's reference counts off for exactly those (ppl/compiler.py)."""
    stack = getattr(_compiling, "stack", None)
    return bool(stack) and _compiling_step() and stack[-1].targetoptions.get("_nrt") is False


_codegen_tms = {}   # code generation level -> a target machine like Numba's, at that level


def _emit_step_object(lib):
    """Turn an array step's optimised module into machine code at STEP_CODEGEN and hand it to
    Numba's object cache hook (``_compiled_object``), which the JIT then loads instead of
    generating the code itself at O3. Kept in ``_ppl_object`` for the disk cache."""
    level = STEP_CODEGEN
    if level is None or not getattr(lib, "_object_caching_enabled", False) or lib._compiled_object is not None:
        return
    tm = _codegen_tms.get(level)
    if tm is None:
        from llvmlite import binding as ll
        options = {}
        lib._codegen._customize_tm_options(options)
        options["opt"] = level
        tm = _codegen_tms[level] = ll.Target.from_triple(ll.get_process_triple()).create_target_machine(**options)
    lib._compiled_object = lib._ppl_object = tm.emit_object(lib._final_module)


def _compiling_kernel() -> bool:
    return _in_module(_compiling_func(), "ppl.kernels")


def _install_step_opt():
    """Parts four and five of the module docstring: the optimisation passes of a code library
    built while the innermost function being compiled is a generated step run at STEP_OPT (and
    a step of kernel calls is turned into machine code at STEP_CODEGEN); those of one built for
    a function of ppl.kernels run KERNEL_PASSES times."""
    try:
        from numba.core import codegen, config
        lib, level = codegen.CPUCodeLibrary, config._OptLevel
    except (ImportError, AttributeError):   # pragma: no cover - another Numba: its own level
        return
    if not all(hasattr(lib, a) for a in ("_optimize_functions", "_optimize_final_module")):
        return   # pragma: no cover

    def at_step_level(name):
        method = getattr(lib, name)

        def run(self, *args):
            if STEP_OPT is None or not _compiling_step():
                return method(self, *args)
            saved = config.OPT
            config.OPT = level(STEP_OPT[name])
            try:
                return method(self, *args)
            finally:
                config.OPT = saved
        setattr(lib, name, run)

    at_step_level("_optimize_functions")
    at_step_level("_optimize_final_module")
    once = lib._optimize_final_module

    def kernel_passes(self):
        once(self)
        if _compiling_kernel():
            for _ in range(KERNEL_PASSES - 1):
                once(self)
    lib._optimize_final_module = kernel_passes
    if all(hasattr(lib, a) for a in ("_finalize_final_module", "enable_object_caching")) and \
            hasattr(codegen.JITCPUCodegen, "_customize_tm_options"):
        optimise = lib._optimize_final_module
        finalize = lib._finalize_final_module

        def optimise_then_emit(self):
            optimise(self)
            if _compiling_call_step():
                _emit_step_object(self)

        def finalize_keep_object(self):
            finalize(self)   # the JIT takes the object through the hook, which clears it
            obj = self.__dict__.pop("_ppl_object", None)
            if obj is not None:   # as Numba's hook for an object it generated: kept for the disk cache
                self._compiled, self._compiled_object = True, obj
        lib._optimize_final_module, lib._finalize_final_module = optimise_then_emit, finalize_keep_object


def install() -> bool:
    """Patch Numba (once) as the module docstring says; False when this Numba lacks a hook."""
    try:
        from numba.core import base, caching, dispatcher
    except ImportError:   # pragma: no cover
        return False
    impl = getattr(caching, "CompileResultCacheImpl", None)
    lib_impl = getattr(caching, "CodeLibraryCacheImpl", None)
    ctx, disp = base.BaseContext, dispatcher.Dispatcher
    if getattr(ctx, "_ppl_link", False):
        return True
    if impl is None or lib_impl is None or not all(hasattr(ctx, a) for a in ("insert_user_function", "add_linking_libs")):
        return False   # pragma: no cover - this Numba keeps linking everything
    insert_user_function, add_linking_libs = ctx.insert_user_function, ctx.add_linking_libs
    compile_, rebuild, rebuild_lib = disp.compile, impl.rebuild, lib_impl.rebuild

    def insert(self, func, fndesc, libs=()):
        modname, qualname = getattr(fndesc, "modname", ""), getattr(fndesc, "qualname", "")
        if len(libs) == 1 and modname.startswith(KERNEL_MODULES) and "<" not in qualname:
            lib = libs[0]
            _kernel_libs[id(lib)] = (lib, fndesc.mangled_name, (modname, qualname, tuple(fndesc.argtypes)))
        return insert_user_function(self, func, fndesc, libs)

    def link(self, libs):
        stack = getattr(_compiling, "stack", None)
        top = stack[-1] if stack else None
        module = getattr(getattr(top, "py_func", None), "__module__", None) or ""
        if CALL_KERNELS and module.startswith(GENERATED):
            kept = []
            for lib in libs:
                known = _kernel_libs.get(id(lib))
                if known is not None and known[0] is lib:
                    _write_record(known[1], known[2])
                else:
                    kept.append(lib)
            libs = kept
        return add_linking_libs(self, libs)

    def compile(self, sig):
        if "_nrt" not in self.targetoptions and _in_module(self.py_func, "ppl.kernels"):
            self.targetoptions["_nrt"] = True   # not inherited from a step without NRT (ppl/compiler.py)
            # nor fast-math flags or an error model from whichever caller compiles it first
            self.targetoptions.setdefault("fastmath", False)
            self.targetoptions.setdefault("error_model", "numpy")
            if INLINE_HELPERS and _private_helper(self):
                self.targetoptions.setdefault("forceinline", True)
        stack = _compiling.__dict__.setdefault("stack", [])
        stack.append(self)
        try:
            return compile_(self, sig)
        finally:
            stack.pop()

    def rebuild_checked(self, target_context, payload):   # a compile result: (libdata, fndesc, ...)
        if not _calls_resolvable(target_context, payload[0], getattr(payload[1], "modname", "")):
            return None   # a cache miss: the function is compiled again
        return rebuild(self, target_context, payload)

    def rebuild_lib_checked(self, target_context, payload):   # a code library (cfunc, ufunc)
        if not _calls_resolvable(target_context, payload):
            return None
        return rebuild_lib(self, target_context, payload)

    ctx.insert_user_function, ctx.add_linking_libs = insert, link
    disp.compile, impl.rebuild, lib_impl.rebuild = compile, rebuild_checked, rebuild_lib_checked
    _install_step_opt()
    ctx._ppl_link = True
    return True
