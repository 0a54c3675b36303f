"""The CUDA simulator's thread blocks as the suite runs them (tests/cudasim_blocks.py: a barrier
instead of Numba's polling loop). Oracles: NumPy's sums and counts; the simulator's own meaning of
syncthreads (every thread of the block still running reaches it), of a thread's exception (raised,
naming the thread, the block's other threads aborted) and of a return before a barrier."""
import os

import numpy as np
import pytest

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(os.environ.get("NUMBA_ENABLE_CUDASIM") != "1", reason="the simulator's scheduler")]

from numba import cuda, float64  # noqa: E402 (after the simulator is chosen, in conftest.py)


@cuda.jit
def block_sums(x, out):
    # a tree reduction in shared memory, a barrier per level; threads past the end add zeros
    buf = cuda.shared.array(16, float64)
    t = cuda.threadIdx.x
    i = cuda.blockIdx.x * cuda.blockDim.x + t
    buf[t] = x[i] if i < x.shape[0] else 0.0
    cuda.syncthreads()
    s = 8
    while s > 0:
        if t < s:
            buf[t] += buf[t + s]
        cuda.syncthreads()
        s //= 2
    if t == 0:
        out[cuda.blockIdx.x] = buf[0]


@cuda.jit
def early_return(x, out):
    # threads 0-2 return at once; the others meet at a barrier twice and count the positives
    t = cuda.threadIdx.x
    if t < 3:
        return
    cuda.syncthreads()
    n = cuda.syncthreads_count(x[t] > 0)
    if t == 3:
        out[0] = n


@cuda.jit
def fails(x):
    t = cuda.threadIdx.x
    cuda.syncthreads()
    if t == 5:
        x[1000] = 1.0     # past the end: the simulator raises IndexError in this thread
    cuda.syncthreads()
    x[t] = 2.0


def test_barriers_give_numpys_sums_and_counts():
    x = np.random.default_rng(0).normal(size=37)
    out = np.zeros(3)
    block_sums[3, 16](x, out)
    np.testing.assert_allclose(out, [x[:16].sum(), x[16:32].sum(), x[32:].sum()], rtol=1e-12)
    y = np.array([1.0, 1.0, 1.0, -1.0, 2.0, 0.0, 3.0, -4.0, 5.0, 6.0])
    got = np.zeros(1)
    early_return[1, 10](y, got)
    assert got[0] == int((y[3:] > 0).sum())   # the returned threads' entries are not counted


def test_a_threads_exception_is_raised_and_the_block_does_not_hang():
    with pytest.raises(IndexError, match=r"tid=\[5, 0, 0\]"):
        fails[1, 8](np.zeros(8))

