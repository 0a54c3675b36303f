"""The laws' parameter checks beyond positivity (ppl/laws/law.py's CONSTRAINTS), a test of a node's
values the step runs before the node is drawn (ppl/lowering/context.py raises the error naming
it): probabilities within [0, 1] or (0, 1], counts (non-negative integers), non-negative rates,
non-negative weights per group of K with a positive sum. NaN fails every one of them (every test is written
so that a comparison with NaN is False), and so does +inf.

Each returns True when every entry passes: a reduction that returns a value, so a hand-written
CPU kernel (one flat pass over a C-contiguous array, which vectorises), whose CUDA launcher counts the failing items over the
grid (declare.count_launcher: exact, the same count every run) and reads the count back (`CUDA`).
The `_into` rows count a row at a time into a word of the CUDA step's sink, so a check joins the
step's other row kernels (a group check, all_weight_groups, counts over the grid).
"""
import math

import numpy as np
from numba import njit, types
from numba.extending import overload

from ..declare import count_launcher, rows
from ..math.words import add_word
from ..native.views import flat_cells
from .binomial import floor_count


@njit(cache=True, error_model="numpy")
def _unit_ok(v):
    return v >= 0.0 and v <= 1.0


@njit(cache=True, error_model="numpy")
def _unit_positive_ok(v):
    return v > 0.0 and v <= 1.0


@njit(cache=True, error_model="numpy")
def _count_ok(v):
    x = float(v)
    return x >= 0.0 and x < math.inf and floor_count(x) == x


@njit(cache=True, error_model="numpy")
def _nonnegative_ok(v):
    return v >= 0.0 and v < math.inf


# each constraint's test of one value (ppl/laws/law.py's CONSTRAINTS): the row-fused step calls
# them per row (lowering/rowfused.py), the all_* kernels below over arrays
VALUE_TESTS = {"unit": _unit_ok, "unit_positive": _unit_positive_ok, "count": _count_ok,
               "nonnegative": _nonnegative_ok}


@njit(cache=True, error_model="numpy")
def _group_ok(a, r, c0, K):
    s = 0.0
    for k in range(K):
        v = float(a[r, c0 + k])
        if not _nonnegative_ok(v):
            return False
        s += v
    return s > 0.0


def _all_passing(test):
    """A function of a 2D array: True when `test` passes on every entry. A C-contiguous array (the
    step's buffers) is read as one flat loop without an early exit, which vectorises (a one-column
    node's nested loop stays scalar); any other layout row by row, stopping at the first failure."""

    def check(a):
        """Whether every entry passes the check's test."""

    @overload(check, jit_options=dict(cache=True, error_model="numpy"))
    def _ov(a):
        if isinstance(a, types.Array) and a.layout == "C":
            def flat(a):
                f = flat_cells(a)
                bad = 0
                for i in range(f.size):
                    bad += 0 if test(f[i]) else 1
                return bad == 0
            impl = flat
        else:
            def nested(a):
                for r in range(a.shape[0]):
                    for j in range(a.shape[1]):
                        if not test(a[r, j]):
                            return False
                return True
            impl = nested
        # named after the test and the path: two closures of this factory compiled by two processes
        # must not share a symbol in the cache (cpu/noise.py, `_named`)
        impl.__name__ = impl.__qualname__ = f"all_{test.py_func.__name__.strip('_')}_{impl.__name__}"
        return impl

    return check


_all_unit, _all_unit_positive = _all_passing(_unit_ok), _all_passing(_unit_positive_ok)
_all_counts, _all_nonnegative = _all_passing(_count_ok), _all_passing(_nonnegative_ok)


@njit(cache=True, error_model="numpy")
def all_unit(a):
    """True when every entry of the 2D a is within [0, 1]."""
    return _all_unit(a)


@njit(cache=True, error_model="numpy")
def all_unit_positive(a):
    """True when every entry of the 2D a is within (0, 1]."""
    return _all_unit_positive(a)


@njit(cache=True, error_model="numpy")
def all_counts(a):
    """True when every entry of the 2D a is a non-negative integer (finite)."""
    return _all_counts(a)


@njit(cache=True, error_model="numpy")
def all_nonnegative(a):
    """True when every entry of the 2D a is finite and >= 0 (a Poisson rate: 0 is the certain 0)."""
    return _all_nonnegative(a)


@njit(cache=True, error_model="numpy")
def all_weight_groups(a, K):
    """True when every group of K columns of the 2D a is finite and non-negative with a positive sum."""
    for r in range(a.shape[0]):
        for c0 in range(0, a.shape[1], K):
            if not _group_ok(a, r, c0, K):
                return False
    return True


# the same tests counted a row at a time into a word of the CUDA step's sink (lowering/printer.py):
# rows of its joined kernels (kernels/fusion.py), each row's count added by lane 0
@rows("a")
def all_unit_into(r, a, sink, k):
    """sink[k] += the entries of row r of the 2D a outside [0, 1] (NaN among them)."""
    n = 0.0
    for j in range(a.shape[1]):
        n += 0.0 if _unit_ok(a[r, j]) else 1.0
    if n != 0.0:
        add_word(sink, k, n)


@rows("a")
def all_unit_positive_into(r, a, sink, k):
    """sink[k] += the entries of row r of the 2D a outside (0, 1] (NaN among them)."""
    n = 0.0
    for j in range(a.shape[1]):
        n += 0.0 if _unit_positive_ok(a[r, j]) else 1.0
    if n != 0.0:
        add_word(sink, k, n)


@rows("a")
def all_counts_into(r, a, sink, k):
    """sink[k] += the entries of row r of the 2D a that are not non-negative integers (finite)."""
    n = 0.0
    for j in range(a.shape[1]):
        n += 0.0 if _count_ok(a[r, j]) else 1.0
    if n != 0.0:
        add_word(sink, k, n)


@rows("a")
def all_nonnegative_into(r, a, sink, k):
    """sink[k] += the entries of row r of the 2D a that are negative, +inf or NaN."""
    n = 0.0
    for j in range(a.shape[1]):
        n += 0.0 if _nonnegative_ok(a[r, j]) else 1.0
    if n != 0.0:
        add_word(sink, k, n)


def _bad_unit(i, a):
    r = i // a.shape[1]
    return 0.0 if _unit_ok(a[r, i - r * a.shape[1]]) else 1.0


def _bad_unit_positive(i, a):
    r = i // a.shape[1]
    return 0.0 if _unit_positive_ok(a[r, i - r * a.shape[1]]) else 1.0


def _bad_count(i, a):
    r = i // a.shape[1]
    return 0.0 if _count_ok(a[r, i - r * a.shape[1]]) else 1.0


def _bad_nonnegative(i, a):
    r = i // a.shape[1]
    return 0.0 if _nonnegative_ok(a[r, i - r * a.shape[1]]) else 1.0


def _bad_group(i, a, K):
    G = a.shape[1] // K
    r = i // G
    return 0.0 if _group_ok(a, r, (i - r * G) * K, K) else 1.0


_CELLS, _GROUPS = "a.shape[0] * a.shape[1]", "a.shape[0] * (a.shape[1] // K)"
CUDA = {"all_unit": count_launcher(all_unit, _bad_unit, _CELLS),
        "all_unit_positive": count_launcher(all_unit_positive, _bad_unit_positive, _CELLS),
        "all_counts": count_launcher(all_counts, _bad_count, _CELLS),
        "all_nonnegative": count_launcher(all_nonnegative, _bad_nonnegative, _CELLS),
        "all_weight_groups": count_launcher(all_weight_groups, _bad_group, _GROUPS)}


def _with(g, values, *shape):
    """Entries of a passing array, the first ones replaced by `values`."""
    a = g.u(*shape)
    a.flat[:len(values)] = values
    return a.astype(g.dt)


R, D, K = 4, 6, 3
PARITY = {
    "all_unit": lambda g: (_with(g, [0.0, 1.0], R, D),),
    "all_unit_positive": lambda g: (_with(g, [1.0], R, D),),
    "all_counts": lambda g: (np.floor(9 * _with(g, [0.0], R, D)).astype(g.dt),),
    "all_weight_groups": lambda g: (_with(g, [0.0, 0.0], R, D), K),
    "all_nonnegative": lambda g: (_with(g, [0.0], R, D),),
    "all_unit_into": lambda g: (_with(g, [0.5, np.nan, 1.5, -0.1], R, D), np.zeros(2), 1),
    "all_unit_positive_into": lambda g: (_with(g, [0.0, 0.5, 1.0, 2.0], R, D), np.zeros(2), 0),
    "all_counts_into": lambda g: (np.floor(9 * _with(g, [1.5, -1.0, np.inf], R, D)).astype(g.dt)
                                  + 0.5 * (g.u(R, D) > 0.8), np.zeros(2), 1),   # negative, inf, fractions
    "all_nonnegative_into": lambda g: (_with(g, [-1.0, np.inf, np.nan], R, D), np.zeros(2), 0),
}
# the failing branch of each, for tests/kernels/test_gpu_kernels.py's variants
FAILING = {
    "all_unit[nan]": ("all_unit", lambda g: (_with(g, [0.5, np.nan], R, D),)),
    "all_unit[above]": ("all_unit", lambda g: (_with(g, [1.5], R, D),)),
    "all_unit_positive[zero]": ("all_unit_positive", lambda g: (_with(g, [0.5, 0.0], R, D),)),
    "all_counts[fraction]": ("all_counts", lambda g: (_with(g, [2.0, 1.5], R, D),)),
    "all_counts[negative]": ("all_counts", lambda g: (_with(g, [-1.0], R, D),)),
    "all_nonnegative[negative]": ("all_nonnegative", lambda g: (_with(g, [0.0, -1.0], R, D),)),
    "all_counts[inf]": ("all_counts", lambda g: (_with(g, [np.inf], R, D),)),
    "all_weight_groups[zero sum]": ("all_weight_groups", lambda g: (_with(g, [0.0, 0.0, 0.0], R, D), K)),
    "all_weight_groups[negative]": ("all_weight_groups", lambda g: (_with(g, [0.2, -0.1], R, D), K)),
    "all_weight_groups[nan]": ("all_weight_groups", lambda g: (_with(g, [np.nan], R, D), K)),
}
