"""`native.views.flat_cells`, the kernels' flat view without Numba's reshape: the same cells as
`reshape(a.size)` (the oracle), the same data, the owner kept; and the kernels that read their
arrays flat compile no reshape."""
import sys

import numba
import numpy as np
import pytest
from numba import njit

from ppl.kernels.cpu.rows import all_finite2
from ppl.kernels.families.checks import all_nonnegative
from ppl.kernels.math.optim import schedule_factor
from ppl.kernels.native.views import flat_cells


@njit(cache=False)
def _flat(a):
    return flat_cells(a)


@njit(cache=False)
def _flat_sum(a):
    if a.flags.c_contiguous:
        v = flat_cells(a)
        s = 0.0
        for i in range(v.shape[0]):
            s += v[i] * (i + 1)
        return s
    return -1.0


@pytest.mark.parametrize("shape", [(), (0,), (7,), (3, 4), (1, 5), (2, 3, 4)])
def test_flat_cells_are_reshape_s_cells_on_the_same_data(shape):
    a = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)
    v = _flat(a)
    assert v.shape == (a.size,) and v.dtype == a.dtype
    np.testing.assert_array_equal(v, a.reshape(a.size))
    if a.size:
        v[0] = -1.0
        assert a.reshape(a.size)[0] == -1.0   # a view, not a copy


def test_an_array_not_typed_c_contiguous_is_read_flat_only_where_it_is():
    a = np.arange(12.0).reshape(3, 4)
    want = float((a.reshape(12) * np.arange(1, 13)).sum())
    assert _flat_sum(a) == want
    assert _flat_sum(a[:, 1:]) == -1.0 and _flat_sum(np.asfortranarray(a)) == -1.0 and _flat_sum(a[::2]) == -1.0


def test_the_view_keeps_its_owner_and_counts_no_reference_more():
    x = np.ones((5, 5))
    before = sys.getrefcount(x)
    for _ in range(200):
        _flat(x)
    assert sys.getrefcount(x) == before
    v = _flat(np.full((4, 4), 2.0))   # the only reference to its array: the view keeps it alive
    assert float(v.sum()) == 32.0


def _links_reshape(py_func, *args) -> bool:
    f = njit(cache=False, error_model="numpy")(py_func)
    f.compile(tuple(numba.typeof(a) for a in args))
    lib = f.overloads[f.signatures[0]].library
    return "normalize_reshape_value" in lib.get_llvm_str()


def test_the_kernels_that_read_arrays_flat_compile_no_reshape():
    """Test of the test: a function that calls reshape links Numba's shape normaliser."""
    def with_reshape(a):
        return a.reshape(a.size).sum()

    a = np.ones((3, 4), np.float32)
    assert _links_reshape(with_reshape, a)
    assert not _links_reshape(all_finite2.py_func, a)
    assert not _links_reshape(all_nonnegative.py_func, a)


def test_the_step_decay_s_power_is_the_float_power():
    """Oracle: numpy's float power of the floor, as the optimiser's test computes it."""
    for t in (0.0, 6.0, 7.0, 20.0, 70.0):
        assert schedule_factor(2, 0.0, 7.0, 0.3, t) == pytest.approx(0.3 ** np.floor(t / 7.0), rel=1e-15)
