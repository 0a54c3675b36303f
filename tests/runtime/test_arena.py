"""A program's arrays lie apart in memory (ppl/runtime/arena.py): every workspace buffer, theta,
the gradient and the state start on a cache line, at least GAP bytes from any other's ends, so
LLVM's run-time overlap test of a vectorised kernel loop never fails on neighbours."""
import numpy as np
import pytest

from ppl.runtime.arena import ALIGN, GAP, carve
from small_models import two_layer_sbn


def _spans(arrays):
    return sorted((a.ctypes.data, a.ctypes.data + a.nbytes) for a in arrays)


def _apart(arrays) -> bool:
    spans = _spans(arrays)
    return all(b0 - a1 >= GAP for (_, a1), (b0, _) in zip(spans, spans[1:]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_carved_arrays_are_zeroed_aligned_and_apart(dtype):
    arrays = carve([(3, 5), 7, (0, 4), 1], dtype)
    assert [a.shape for a in arrays] == [(3, 5), (7,), (0, 4), (1,)]
    assert all(a.dtype == dtype and a.flags.c_contiguous and a.flags.writeable for a in arrays)
    assert all(a.ctypes.data % ALIGN == 0 for a in arrays if a.size)   # an empty one is never read
    assert all(not a.any() for a in arrays)
    assert _apart([a for a in arrays if a.size])
    arrays[0][:] = 1.0   # no array writes into another
    assert not any(a.any() for a in arrays[1:])


def test_the_check_sees_neighbours():
    block = np.zeros(64, np.float32)
    assert not _apart([block[:16], block[20:36]])


def test_a_programs_arrays_are_apart():
    prog = two_layer_sbn("arena").compile(estimators="disarm", samples=2)
    ws2, ws1 = prog.workspace(8)
    arrays = [a for a in (*ws2, *ws1, prog.theta, prog.grad_buffer, prog.state) if a.nbytes]
    assert len(arrays) > 10
    assert all(a.ctypes.data % ALIGN == 0 for a in arrays)
    assert _apart(arrays)
