"""Kernels compiled by different processes into one cache folder (the suite's workers, the compile
helper of ppl/compiler/ahead.py, `ppl warmup --jobs`, Dask workers) load together without one
standing in for another.

Numba names a compiled function by its module, qualified name, argument types and a counter of
the process that compiled it (the `v<n>` tag). The noise fills' dtype dispatchers were closures of
one factory and shared one qualified name, so two processes could give two of them (fill_uniform's
float64 row writer and fill_normal's) the same full name; a process that then loaded both fills
from the cache ran one writer for both (a Normal node drew uniforms, and REBAR over Price came out
1.68x its exact gradient). The float32 / float64 choices of kernels/math/scalar.py (fexp, flog,
...) are closures of one factory too, named the same way (inlined where this test compiles them,
they leave no symbol of their own). The invariant checked: among the functions compiled into the
noise fills and a function calling those choices, no two different functions share a name once
the process counter is struck out; it fails on the fills' old names.
"""
import os
import re
import subprocess
import sys
import textwrap

import pytest

NAMES = """
import re
import numpy as np
from ppl.kernels.cpu import noise

from numba import njit
from ppl.kernels.math import scalar

@njit
def by_precision(x):   # every function of scalar.py chosen by the argument's precision
    return (scalar.fexp(x) + scalar.flog(x) + scalar.flog1p(x) + scalar.flog1p_unit(x) + scalar.ftanh(x))

by_precision(np.float32(0.5))
by_precision(0.5)
compiled = [by_precision]
for kind in ("uniform", "normal", "logistic", "gumbel"):
    f = getattr(noise, "fill_" + kind)
    for dtype in (np.float32, np.float64):
        for width in (3, 8):          # the per-row and the flat fill
            f(np.zeros((4, width), dtype), np.uint64(7), 3, 5, 0)
    compiled.append(f)
names = {}
for f in compiled:
    for cres in f.overloads.values():
        for name in re.findall(r'define [^@]*@"?(_ZN[^"( ]+)', cres.library.get_llvm_str()):
            names.setdefault(re.sub(r"B\\d+v\\d+", "", name), set()).add(name)
print("CLASHES", sorted(k for k, v in names.items() if len(v) > 1 and "ppl7kernels" in k))
print("COUNT", len(names))
"""


def clashes(stdout: str) -> list:
    return eval(re.search(r"CLASHES (\[.*\])", stdout).group(1))


@pytest.mark.slow
def test_no_two_functions_of_the_fills_and_scalar_math_share_a_name(tmp_path):
    env = {**os.environ, "PPL_CACHE_DIR": str(tmp_path), "PPL_COMPILE_JOBS": "1"}   # compiled here, IR kept
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(NAMES)], env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert int(re.search(r"COUNT (\d+)", out.stdout).group(1)) > 10   # the reader saw the fills' functions
    assert clashes(out.stdout) == [], out.stdout


def test_the_check_sees_a_clash():
    fake = "CLASHES ['_ZN3ppl7kernels3cpu5noise14_rows_by_dtype_lambda']\nCOUNT 30\n"
    assert clashes(fake) and not clashes("CLASHES []\nCOUNT 30\n")
