"""This machine's occasional transcendental misses, for tests that check bit-identity.

Now and then (windows of minutes, every process alike) a few libm results come out ~1e-11
relative off (tests/conftest.py re-runs a failed test in a fresh interpreter for this reason).
A test comparing two computations bit for bit cannot tell that from a real difference unless it
repeats one of them: `assert_identical` does, and skips (saying so) when the same computation run
twice here differs, instead of failing on the machine or passing a real fault.
"""
import numpy as np
import pytest

RTOL_LIBM = 1e-9   # float64 results of different code paths through libm: the windows' misses are ~1e-11


def assert_identical(got, want, again, what):
    """got == want bit for bit; when not, `again()` recomputes want: if this process computes the
    same thing twice with different results, bit-identity cannot be checked here and the test is
    skipped, saying so; otherwise got must equal want."""
    got, want = np.asarray(got), np.asarray(want)
    nan = want.dtype.kind in "fc"   # NaN in the same places is the same result

    def same(a, b):
        return np.array_equal(a, b, equal_nan=nan)
    if same(got, want):
        return
    want2 = np.asarray(again())
    if not same(want, want2):
        bad = (want != want2) & ~(np.isnan(want) & np.isnan(want2)) if nan else want != want2
        rel = float(np.max(np.abs(want[bad] - want2[bad]) / np.maximum(np.abs(want2[bad]), 1e-300)))
        pytest.skip(f"{what}: the same computation run twice here differs (max relative difference {rel:.1e}); "
                    f"bit-identity cannot be checked in this process")
    np.testing.assert_array_equal(got, want, err_msg=what)   # (assert_array_equal: NaN == NaN)
