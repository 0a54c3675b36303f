"""Python's cyclic collector while ppl's code compiles (kernels/_link.py, part twelve).

A compile of ppl's code (a function of ppl or of a generated step, outermost on its thread)
runs with the collector paused and turns it back on when the last such compile ends, on every
path out (a compile that fails too); a user's own @njit function compiles with the collector as
the user left it, and a collector the user turned off stays off. `import ppl` moves the objects
it made out of the collector's generations (`gc.freeze`); `PPL_COMPILE_GC=1` leaves the
collector alone in both places. What the collector sees is read where Numba types a call, in
an overload's typing function.
"""
import gc
import os
import subprocess
import sys
import textwrap
import threading
import types

import pytest
from numba import njit
from numba.core.errors import TypingError
from numba.extending import overload

import ppl  # noqa: F401  (installs the compile hooks)

SEEN = []


def _new_probe():
    """A new function with its own overload, whose typing (Numba keeps a typed call's result, so
    a new one each time) records whether the collector is on, inside its caller's compile."""
    def probe(x):
        return x

    @overload(probe)
    def _typing(x):
        SEEN.append(gc.isenabled())
        return lambda x: x
    return probe


def _function(module: str, body: str = "return probe(x) + 1"):
    """A new @njit function of `module` (nothing cached) calling a new probe."""
    code = f"def f(x):\n    {body}\n"
    ns = {"probe": _new_probe()}
    exec(compile(code, f"<{module}>", "exec"), ns)
    fn = types.FunctionType(ns["f"].__code__, ns, "f")
    fn.__module__ = module
    return njit(fn)


@pytest.fixture(autouse=True)
def _collector_on():
    SEEN.clear()
    was = gc.isenabled()
    gc.enable()
    yield
    (gc.enable if was else gc.disable)()


def test_ppl_code_compiles_with_the_collector_paused_and_turns_it_back_on():
    assert _function("ppl_gen_gc_probe_a")(2.0) == 3.0
    assert SEEN == [False] and gc.isenabled()


def test_a_users_function_compiles_with_the_collector_as_it_was():
    assert _function("users_module")(2.0) == 3.0
    assert SEEN == [True] and gc.isenabled()


def test_a_collector_the_user_turned_off_stays_off():
    gc.disable()
    assert _function("ppl.gc_probe_b")(2.0) == 3.0
    assert SEEN == [False] and not gc.isenabled()


def test_a_failed_compile_turns_the_collector_back_on():
    f = _function("ppl_gen_gc_probe_c", "return probe(x) + undefined_name")
    with pytest.raises(TypingError):
        f(2.0)
    assert gc.isenabled()


def test_compiles_on_two_threads_turn_it_back_on_after_the_last():
    fns = [_function(f"ppl_gen_gc_probe_t{i}") for i in range(2)]
    barrier = threading.Barrier(2)

    def run(f):
        barrier.wait()
        f(1.0), f(1)   # float and int signatures: two compiles each

    threads = [threading.Thread(target=run, args=(f,)) for f in fns]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert SEEN and not any(SEEN) and gc.isenabled()


FRESH = textwrap.dedent("""
    import gc, ppl
    print(gc.get_freeze_count(), gc.isenabled())
""")


@pytest.mark.parametrize("setting", [None, "1"])
def test_import_freezes_what_it_made_unless_told_not_to(setting):
    env = {k: v for k, v in os.environ.items() if k != "PPL_COMPILE_GC"}
    if setting is not None:
        env["PPL_COMPILE_GC"] = setting
    r = subprocess.run([sys.executable, "-c", FRESH], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    frozen, enabled = r.stdout.split()
    assert enabled == "True"
    if setting is None:
        assert int(frozen) > 20_000   # numba's, numpy's and ppl's modules: about 100,000 objects
    else:
        assert int(frozen) == 0
