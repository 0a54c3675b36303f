"""The generated step calls the array kernels without linking their code (kernels/_link.py).

Checked in fresh processes over one cache folder: the step's LLVM module declares the array
kernels it calls (those of kernels/families/ too) and defines none of them; a later process loads the cached step, and a user's
@njit(cache=True) loop that calls it, before any kernel is in the process, with bit-identical
results; with the kernels' symbol records deleted, the cached functions are compiled again
(never an unresolved symbol, which would abort the process in LLVM), with the same results.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap

USERMOD = textwrap.dedent('''
    import numpy as np
    from numba import njit
    import ppl
    from ppl import Affine, Bernoulli, Model

    with Model("linkprobe") as m:
        x = m.input("x", 3)
        h = Bernoulli("h", logits=Affine(x, 2, name="enc"))
        h2 = Bernoulli("h2", logits=Affine(h, 2, name="enc2"))   # a kernel of kernels/families/
        m.cost("nll", ppl.bernoulli_nll(Affine(h2, 3, name="dec"), target=x))
    prog = m.compile(dtype=np.float64, estimators={"h": "disarm", "h2": "reinmax"}, lowering="arrays")
    entry = prog.entry

    @njit(cache=True)
    def user_loop(theta, grad, state, ws2, ws1, inputs, B, n):
        tot = 0.0
        for s in range(n):
            tot += entry(theta, grad, state, ws2, ws1, inputs, B, np.uint64(7), s, 1)
        return tot
''')

RUN = textwrap.dedent('''
    import json, sys
    import numpy as np
    sys.path.insert(0, sys.argv[1])
    import usermod as u
    X = np.array([[1., 0., 1.], [0., 1., 1.], [1., 1., 0.]])
    user = u.user_loop(*u.prog.args({"x": X}), 5)       # the user's cached loop first
    loss, g = u.prog.grad({"x": X}, seed=3, step=2)
    ir = "\\n".join(c.library.get_llvm_str() for c in u.entry.overloads.values())
    kernel_lines = [l for l in ir.splitlines() if "@_ZN3ppl7kernels" in l and l.split()[0] in ("declare", "define")]
    from numba.core import caching
    print(json.dumps({
        "values": [repr(user), repr(loss)] + [repr(float(v)) for k in sorted(g) for v in g[k].ravel()],
        "step": [sum(u.entry.stats.cache_hits.values()), sum(u.entry.stats.cache_misses.values())],
        "user": [sum(u.user_loop.stats.cache_hits.values()), sum(u.user_loop.stats.cache_misses.values())],
        "declared": sorted({l.split("@")[1].split("(")[0] for l in kernel_lines if l.startswith("declare")}),
        "defined": sorted({l.split("@")[1].split("(")[0] for l in kernel_lines if l.startswith("define")}),
    }))
''')


def _python(tmp_path, code, *args):
    """stdout of `code` run in a fresh interpreter whose ppl cache folder is tmp_path/cache."""
    env = dict(os.environ, PPL_CACHE_DIR=str(tmp_path / "cache"))
    env.pop("NUMBA_CACHE_DIR", None)
    r = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout


def _run(tmp_path):
    return json.loads(_python(tmp_path, RUN, str(tmp_path)).strip().splitlines()[-1])


def test_step_calls_kernels_and_loads_from_cache_safely(tmp_path):
    (tmp_path / "usermod.py").write_text(USERMOD)
    cold = _run(tmp_path)
    assert cold["step"][0] == 0 and cold["user"] == [0, 1], cold
    # the step declares the array kernels it calls (cpu/core.py, cpu_*.py, families/) and links none of them
    array = [n for n in cold["declared"] if re.match(r"_ZN3ppl7kernels(\d+cpu|8families)", n)]
    assert len(array) >= 5, cold["declared"]
    assert [n for n in array if "reinmax_bernoulli_bwd" in n], cold["declared"]
    assert not [n for n in cold["defined"] if n in array], cold["defined"]

    warm = _run(tmp_path)   # a fresh process: the user's loop loads before any kernel is loaded
    assert warm["values"] == cold["values"]
    assert warm["step"][1] == 0 and warm["user"] == [1, 0], warm

    symbols = list((tmp_path / "cache" / "numba").glob("*/symbols"))
    assert len(symbols) == 1 and len(list(symbols[0].iterdir())) >= len(array)
    shutil.rmtree(symbols[0])   # no record of where the kernels' symbols come from
    again = _run(tmp_path)
    assert again["values"] == cold["values"]
    # compiled again (the step for the loop's signature too), never an unresolved symbol
    assert again["step"][1] >= 1 and again["user"] == [0, 1], again


FIRST_CALLER = textwrap.dedent('''
    import numpy as np
    from numba import njit
    from ppl.kernels.math.rng import log1p_f32, log_f32

    @njit(fastmath={"reassoc", "contract"}, error_model="python")
    def caller(x):            # compiles log1p_f32 (and log_f32) first, with its own flags
        return log1p_f32(x)

    caller(np.float32(0.5))
    v = np.float32(3 * 2.0 ** -24)
    print(log1p_f32.targetoptions.get("fastmath"), log1p_f32.targetoptions.get("error_model"),
          log1p_f32(-v) == log_f32(np.float32(1.0) - v))
''')


def test_helpers_do_not_inherit_their_first_callers_flags(tmp_path):
    """A kernels function that declares no fastmath / error_model compiles without fast-math and
    with "numpy" whoever compiles it first (kernels/_link.py): Numba's disk cache does not key on
    those flags. Inherited from this caller's reassoc / contract, log1p_f32(-3 2^-24) came out
    1 ulp from log_f32(1 - 3 2^-24); without flags the two agree bit for bit."""
    out = _python(tmp_path, FIRST_CALLER)
    assert out.split() == ["False", "numpy", "True"], out


def test_a_first_step_leaves_scipy_linalg_alone_and_np_dot_still_compiles():
    """Numba's first compile in a process loads numba.np.arraymath, whose import-time question
    (is SciPy's BLAS there, for np.dot?) imported the whole scipy.linalg package on the way to
    every first step (kernels/numba_compat.defer_blas_check). A step compiles and runs without
    it; a user's np.dot in @njit still compiles, imports SciPy's BLAS then, and is right."""
    code = textwrap.dedent("""
        import sys
        import numpy as np
        import ppl
        from numba import njit
        with ppl.Model("first_step_blas") as m:
            x = m.input("x", 2)
            z = ppl.Bernoulli("z", logits=ppl.Affine(x, 2, name="enc"))
            m.cost("f", ppl.bernoulli_nll(ppl.Affine(z, 2, name="dec"), target=x))
        loss, _ = m.compile().grad({"x": np.ones((4, 2), np.float32)}, seed=0)
        assert np.isfinite(loss)
        assert "numba.np.arraymath" in sys.modules      # the first compile loaded the registries
        print("AFTER_STEP", "scipy.linalg" in sys.modules)

        @njit
        def product(a, b):
            return np.dot(a, b)

        a = np.arange(6.0).reshape(2, 3)
        assert np.allclose(product(a, a.T), a @ a.T)
        print("AFTER_DOT", "scipy.linalg" in sys.modules)
    """)
    env = {**os.environ, "PPL_COMPILE_JOBS": "1"}
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "AFTER_STEP False" in out.stdout and "AFTER_DOT True" in out.stdout, out.stdout


HELPER_CALLS = textwrap.dedent('''
    import sys
    import numpy as np
    from numba import njit
    import ppl
    from ppl.kernels import _link, numba_compat
    from ppl.kernels.math import scalar
    _link.PYTHON_WRAPPERS = sys.argv[1] == "wrappers"
    first = sys.argv[2]

    @njit
    def caller(x, s):
        return scalar.scale_shift(x, s, 0.25) + scalar.softplus(x)

    x = 0.3
    if first == "threads":     # a second thread calls while the first makes the twin its call needs
        import threading
        make, got = _link._twin, []

        def slow_twin(disp):
            if not got:
                got.append(None)
                other = threading.Thread(target=lambda: got.append(scalar.scale_shift(x, 1.5, 0.25)))
                other.start()
                other.join(5.0)
            return make(disp)
        _link._twin = slow_twin
        print("THREADS", scalar.scale_shift(x, 1.5, 0.25), got[1:])
    if first == "caller":      # the helpers compiled for a caller, then called from Python
        assert caller(x, 1.5) == scalar.scale_shift.py_func(x, 1.5, 0.25) + scalar.softplus.py_func(x)
    cres = scalar.scale_shift.overloads.get(scalar.scale_shift.signatures[0]) if scalar.scale_shift.signatures else None
    print("WRAPPER", None if cres is None else numba_compat.has_python_wrapper(cres))
    print("PYTHON", scalar.scale_shift(x, 1.5, 0.25) == scalar.scale_shift.py_func(x, 1.5, 0.25),
          scalar.softplus(x) == scalar.softplus.py_func(x), scalar.scale_shift(np.float32(2.0), np.float32(3.0), 0.25))
''')


def test_helpers_compiled_for_a_caller_have_no_python_wrapper_and_python_calls_still_run(tmp_path):
    """A helper of the kernels compiled while a caller is typed has no CPython wrapper
    (kernels/_link.py, PYTHON_WRAPPERS); a call from Python of the same signature, in that
    process and in a later one that loads the helper from the disk cache first, returns what the
    helper's Python function returns (it would otherwise call a missing wrapper and crash).
    Test of the test: with PYTHON_WRAPPERS the helper compiled for the caller has its wrapper."""
    out = _python(tmp_path, HELPER_CALLS, "none", "caller")
    assert "WRAPPER False" in out and "PYTHON True True 6.25" in out, out
    out = _python(tmp_path, HELPER_CALLS, "none", "python")    # the cache's entry has no wrapper
    assert "PYTHON True True 6.25" in out, out
    out = _python(tmp_path / "with", HELPER_CALLS, "wrappers", "caller")
    assert "WRAPPER True" in out and "PYTHON True True 6.25" in out, out


def test_a_helper_loaded_without_its_wrapper_is_safe_to_call_from_two_threads(tmp_path):
    """A helper the disk cache holds without its CPython wrapper, loaded by a Python call while
    another thread calls it too: that thread waits for the twin (kernels/numba_compat.py,
    keep_wrapperless_out_of_tables) and gets the same value; it would otherwise find the loaded
    entry in Numba's table and jump to the missing wrapper (a crash). The second call is made while
    the first is between the load and its twin (a pause there)."""
    _python(tmp_path, HELPER_CALLS, "none", "caller")   # the cache's entry has no wrapper
    out = _python(tmp_path, HELPER_CALLS, "none", "threads")
    want = 0.3 * 1.5 + 0.25
    assert f"THREADS {want!r} [{want!r}]" in out, out


def test_a_kernels_second_optimisation_runs_only_where_the_first_left_no_vector_code(monkeypatch):
    """kernels/_link.py, SECOND_PASS_IF_SCALAR: a function of ppl.kernels whose module the first
    optimisation left with float vector code is not optimised again; one left scalar is (a loop
    over an inlined helper may vectorise then), and a function outside ppl.kernels is never, its
    module's text not even asked for. Test of the test: with the rule off, the vectorised module
    runs the second pass too."""
    from ppl.kernels import _link
    vector = "%v = fmul fast <8 x float> %a, %b\n"
    scalar = "%x = fmul float %a, %b\n"
    monkeypatch.setattr(_link, "_compiling_kernel", lambda: True)
    assert _link._extra_module_passes(lambda: vector) == 0
    assert _link._extra_module_passes(lambda: scalar.replace("float", "double")) == 1
    assert _link._extra_module_passes(lambda: scalar) == 1
    monkeypatch.setattr(_link, "SECOND_PASS_IF_SCALAR", False)
    assert _link._extra_module_passes(lambda: vector) == 1
    monkeypatch.setattr(_link, "_compiling_kernel", lambda: False)

    def unread():
        raise AssertionError("the module's text was asked for outside a kernel's compile")
    assert _link._extra_module_passes(unread) == 0


def _has_c_wrapper(disp, sig) -> bool:
    """Whether `disp`'s compile of `sig` has Numba's C-callable wrapper."""
    for cres in disp.overloads.values():
        if tuple(cres.signature.args) == tuple(sig):
            return cres.library.get_pointer_to_function(cres.fndesc.llvm_cfunc_wrapper_name) != 0
    raise AssertionError(f"{disp} has no compile for {sig}")


def test_kernels_have_no_c_wrapper_but_first_class_values_do(monkeypatch):
    """kernels/_link.py, C_WRAPPERS: a function of ppl.kernels compiles without Numba's C-callable
    wrapper; the optimiser update that fit's chunk loop takes as a first-class function
    (`numba.types.FunctionType`) keeps it, and so does a user's function. Test of the test: with
    C_WRAPPERS on, a function of ppl.kernels has its wrapper."""
    from numba import float64, int64, njit
    from ppl.kernels import _link
    from ppl.kernels.cpu import train
    from ppl.kernels.math import scalar
    sig = (float64, float64, float64)
    fresh = njit(cache=False)(scalar.scale_shift.py_func)   # a function of ppl.kernels, compiled here
    fresh.compile(sig)
    assert not _has_c_wrapper(fresh, sig)
    opt = (int64, float64[::1], float64[::1], float64[::1], float64[::1], float64[::1], int64)
    train.optimizer_update.compile(opt)
    assert _has_c_wrapper(train.optimizer_update, opt)

    @njit
    def users(x):
        return x + 1.0
    users.compile((float64,))
    assert _has_c_wrapper(users, (float64,))
    monkeypatch.setattr(_link, "C_WRAPPERS", True)
    again = njit(cache=False)(scalar.scale_shift.py_func)
    again.compile(sig)
    assert _has_c_wrapper(again, sig)


def test_function_passes_run_on_definitions_not_on_wrappers_or_declarations(monkeypatch):
    """kernels/_link.py, WRAPPER_FUNCTION_PASSES: LLVM's per-function passes of a module added to a
    code library run on the module's own definitions only: not on Numba's CPython wrapper (the
    module's passes optimise it with the rest) nor on the declarations Numba made a pass manager
    for. The function still runs. Test of the test: with WRAPPER_FUNCTION_PASSES on, the wrapper
    is given the per-function passes again."""
    from numba import float64, njit
    from numba.core import codegen
    from ppl.kernels import _link
    assert _link.install()
    seen = []
    make = codegen.JITCPUCodegen._function_pass_manager

    def recording(self, **kwargs):
        fpm, pb = make(self, **kwargs)

        class Recording:
            def run(self, func, pb_):
                seen.append((func.name, func.is_declaration))
                return fpm.run(func, pb_)
        return Recording(), pb
    monkeypatch.setattr(codegen.JITCPUCodegen, "_function_pass_manager", recording)

    def compiled_names():
        seen.clear()

        @njit
        def users(x):
            return x * 2.0 + 1.0
        users.compile((float64,))
        assert users(3.0) == 7.0
        return [name for name, _ in seen], any(decl for _, decl in seen)

    names, declarations = compiled_names()
    assert not declarations
    assert any("users" in n and not n.startswith(_link.WRAPPERS) for n in names), names
    assert not any(n.startswith(_link.WRAPPERS) for n in names), names
    monkeypatch.setattr(_link, "WRAPPER_FUNCTION_PASSES", True)
    names, _ = compiled_names()
    assert any(n.startswith("_ZN7cpython") and "users" in n for n in names), names


def _wrapper_attributes(fn, sig):
    """The LLVM attributes of the CPython wrapper of `fn`'s specialisation `sig`."""
    ir = fn.overloads[sig].library.get_llvm_str()
    line = next(s for s in ir.splitlines() if s.startswith("define") and re.search(r'@"?_ZN7cpython', s))
    attrs = set(line.split(")")[-1].split())
    for group in re.findall(r"#(\d+)", line):
        attrs |= set(re.search(rf"^attributes #{group} = {{(.*)}}", ir, re.M).group(1).split())
    return attrs


def test_the_kernels_cpython_wrappers_are_not_optimised_and_still_call_the_kernel(monkeypatch):
    """kernels/_link.py, OPTIMISED_WRAPPERS: a ppl.kernels function's CPython wrapper is marked
    `optnone` (LLVM skips it); the kernel called from Python computes as before. A user's function
    keeps Numba's optimised wrapper. Test of the test: with OPTIMISED_WRAPPERS on, a kernel's
    wrapper is optimised again."""
    import numpy as np
    from numba import njit, typeof
    from ppl.kernels import _link
    from ppl.kernels.families import rows
    assert _link.install()

    def compiled_kernel():
        k = njit(cache=False, error_model="numpy")(rows.scale_shift_fwd.py_func)   # module ppl.kernels...
        x, out = np.arange(6.0).reshape(2, 3), np.zeros((2, 3))
        k(x, 2.0, 1.0, out)
        np.testing.assert_array_equal(out, x * 2.0 + 1.0)
        return _wrapper_attributes(k, k.signatures[0])

    assert {"optnone", "noinline"} <= compiled_kernel()

    @njit(cache=False)
    def users(x):
        return x * 2.0
    sig = (typeof(1.0),)
    users.compile(sig)
    assert "optnone" not in _wrapper_attributes(users, users.signatures[0])
    monkeypatch.setattr(_link, "OPTIMISED_WRAPPERS", True)
    assert "optnone" not in compiled_kernel()
