"""The generated step calls ppl's array kernels; it does not link their code in.

Numba links the LLVM code of every jitted function a function calls into the caller's module,
then optimises and compiles the whole again. A generated step calls some 40-80 array kernels
(``cpu/core.py``, ``cpu_*.py`` and ``families/``): linked, they made ~3/4 of the step's IR, and the
LLVM time of a new program went mostly to re-optimising and re-emitting kernels already compiled. An array
kernel loops over rows, so inlining it into the step buys little: 2-8% of a step at batch 1,
nothing measurable at batch 32, against a new graph compiling 1.4-2x faster
(docs/benchmarks/compile-and-cold-start.md, "The step calls the kernels instead of linking
them"); the step declares each kernel and calls the machine code already in the process. The
per-element helpers (``scalar.py``, ``rng.py``) stay linked and inlined, and kernels keep linking
the kernels they call.

These parts, installed once (``install``):
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
  ``_nrt=False``: no user function or row loop of its own, ppl/compiler/pipeline.py) is also
  turned into machine code at LLVM's code generation level 0 (``STEP_CODEGEN``): ~0.2 s of a
  two-layer graph's first step, run time within 1% (docs/benchmarks/compile-and-cold-start.md,
  "Compile time of a new graph"). Numba has one target machine for every module, so the step's
  object is made here and handed to the JIT through Numba's object cache hook, as Numba hands in
  an object loaded from its disk cache; the object is kept for the disk cache. (``inspect_asm``
  of such a step shows code generated at O3, not the code that runs.)
- The module of a function of ``ppl.kernels`` is optimised twice (``KERNEL_PASSES``) where the
  first run left it without vector code (``SECOND_PASS_IF_SCALAR``). Numba runs LLVM's
  per-function passes before it links a function's callees in, then the module's O3 once: a
  loop over an inlined helper (sigmoid, log, ...) was then left scalar in some kernels (REBAR's
  row function: 35 us a call where 5 us is possible). A caller that links such a function
  optimises its copy again and vectorises it, but in the process that compiled them the JIT
  resolves the shared symbol to the first, scalar copy: a REBAR program ran 2x slower in its
  first process than once loaded from the cache (BENCHMARKS.md). A module the first run
  vectorised gains nothing from the second, which cost about a tenth of a cold first script's
  compile (docs/benchmarks/compile-and-cold-start.md).
- A function of ``ppl.kernels`` compiles with Numba's reference counting (NRT) on, set
  explicitly: a step of kernel calls compiles without it (ppl/compiler/pipeline.py), and Numba lets a
  callee compiled while typing its caller inherit the caller's setting. For the same reason a
  function that sets no ``fastmath`` compiles without fast-math flags and one that sets no
  ``error_model`` with ``"numpy"``: inherited, they were those of whichever caller compiled the
  function first, and Numba's disk cache does not key on them, so a helper's rounding (and
  whether a division by zero raised) depended on the order in which a process, or the one that
  filled the cache, compiled things (docs/benchmarks/kernels.md, "REBAR's conditional logistic
  without log1p").
- A private module-level function of ``ppl.kernels`` (``_name``: the helpers that kernels share,
  row functions) is inlined into its callers (``INLINE_HELPERS``: LLVM's alwaysinline, Numba's
  ``forceinline``). Called, each array argument costs an NRT_incref and an NRT_decref (a call and
  an atomic operation each) around every call, which Numba's reference-count pruning cannot
  remove across a call: ~0.1 us of a 64-element kernel (0.25-0.3 -> 0.11-0.22 us, BENCHMARKS.md),
  and once per row where a row function is called in a loop. Inlined, the pairs meet in one
  function and are pruned. The public kernels are not inlined (the step calls them).
- Numba compiles a function called with an int constant for that value (``Literal[int](16)``),
  a specialisation per value. Parameters named in ``PLAIN_PARAMS`` are compiled for int64
  instead: the noise addresses ``stream`` and ``row0`` (the noise fills were compiled once per
  stochastic node, each its own stream, and again for ``step_rows``, row0 a variable, not 0) and
  ``reps``, a row layout's rows per data row (the row bookkeeping and the Bernoulli ``_rep``
  kernels were compiled once per sample and configuration count), and the measured choice's
  candidate bookkeeping (``cand_*``, kernels/families/candidates.py: it runs only while the
  choice is measured), and offsets into the program's state (``state_off``, ``state_slot``:
  the base of an address, nothing a loop's shape depends on), and a stochastic derivative's
  direction and parameter entry (``tan_d``, ``tan_e``: sd_tangent_grad and tangent_seed were
  compiled once per tangent), and a row digit's layout, its ``stride``, ``span`` and a pair's
  or configuration's ``off`` (the pair, MVD, ARMS, REBAR, RELAX and stochastic-derivative
  kernels were compiled once per layout, so per node and per model). Other constants (sample
  counts, widths, flags) stay literal: the kernels fold them (docs/benchmarks/compile-and-cold-start.md,
  "Cold start", "A row digit's span compiled once", "A row digit's layout compiled once").
- LLVM's loop vectoriser hoists an inner loop's runtime alias checks to the outer loop, widened
  to the outer loop's whole range. A pair kernel writes two rows of one array per iteration (r
  and r + off * stride): widened, the two rows' ranges always overlapped, the check failed and
  the unit loop ran scalar once the distance was not a constant (DisARM's gradient 7x slower).
  A function of ``ppl.kernels`` that takes a ``stride`` or ``off`` (``UNHOISTED_PARAMS``) is
  optimised with the checks left in the loop they guard (LLVM's ``-hoist-runtime-checks=false``,
  set for that library's passes and set back after: LLVM's options are the process's);
  elsewhere they stay hoisted, one check per call instead of one per row.
- A helper of the kernels (a function of ``kernels/math/`` or a private ``_name`` of ``ppl.kernels``:
  per-element math, row functions, inlined into its callers) compiled while a caller is typed is
  compiled without Numba's CPython wrapper (``PYTHON_WRAPPERS``): only compiled code calls it, and
  the wrapper (boxing and unboxing each argument) was lowered, optimised and turned into machine
  code for nothing. A call from Python of such a signature (a test, a user at the prompt) is
  answered by a twin of the function compiled with its wrapper and without a disk cache
  (``numba_compat.python_entry``); Numba would otherwise call the missing wrapper. From
  ``install`` on, such a result (compiled, or loaded from the cache) stays out of the table Numba
  looks a Python call up in, so a second thread calling meanwhile waits for the twin too.
- A function of ``ppl.kernels`` compiles without Numba's C-callable wrapper (``C_WRAPPERS``),
  which only a first-class function value uses (a ``numba.types.FunctionType`` argument, such
  as the optimiser update that fit's chunk loop takes: it sets ``no_cfunc_wrapper=False``
  itself). Every compiled function had one, lowered, optimised and turned into machine code for
  nothing: about an eighth of a cold first script's compile (docs/benchmarks/compile-and-cold-start.md).
- Numba runs LLVM's per-function passes on each function of a module added to a code library,
  then the module's passes on the whole. Of a module's functions only its own definitions are
  given the per-function passes, not Numba's CPython and C wrappers (``WRAPPER_FUNCTION_PASSES``)
  nor its declarations (Numba made a pass manager for each and ran it on nothing): a wrapper
  is optimised with the rest by the module's passes, which reach every function. Every library
  of the process, a user's functions too.
- The CPython wrapper of a function of ``ppl.kernels`` (an array kernel an interpreted first step
  or the Python runtime calls) is not optimised (``OPTIMISED_WRAPPERS``; LLVM's ``optnone``): the
  module's passes and code generation skipped it cheaply, and it unboxes the arguments and calls
  the optimised function as before, a few tens of nanoseconds slower per call from Python.
  Generated steps and users' functions keep Numba's optimised wrapper.
- Python's cyclic garbage collector is paused while ppl's code compiles (``PAUSE_GC``: an
  outermost compile of a kernel, a generated step or fit's loop, on any thread, until the last
  one ends; a collector the process had turned off stays off). A compile allocates millions of
  objects, most of them kept (types, templates, code libraries), and at the default thresholds
  the collector walked the process's long-lived objects again and again, a measurable part of a
  new graph's first gradient and of a cold run (docs/benchmarks/compile-and-cold-start.md,
  "Python's collector paused while ppl compiles"). What a compile leaves as cyclic garbage is
  collected once it ends. And the objects alive at the end of ``import ppl`` (the modules of
  Numba, NumPy, SciPy and ppl) are moved out of the collector's generations
  (``freeze_imported``, ``gc.freeze``): a full collection walked them all again, the first one
  during a process's first compile. ``PPL_COMPILE_GC=1`` leaves the collector as it is.
"""
import gc
import hashlib
import importlib
import os
import pickle
import re
import threading
from functools import lru_cache

from . import numba_compat

PREFIX = "_ZN3ppl7kernels"          # Numba's mangled names of functions in ppl.kernels.*
KERNEL_MODULES = ("ppl.kernels.cpu.", "ppl.kernels.families.")  # cpu/ and the families: the array kernels
NOT_KERNELS = ("ppl.kernels.native.blas", "ppl.kernels.native.simd")     # helpers the kernels call, not kernels


def _is_kernel_module(modname: str) -> bool:
    return modname.startswith(KERNEL_MODULES) and not modname.startswith(NOT_KERNELS)
GENERATED = "ppl_gen_"              # the modules of generated steps
# LLVM optimisation levels of a generated step's own code, per Numba pass (None: Numba's own)
STEP_OPT = {"_optimize_functions": 0, "_optimize_final_module": 1}
STEP_CODEGEN = 0      # LLVM code generation level of a step of kernel calls (None: Numba's, 3)
STEP_NAMES = ("step", "step_rows")
KERNEL_PASSES = 2     # runs of the module optimisation of a ppl.kernels function (1: Numba's)
SECOND_PASS_IF_SCALAR = True   # ... the second only where the first left no float vector code
# runtime alias checks not hoisted to the outer loop in a kernel taking one of UNHOISTED_PARAMS
# (the module docstring, "LLVM's loop vectoriser hoists"; True: LLVM's default for those kernels too)
HOIST_RUNTIME_CHECKS = False
UNHOISTED_PARAMS = frozenset({"stride", "off"})
_FLOAT_VECTOR = re.compile(r"<\d+ x (?:float|double)>")
KERNEL_FUNCTION_PASSES = True   # False: no per-function passes for a ppl.kernels function (measured, not kept)
CALL_KERNELS = True   # False: link the kernels into the step as Numba does (benchmarks/experiments/kernel_calls.py)
# parameters of ppl.kernels functions compiled for int64 even when a caller passes a constant:
# noise addresses (each stochastic node has its own stream; step and step_rows pass row0 0 and
# a variable) and `reps`, rows per data row (a kernel that takes it walks a data row's rows in
# an inner loop, or divides once per row), so one specialisation serves every node, entry and
# sample count, and a row digit's layout (`stride`, `span`, `off`: read once per row; the pair
# kernels' unit loops vectorise with a variable distance, UNHOISTED_PARAMS). Other constants
# (sample counts, widths, flags) stay literal: the kernels fold them.
PLAIN_PARAMS = frozenset({"stream", "row0", "reps", "cand_k", "cand_stride", "cand_lo", "cand_hi", "cand_span",
                          "state_off", "state_slot", "tan_d", "tan_e", "span", "stride", "off"})
INLINE_HELPERS = True  # private helpers of ppl.kernels (``_name``) inlined into their callers
PYTHON_WRAPPERS = False  # True: helpers compiled for a caller keep Numba's CPython wrapper (Numba's default)
C_WRAPPERS = False  # True: every function of ppl.kernels keeps Numba's C-callable wrapper (Numba's default)
WRAPPER_FUNCTION_PASSES = False  # True: Numba's per-function passes also run on its wrappers
OPTIMISED_WRAPPERS = False  # True: the CPython wrappers of ppl.kernels functions are optimised (Numba's default)
WRAPPERS = ("_ZN7cpython", "cfunc.")   # the names of Numba's CPython and C wrappers of a function (mangled, and not)
HELPER_MODULES = ("ppl.kernels.math.",)   # modules of helpers only compiled code calls (with the private ``_name``s)

PAUSE_GC = os.environ.get("PPL_COMPILE_GC", "") != "1"   # the collector paused while ppl's code compiles

_compiling = threading.local()   # .stack: the dispatchers this thread is compiling, innermost last
_gc_lock = threading.Lock()
_gc_pauses = [0, False]   # outermost compiles of ppl's code in progress (all threads); whether the collector was on
_kernel_libs = {}  # id(code library) -> (library, mangled name, record) of array kernels
_recorded = set()  # mangled names whose record this process has written or read
_installed = []


def _records_dir():
    from ._cache import cache_root, kernels_version
    return cache_root() / "numba" / kernels_version() / "symbols"


def _record_path(name):
    return _records_dir() / hashlib.sha256(name.encode()).hexdigest()[:32]


def _read_record(name):
    """The record of symbol `name`: (module, function, argument types); None when there is
    none. A record that cannot be read or is not one of `name` is reported (``CacheWarning``)
    and read as none: the caller is compiled again and the record rewritten."""
    path = _record_path(name)
    try:
        raw = path.read_bytes()
    except OSError:
        return None
    try:
        stored, (modname, qualname, argtypes) = pickle.loads(raw)
        if stored != name or not isinstance(modname, str) or not isinstance(qualname, str):
            raise ValueError(f"not the record of {name}")
        return modname, qualname, tuple(argtypes)
    except Exception as e:  # noqa: BLE001 - truncated, garbled or foreign: any unpickling error
        from ._cache import report_damage
        report_damage(path, e)
        return None


def _write_record(name, record):
    if name in _recorded:
        return
    path = _record_path(name)
    if not path.exists() or _read_record(name) is None:   # none yet, or a damaged one: rewritten
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            tmp.write_bytes(pickle.dumps((name, record)))
            os.replace(tmp, path)
        except OSError as e:   # a full disk: the next run compiles the caller again
            from ._cache import cannot_write
            cannot_write(path, e)
    _recorded.add(name)


def _load_symbol(name, target_context) -> bool:
    """Load the kernel overload that defines `name` from its record; True when it is defined."""
    record = _read_record(name)
    if record is None:
        return False
    modname, qualname, argtypes = record
    if not _is_kernel_module(modname):
        return False
    try:
        kernel = getattr(importlib.import_module(modname), qualname, None)
        if kernel is None or not hasattr(kernel, "compile"):
            return False
        kernel.compile(tuple(argtypes))
    except Exception:   # a kernel renamed or retyped since: the caller is compiled again instead
        return False
    return numba_compat.symbol_defined(target_context, name)


def _calls_resolvable(target_context, libdata, modname="") -> bool:
    """Whether a cached code library (`libdata`, Numba's serialised form) may be loaded: every
    ppl kernel symbol its object code declares is defined in this process, loading it from its
    record when it is not yet."""
    if modname.startswith("ppl.kernels"):
        return True   # kernels link the kernels they call
    bitcode = numba_compat.library_bitcode(libdata)
    if bitcode is None or PREFIX.encode() not in bitcode:
        return True
    from llvmlite import binding as ll
    missing = [f.name for f in ll.parse_bitcode(bitcode).functions
               if f.is_declaration and f.name.startswith(PREFIX)
               and not numba_compat.symbol_defined(target_context, f.name)]
    return all(_load_symbol(n, target_context) for n in missing)


def _in_module(func, prefix) -> bool:   # prefix: a module prefix, or a tuple of them
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
    the compiler turns Numba's reference counts off for exactly those (ppl/compiler/pipeline.py)."""
    stack = getattr(_compiling, "stack", None)
    return bool(stack) and _compiling_step() and numba_compat.nrt_option(stack[-1]) is False


def _compiling_kernel() -> bool:
    return _in_module(_compiling_func(), "ppl.kernels")


# Parts four and five of the module docstring: the optimisation passes of a code library built
# while the innermost function being compiled is a generated step run at STEP_OPT (and a step of
# kernel calls is turned into machine code at STEP_CODEGEN); those of one built for a function
# of ppl.kernels run KERNEL_PASSES times.
def _opt_level(name):
    if STEP_OPT is not None and _compiling_step():
        return STEP_OPT[name]
    if name == "_optimize_functions" and not KERNEL_FUNCTION_PASSES and _compiling_kernel():
        return 0
    return None


def _unoptimised_wrapper(modname: str) -> bool:
    return not OPTIMISED_WRAPPERS and modname.startswith("ppl.kernels")


def _function_passes(name: str) -> bool:
    return WRAPPER_FUNCTION_PASSES or not name.startswith(WRAPPERS)


def _extra_module_passes(ir) -> int:
    if not _compiling_kernel() or KERNEL_PASSES < 2:
        return 0
    return 0 if SECOND_PASS_IF_SCALAR and _FLOAT_VECTOR.search(ir()) else KERNEL_PASSES - 1


def _llvm_options():
    if HOIST_RUNTIME_CHECKS or not _compiling_kernel():
        return ()
    if UNHOISTED_PARAMS.isdisjoint(_params(_compiling_func())):
        return ()
    return (("-hoist-runtime-checks=false", "-hoist-runtime-checks=true"),)


def _object_level():
    return STEP_CODEGEN if STEP_CODEGEN is not None and _compiling_call_step() else None


def _on_user_function(lib, mangled_name, modname, qualname, argtypes):
    if _is_kernel_module(modname) and "<" not in qualname:
        _kernel_libs[id(lib)] = (lib, mangled_name, (modname, qualname, argtypes))


def _linked_libraries(libs):
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
    return libs


@lru_cache(maxsize=None)
def _params(func) -> tuple:
    """The names of ``func``'s parameters, in order."""
    code = func.__code__
    return code.co_varnames[:code.co_argcount]


@lru_cache(maxsize=None)
def _plain_positions(func) -> frozenset:
    return frozenset(i for i, n in enumerate(_params(func)) if n in PLAIN_PARAMS)


# called with no argument before a compile that no other compile of this thread encloses (a
# kernel the step's typing reaches): the compile helper runs the jobs the program's process
# needs first there (ppl/compiler/ahead.py). A hook that raises is not this compile's failure.
before_outer_compile = []


_twins = {}   # helper dispatcher -> the same function with its CPython wrapper, for calls from Python
_twin_ids = set()


def _helper(disp) -> bool:
    """Whether `disp` is a helper of the kernels: a function of HELPER_MODULES or a private one
    (not a twin `_python_call` made)."""
    return id(disp) not in _twin_ids and _in_module(disp.py_func, "ppl.kernels") \
        and (_in_module(disp.py_func, HELPER_MODULES) or _private_helper(disp))


def _python_call(compile_, disp, sig):
    """An outer compile of a helper (a call from Python): the compile result, or, where it has no
    CPython wrapper (made for a caller, or loaded so from the disk cache), its twin's."""
    entry = compile_(disp, sig)
    return numba_compat.python_entry(disp, sig, lambda: _twin(disp)) or entry


def _twin(disp):
    twin = _twins.get(disp)
    if twin is None:
        from numba import jit
        opts = {k: v for k, v in disp.targetoptions.items() if k != "no_cpython_wrapper"}
        twin = _twins[disp] = jit(**opts)(disp.py_func)
        _twin_ids.add(id(twin))
    return twin


def freeze_imported():
    """Called at the end of ``import ppl``: the objects alive then, modules and their functions and
    tables, are kept out of the collector's future walks (part twelve of the module docstring)."""
    if PAUSE_GC:
        gc.freeze()


def _pause_gc():
    with _gc_lock:
        if _gc_pauses[0] == 0:
            _gc_pauses[1] = gc.isenabled()
            gc.disable()
        _gc_pauses[0] += 1


def _resume_gc():
    with _gc_lock:
        _gc_pauses[0] -= 1
        if _gc_pauses[0] == 0 and _gc_pauses[1]:
            gc.enable()


def _compile(compile_, disp, sig):
    outer = not getattr(_compiling, "stack", None)
    if outer and before_outer_compile:
        for hook in tuple(before_outer_compile):
            try:
                hook()
            except Exception:   # noqa: BLE001 - the hook's own work fails alone
                pass
    # ppl's code (its kernels, fit's loop, a generated step) compiles with the collector paused
    if not (outer and PAUSE_GC and _in_module(disp.py_func, ("ppl.", GENERATED))):
        return _compile_inner(compile_, disp, sig)
    _pause_gc()
    try:
        return _compile_inner(compile_, disp, sig)
    finally:
        _resume_gc()


def _compile_inner(compile_, disp, sig):
    if numba_compat.nrt_option(disp) is None and _in_module(disp.py_func, "ppl.kernels"):
        numba_compat.set_nrt_option(disp, True)   # not inherited from a step without NRT (ppl/compiler/pipeline.py)
        # nor fast-math flags or an error model from whichever caller compiles it first
        disp.targetoptions.setdefault("fastmath", False)
        disp.targetoptions.setdefault("error_model", "numpy")
        if INLINE_HELPERS and _private_helper(disp):
            disp.targetoptions.setdefault("forceinline", True)
        if not C_WRAPPERS:
            disp.targetoptions.setdefault("no_cfunc_wrapper", True)
    if PLAIN_PARAMS and _in_module(disp.py_func, "ppl.kernels"):
        sig = numba_compat.unliteral_signature(sig, _plain_positions(disp.py_func))
    stack = _compiling.__dict__.setdefault("stack", [])
    stack.append(disp)
    try:
        if PYTHON_WRAPPERS or not _helper(disp):
            return compile_(disp, sig)
        if len(stack) == 1:   # an outer compile: a call from Python
            return _python_call(compile_, disp, sig)
        return numba_compat.compile_without_python_wrapper(compile_, disp, sig)
    finally:
        stack.pop()


def install() -> bool:
    """Patch Numba (once) as the module docstring says; False when this Numba lacks a hook
    (``numba_compat`` holds every use of Numba's internals)."""
    if _installed:
        return True
    if not numba_compat.install_link_hooks(_on_user_function, _linked_libraries, _calls_resolvable):
        return False   # pragma: no cover - this Numba keeps linking everything
    numba_compat.wrap_compile(_compile)
    if not PYTHON_WRAPPERS:   # before a helper without its wrapper is loaded from the cache
        numba_compat.keep_wrapperless_out_of_tables()
    numba_compat.install_opt_hooks(_opt_level, _extra_module_passes, _object_level, _function_passes,
                                    _llvm_options)
    numba_compat.install_wrapper_hook(_unoptimised_wrapper)
    _installed.append(True)
    return True
