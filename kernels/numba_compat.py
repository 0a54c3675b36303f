"""Every use of Numba's private API in ppl, behind one small surface.

ppl changes how Numba caches and links functions (``_cache.py``: where cache files go, a lock
per function, damaged files read as misses; ``_link.py``: the step calls the kernels, symbol
records, optimisation levels) and asks whether a loop is in the disk cache (``ppl/training/fit.py``).
That needs Numba's internals: ``numba.core.caching`` (cache locators, index and data files,
the per-function ``Cache``), ``numba.core.codegen`` (code libraries, the JIT engine, the target
machine), ``numba.core.base`` and ``numba.core.dispatcher``, and underscore attributes of their
objects. They change between Numba releases, so they are all here (the disk cache's in
``numba_cache.py``, exported here) and nowhere else: the other
modules of ppl (``ppl/`` and ``kernels/``) use only the functions below and Numba's public or
extension API (``njit``, ``types``, ``errors``, ``extending``, ``cgutils``). An installer whose
hook this Numba lacks changes nothing and returns False: Numba then keeps its own behaviour.
(One private detail stays outside: the ``_nrt=False`` option of a generated step, which is part
of the step's source text, ``ppl/compiler/pipeline.py``.)

The surface:

- ``is_cached(dispatcher, sig)``: compiled in this process, or in Numba's disk cache;
  ``cache_index_path(cache)``: the index file of a function's disk cache.
- ``add_cache_locator(owns, cache_dir)``: a cache locator, first in Numba's list;
  ``lazy_function_caches(owns)``: a function's disk cache made at its first use.
- ``read_damaged_as_miss(report)``: a cache index or data file that cannot be read, or an entry
  that cannot be rebuilt, is a cache miss (``report(path, error)`` is told), never an error.
- ``wrap_cache_io(load, save)``, ``wrap_compile(around)``: every disk cache's load and save, every
  ``Dispatcher.compile``, through these.
- ``nrt_option(dispatcher)`` / ``set_nrt_option(dispatcher, on)``: Numba's reference counting
  option of a dispatcher; ``unliteral_signature(sig, positions)``: int constants typed as int64.
- ``compile_without_python_wrapper(...)``, ``python_entry(...)``, ``has_python_wrapper(cres)``: a
  compile for compiled callers only, and a Python call of such a signature answered by a twin;
  ``keep_wrapperless_out_of_tables()``: such results kept out of Numba's table for Python calls.
- ``library_bitcode(libdata)``, ``symbol_defined(target_context, name)``: a cached code
  library's LLVM bitcode, and whether the JIT defines a symbol; ``optimised_ir(dispatcher, sig)``:
  the optimised LLVM IR of a specialisation, also of one loaded from the disk cache.
- ``types_only(fn, signature)``: a Python function typed as the nopython pipeline types it, not
  lowered (the functions its calls reach are compiled on the way); the argument types of its calls.
- ``install_link_hooks(...)``, ``install_opt_hooks(...)`` and ``install_wrapper_hook(...)``:
  ``_link.py``'s hooks into Numba's lowering (user functions, linked libraries, cache rebuilds)
  and code generation (optimisation and code generation levels; CPython wrappers left
  unoptimised).
- ``defer_blas_check()``: Numba's import-time check for SciPy's BLAS no longer imports
  ``scipy.linalg``; Numba's own linear algebra still imports it, and checks it, when a function
  that uses it is compiled. ``parfor_max_tuple_size()``: Numba's limit on a parallel loop's tuples.
"""

from functools import lru_cache

from .numba_cache import (add_cache_locator, cache_index_path, is_cached, lazy_function_caches,  # noqa: F401
                          read_damaged_as_miss, wrap_cache_io)


# ---------------------------------------------------------------------------- dispatchers, JIT

def wrap_compile(around) -> bool:
    """Route every ``Dispatcher.compile(sig)`` (a CPU ``@njit`` function compiling, or loading
    from its disk cache, one signature) through ``around(original, dispatcher, sig)``."""
    try:
        from numba.core import dispatcher
    except ImportError:   # pragma: no cover
        return False
    compile_ = dispatcher.Dispatcher.compile

    def compile(self, sig):
        return around(compile_, self, sig)

    dispatcher.Dispatcher.compile = compile
    return True


def has_python_wrapper(cres) -> bool:
    """Whether a compile result has its CPython wrapper (a call from Python can run it)."""
    return bool(cres.objectmode) or cres.library.get_pointer_to_function(cres.fndesc.llvm_cpython_wrapper_name) != 0


def keep_wrapperless_out_of_tables() -> None:
    """A compile result without a CPython wrapper (made for a caller, or loaded so from the disk
    cache) is kept in a dispatcher's overloads but out of the table Numba looks a Python call up
    in: that call would jump to the missing wrapper. Installed once, before any such result can
    exist in the process (a warm process loads them from the cache before it compiles any): a
    Python call of that signature misses the table and `python_entry` answers it, where another
    thread calling meanwhile would otherwise find the entry and crash."""
    from numba.core.dispatcher import Dispatcher
    if not getattr(Dispatcher, "_ppl_wrapperless", False):
        add = Dispatcher.add_overload
        Dispatcher.add_overload = lambda self, cres: add(self, cres) if has_python_wrapper(cres) \
            else self.overloads.__setitem__(tuple(cres.signature.args), cres)
        Dispatcher._ppl_wrapperless = True


def compile_without_python_wrapper(compile_, dispatcher, sig):
    """``compile_(dispatcher, sig)`` making no CPython wrapper (only compiled code calls what it
    makes). Such a result stays out of the table a Python call is looked up in
    (`keep_wrapperless_out_of_tables`): `python_entry` answers that call."""
    keep_wrapperless_out_of_tables()
    opts = dispatcher.targetoptions
    saved = dict(opts)
    opts["no_cpython_wrapper"] = True
    try:
        return compile_(dispatcher, sig)
    finally:
        opts.clear()
        opts.update(saved)


def python_entry(dispatcher, sig, make_twin):
    """After a compile of `sig` for a Python call: None where the result has its CPython wrapper;
    else `make_twin()` (the same function with its wrapper, no disk cache) compiled for `sig`,
    its entry point entered in the dispatcher's table for later calls."""
    from numba.core import sigutils
    cres = dispatcher.overloads.get(tuple(sigutils.normalize_signature(sig)[0]))
    if cres is None or has_python_wrapper(cres):
        return None
    twin = make_twin()
    entry = twin.compile(sig)
    dispatcher._insert([a._code for a in next(c for c in twin.overloads.values() if c.entry_point is entry).signature.args],
                       entry, False)
    return entry


def unliteral_signature(sig, positions):
    """`sig` (a tuple of argument types, or a ``Signature``) with the literal types at
    `positions` (an int constant a caller passed: ``Literal[int](16)``) replaced by their
    ordinary type (int64); the same object when there is none."""
    from numba.core import types
    args = getattr(sig, "args", sig)
    if not isinstance(args, tuple) or not any(i < len(args) and isinstance(args[i], types.Literal) for i in positions):
        return sig
    plain = tuple(types.unliteral(a) if i in positions else a for i, a in enumerate(args))
    if hasattr(sig, "args"):
        return sig.replace(args=plain)
    return plain


def nrt_option(dispatcher):
    """The ``_nrt`` option (Numba's reference counting) `dispatcher` was given: True, False, or
    None when it was not set (then inherited from the caller that compiles it first)."""
    return dispatcher.targetoptions.get("_nrt")


def set_nrt_option(dispatcher, on: bool) -> None:
    dispatcher.targetoptions["_nrt"] = bool(on)


def library_bitcode(libdata):
    """The LLVM bitcode of a code library as Numba stores it in its disk cache (``(name, kind,
    data)``, with an object file and its bitcode for kind "object"), or None."""
    try:
        _name, kind, data = libdata
        bitcode = data[1] if kind == "object" else data
    except (TypeError, ValueError, IndexError, KeyError):
        return None
    return bitcode if isinstance(bitcode, bytes) else None


def optimised_ir(dispatcher, sig) -> str:
    """The optimised LLVM IR of `dispatcher`'s specialisation `sig`: the code that runs, with the
    function's own options. A library loaded from the disk cache keeps that module beside its
    object code, to link it into other functions (``CPUCodeLibrary.serialize_using_object_code``):
    it is read there, not compiled again."""
    lib = dispatcher.overloads[sig].library
    if lib._disable_inspection:   # loaded from the cache
        return str(lib._get_module_for_linking())
    return lib.get_llvm_str()


def symbol_defined(target_context, name: str) -> bool:
    """Whether the JIT engine of `target_context` defines the symbol `name`."""
    return target_context.codegen()._engine.is_symbol_defined(name)


def types_only(fn, signature):
    """Type `fn` (a Python function) for `signature` as Numba's nopython pipeline does, without
    lowering it: the jitted functions its calls reach are compiled (and cached) on the way.
    Returns {global name: the argument types of its calls} for the calls of `fn` to a jitted
    function named by a global of its own (one set of types per name, else the name is left
    out), or None without the pipeline hooks this needs (`fn` is then compiled in full)."""
    from numba.core import compiler, registry
    target = registry.cpu_target
    pipeline = _types_only_pipeline()
    if pipeline is None:   # pragma: no cover - a Numba without them
        import numba
        numba.njit(fn).compile(signature)
        return None
    func_ir, calltypes = compiler.compile_extra(target.typing_context, target.target_context, fn, signature,
                                                None, compiler.Flags(), {}, pipeline_class=pipeline)
    from numba.core import ir
    found, seen = {}, set()
    for block in func_ir.blocks.values():
        named = {st.target.name: st.value.name for st in block.body
                 if isinstance(st, ir.Assign) and isinstance(st.value, ir.Global)}
        for st in block.body:
            if isinstance(st, ir.Assign) and isinstance(st.value, ir.Expr) and st.value.op == "call":
                name = named.get(st.value.func.name)
                if name is not None and st.value in calltypes:
                    args = tuple(calltypes[st.value].args)
                    found[name] = args if name not in seen or found.get(name) == args else None
                    seen.add(name)
    return {k: v for k, v in found.items() if v is not None}


@lru_cache(maxsize=None)
def _types_only_pipeline():
    try:
        from numba.core import compiler, typed_passes
        from numba.core.compiler_machinery import FunctionPass, register_pass
        stop = compiler._EarlyPipelineCompletion
    except (ImportError, AttributeError):   # pragma: no cover
        return None

    @register_pass(mutates_CFG=False, analysis_only=True)
    class StopAfterTypes(FunctionPass):
        _name = "ppl_stop_after_types"

        def __init__(self):
            FunctionPass.__init__(self)

        def run_pass(self, state):
            raise stop((state.func_ir, state.calltypes))   # compile_extra returns it

    class TypesOnly(compiler.CompilerBase):
        def define_pipelines(self):
            pm = compiler.DefaultPassBuilder.define_untyped_pipeline(self.state, "types only")
            pm.add_pass(typed_passes.NopythonTypeInference, "nopython frontend")
            pm.add_pass(StopAfterTypes, "stop after typing")
            pm.finalize()
            return [pm]
    return TypesOnly


def install_link_hooks(on_user_function, linked_libraries, may_rebuild) -> bool:
    """Hooks into Numba's lowering and disk cache (``_link.py``):

    - ``on_user_function(library, mangled_name, modname, qualname, argtypes)`` when a compiled
      function with one code library is registered for callers (``insert_user_function``);
    - ``linked_libraries(libs) -> libs``: the code libraries actually linked into the module
      being lowered (``add_linking_libs``);
    - ``may_rebuild(target_context, libdata, modname) -> bool`` before a compile result
      (``modname``: its module) or a code library (``modname=""``) is rebuilt from the disk
      cache; False makes that load a cache miss.

    Once; False when this Numba lacks a hook (it then links everything, as usual)."""
    try:
        from numba.core import base, caching
    except ImportError:   # pragma: no cover
        return False
    impl = getattr(caching, "CompileResultCacheImpl", None)
    lib_impl = getattr(caching, "CodeLibraryCacheImpl", None)
    ctx = base.BaseContext
    if getattr(ctx, "_ppl_link", False):
        return True
    if impl is None or lib_impl is None or not all(hasattr(ctx, a) for a in ("insert_user_function", "add_linking_libs")):
        return False   # pragma: no cover
    insert_user_function, add_linking_libs = ctx.insert_user_function, ctx.add_linking_libs
    rebuild, rebuild_lib = impl.rebuild, lib_impl.rebuild

    def insert(self, func, fndesc, libs=()):
        if len(libs) == 1:
            on_user_function(libs[0], fndesc.mangled_name, getattr(fndesc, "modname", ""),
                             getattr(fndesc, "qualname", ""), tuple(fndesc.argtypes))
        return insert_user_function(self, func, fndesc, libs)

    def link(self, libs):
        return add_linking_libs(self, linked_libraries(libs))

    def rebuild_checked(self, target_context, payload):   # a compile result: (libdata, fndesc, ...)
        if not may_rebuild(target_context, payload[0], getattr(payload[1], "modname", "")):
            return None   # a cache miss: the function is compiled again
        return rebuild(self, target_context, payload)

    def rebuild_lib_checked(self, target_context, payload):   # a code library (cfunc, ufunc)
        if not may_rebuild(target_context, payload, ""):
            return None
        return rebuild_lib(self, target_context, payload)

    ctx.insert_user_function, ctx.add_linking_libs = insert, link
    impl.rebuild, lib_impl.rebuild = rebuild_checked, rebuild_lib_checked
    ctx._ppl_link = True
    return True


_codegen_tms = {}   # code generation level -> a target machine like Numba's, at that level


def _emit_object(lib, level):
    """Turn a code library's optimised module into machine code at code generation `level` and
    hand it to Numba's object cache hook (``_compiled_object``), which the JIT then loads instead
    of generating the code itself at O3. Kept in ``_ppl_object`` for the disk cache."""
    if not getattr(lib, "_object_caching_enabled", False) or lib._compiled_object is not None:
        return
    tm = _codegen_tms.get(level)
    if tm is None:
        from llvmlite import binding as ll
        options = {}
        lib._codegen._customize_tm_options(options)
        options["opt"] = level
        tm = _codegen_tms[level] = ll.Target.from_triple(ll.get_process_triple()).create_target_machine(**options)
    lib._compiled_object = lib._ppl_object = tm.emit_object(lib._final_module)


def install_opt_hooks(opt_level, extra_module_passes, object_level, function_passes=None, llvm_options=None) -> bool:
    """Hooks into the optimisation of every CPU code library (``_link.py``), asked while it is
    being optimised:

    - ``function_passes(name) -> bool``: whether the per-function passes run on the function
      ``name`` of a module added to a library (asked for definitions only: Numba made a pass
      manager for each of a module's declarations too, and ran it on nothing), None for all;

    - ``opt_level(name) -> int | None``: the LLVM optimisation level of Numba's pass ``name``
      ("_optimize_functions": the per-function passes, "_optimize_final_module": the module's),
      None for Numba's own;
    - ``extra_module_passes(ir) -> int``: how many more times the module's passes run, asked
      with a function of no argument giving the text of the module as the first run left it;
    - ``object_level() -> int | None``: a code generation level at which the library's machine
      code is made here (instead of Numba's, 3) and handed to the JIT, None for Numba's;
    - ``llvm_options() -> tuple``: pairs of LLVM command-line options (``("-name=value",
      "-name=default")``): the first of each set while the module's passes run, the second
      after (LLVM's options are global to the process; compiles hold Numba's lock).

    Once; False when this Numba lacks a hook (its own levels stay)."""
    try:
        from numba.core import codegen, config
        lib, level = codegen.CPUCodeLibrary, config._OptLevel
    except (ImportError, AttributeError):   # pragma: no cover
        return False
    if getattr(lib, "_ppl_opt", False):
        return True
    if not all(hasattr(lib, a) for a in ("_optimize_functions", "_optimize_final_module")):
        return False   # pragma: no cover

    def at_level(name):
        method = getattr(lib, name)

        def run(self, *args):
            want = opt_level(name)
            if want is None:
                return method(self, *args)
            saved = config.OPT
            config.OPT = level(want)
            try:
                return method(self, *args)
            finally:
                config.OPT = saved
        setattr(lib, name, run)

    if function_passes is not None:
        _run_function_passes_on(lib, function_passes)
    at_level("_optimize_functions")
    at_level("_optimize_final_module")
    once = lib._optimize_final_module

    def module_passes(self):
        options = llvm_options() if llvm_options is not None else ()
        if options:
            from llvmlite import binding as ll
            for on, _ in options:
                ll.set_option("ppl", on)
        try:
            once(self)
            for _ in range(extra_module_passes(lambda: str(self._final_module))):
                once(self)
        finally:
            for _, back in options:
                ll.set_option("ppl", back)
    lib._optimize_final_module = module_passes
    if all(hasattr(lib, a) for a in ("_finalize_final_module", "enable_object_caching")) and \
            hasattr(codegen.JITCPUCodegen, "_customize_tm_options"):
        optimise = lib._optimize_final_module
        finalize = lib._finalize_final_module

        def optimise_then_emit(self):
            optimise(self)
            at = object_level()
            if at is not None:
                _emit_object(self, at)

        def finalize_keep_object(self):
            finalize(self)   # the JIT takes the object through the hook, which clears it
            obj = self.__dict__.pop("_ppl_object", None)
            if obj is not None:   # as Numba's hook for an object it generated: kept for the disk cache
                self._compiled, self._compiled_object = True, obj
        lib._optimize_final_module, lib._finalize_final_module = optimise_then_emit, finalize_keep_object
    lib._ppl_opt = True
    return True


def _run_function_passes_on(lib, wanted) -> None:
    """``lib._optimize_functions`` (Numba's per-function passes of a module added to a library)
    run on the module's definitions for which ``wanted(name)`` holds, as Numba runs them on each."""
    method = lib._optimize_functions

    def optimize_functions(self, ll_module):
        if not hasattr(self, "_recorded_timings"):   # pragma: no cover - another Numba
            return method(self, ll_module)
        ll_module.data_layout = self._codegen._data_layout
        for func in ll_module.functions:
            if func.is_declaration or not wanted(func.name):
                continue
            fpm, pb = self._codegen._function_pass_manager()
            with self._recorded_timings.record(f"Function passes on {func.name!r}", pb):
                fpm.run(func, pb)
    lib._optimize_functions = optimize_functions


def install_wrapper_hook(unoptimised) -> bool:
    """Numba's CPython wrapper of a function whose module ``unoptimised(modname)`` names is marked
    ``optnone`` (and ``noinline``, which LLVM requires with it): LLVM's passes skip it and its
    code generation takes the fast path. Only a call from Python runs it (it unboxes the
    arguments and calls the function, which stays optimised)."""
    try:
        from numba.core import callwrapper
        build = callwrapper.PyCallWrapper.build
    except (ImportError, AttributeError):   # pragma: no cover - another Numba
        return False
    if getattr(build, "_ppl_hook", False):
        return True

    def hooked(self):
        out = build(self)
        wrapper = out[0] if isinstance(out, tuple) else None
        if wrapper is not None and hasattr(wrapper, "attributes") and unoptimised(self.fndesc.modname or ""):
            wrapper.attributes.add("optnone")
            wrapper.attributes.add("noinline")
        return out

    hooked._ppl_hook = True
    callwrapper.PyCallWrapper.build = hooked
    return True

# ---------------------------------------------------------------------------- the first compile
def defer_blas_check() -> bool:
    """Numba loads ``numba.np.arraymath`` with its typing and lowering registries at a process's
    first compile (or first load from the disk cache), and that module asks at import whether
    SciPy's BLAS is there (``_HAVE_BLAS``, for ``np.dot``) by importing ``scipy.linalg.cython_blas``:
    the whole ``scipy.linalg`` package, a few tenths of a second that every first step paid
    (ppl's kernels call NumPy's own OpenBLAS, ``kernels/native/blas.py``). That one question is now
    answered by whether SciPy is installed; every other caller of ``ensure_blas`` (Numba's
    ``np.dot`` / ``np.linalg`` implementations, when a function using them is compiled) still
    imports SciPy's BLAS and checks its integer width. False when arraymath is already loaded or
    this Numba has no such check."""
    import importlib.util
    import sys
    if "numba.np.arraymath" in sys.modules:
        return False
    try:
        from numba.np import linalg
    except ImportError:   # pragma: no cover - a Numba without numba.np.linalg
        return False
    real = getattr(linalg, "ensure_blas", None)
    if real is None or getattr(real, "_ppl_deferred", False):
        return real is not None

    def ensure_blas():
        caller = sys._getframe(1)
        if caller.f_code.co_name == "_check_blas" and caller.f_globals.get("__name__") == "numba.np.arraymath":
            if importlib.util.find_spec("scipy") is None:
                raise ImportError("scipy 0.16+ is required for linear algebra")
            return None
        return real()

    ensure_blas._ppl_deferred = True
    linalg.ensure_blas = ensure_blas
    return True


def parfor_max_tuple_size() -> int:
    """The longest tuple Numba passes into a parallel loop (NUMBA_PARFOR_MAX_TUPLE_SIZE, 100 by
    default): a loop given a longer one fails to compile."""
    from numba.core import config
    return int(config.PARFOR_MAX_TUPLE_SIZE)
