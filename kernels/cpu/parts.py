"""ppl's own threads: in how many parts the CPU kernels split their large work (a matrix product,
the optimiser's update), the parts run at once on Numba's threads.

One process-wide count, 1 (no split) unless set: `fit` sets it for its run when it gives a
paper-scale model a second core (ppl/training/fit.py), and a user's own loop may set it
(`set_parts`). The compiled kernels read it at each call from an external global bound by name,
as the products' BLAS is (kernels/cpu/blas.py), so cached code reads the running process's value.

A part is work of one thread: with parts > 1 the BLAS should run at one thread (two thread pools on
the same cores oversubscribe them), and the kernels must not run inside a parallel loop of Numba's
(a part would launch a nested one).
"""
import ctypes
import operator

import llvmlite.binding as llvm
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, register_jitable

_COUNT = ctypes.c_int64(1)
llvm.add_symbol("ppl_parts", ctypes.addressof(_COUNT))


def get_parts():
    """In how many parts the kernels split large work (1: none, the default)."""
    return int(_COUNT.value)


def set_parts(n):
    """Split each large product and optimiser update in n parts run at once on Numba's threads
    (1: no split); returns the previous count. Numba's thread count caps the threads used."""
    if isinstance(n, bool) or not hasattr(n, "__index__"):
        raise TypeError(f"parts.set_parts: n must be an integer >= 1, got {n!r}")
    n = operator.index(n)
    if n < 1:
        raise ValueError(f"parts.set_parts: n must be >= 1, got {n}")
    prev = get_parts()
    _COUNT.value = n
    return prev


@intrinsic
def parts(typingctx):
    """The count, from nopython code (the external global ppl_parts)."""
    def codegen(context, builder, sig, args):
        mod = builder.module
        try:
            g = mod.get_global("ppl_parts")
        except KeyError:
            g = ir.GlobalVariable(mod, ir.IntType(64), "ppl_parts")
            g.linkage = "external"
        return builder.load(g)
    return types.int64(), codegen


@register_jitable
def split(n, parts, grain):
    """How many parts to cut n units of work into (each part at least `grain` units) and the
    parts' length in units, rounded up to a multiple of 16 (a 64-byte boundary of float32)."""
    k = min(parts, n // grain) if grain > 0 else parts
    if k < 2:
        return 1, n
    step = (n + k - 1) // k
    return k, (step + 15) // 16 * 16
