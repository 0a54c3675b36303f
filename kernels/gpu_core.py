"""Shared pieces of the CUDA twins (gpu.py, gpu_dists.py, gpu_costs.py, gpu_optim.py,
gpu_noise.py, gpu_rows.py, gpu_antithetic.py, ...).

* ``require_cuda()``: the clear error every launcher raises when no device is usable.
* ``launch(kernel, n)``: kernel configured for a grid-stride loop over n items;
  ``run(kernel, n, *args)`` launches it (``_run_rows`` is the same, for gpu.py's family).
* ``single_block(kernel, n)``: kernel configured as ONE block, for kernels that end in a
  deterministic block reduction (``block_sum``): a fixed summation order, no atomics, no
  scratch memory, so a reduction gives the same bits on every run.
* ``to_host_scalar`` / ``scratch()``: a preallocated 2-element float64 device array that
  reductions returning a value to the host write to (one copy back per call).
* The generic kernel makers of gpu.py's family, each a CUDA kernel over a device function
  ``f``: ``_map1`` / ``_map2`` (elementwise), ``_chain`` (elementwise VJP), ``_rows2`` (per-row
  sums), ``_group_rows`` (per-row sums over softmax groups); their launchers ``_run_map``,
  ``_launch_cells``, ``_reducing`` (one block when a grand total is wanted); the sizes
  ``_cells`` / ``_groups``; and the accumulating elementwise kernels ``_acc`` / ``_mul_acc``.
"""
import math

import numpy as np
from numba import cuda, float64

from .gpu_config import BLOCK, MAX_BLOCKS
from .scalar import like


class CudaUnavailableError(RuntimeError):
    """No CUDA device (and the CUDA simulator is off)."""


def require_cuda():
    """Raise a clear error unless a CUDA device, or the CUDA simulator, is available."""
    if not cuda.is_available():
        raise CudaUnavailableError(
            "ppl CUDA kernels: no CUDA device was found (numba.cuda.is_available() is False). "
            "Use the CPU target, install a GPU driver, or set NUMBA_ENABLE_CUDASIM=1 before "
            "numba is imported to run the kernels in the (slow) CUDA simulator."
        )


def threads_for(n):
    """Threads per block for n items: the next power of two >= n, at most BLOCK."""
    t = 1
    while t < n and t < BLOCK:
        t *= 2
    return t


def launch(kernel, n):
    """``kernel`` configured to cover n items with a grid-stride loop (None when n == 0)."""
    require_cuda()
    if n <= 0:
        return None
    t = threads_for(n)
    return kernel[min(MAX_BLOCKS, math.ceil(n / t)), t]


def run(kernel, n, *args):
    """Launch ``kernel(*args)`` over n items (nothing when n == 0)."""
    k = launch(kernel, n)
    if k is not None:
        k(*args)


def single_block(kernel, n):
    """``kernel`` configured as one block (for kernels ending in ``block_sum``)."""
    require_cuda()
    return kernel[1, threads_for(max(n, 1))]


_SCRATCH = []


def scratch():
    """The 2-element float64 device array reductions return their results through."""
    if not _SCRATCH:
        _SCRATCH.append(cuda.device_array(2, dtype=np.float64))
    return _SCRATCH[0]


@cuda.jit(device=True)
def block_sum(v):
    """Sum of v over the threads of the block (every thread gets it); blockDim a power of 2.

    Thread-order tree in shared memory: deterministic for a given block size.
    """
    buf = cuda.shared.array(BLOCK, float64)
    tid = cuda.threadIdx.x
    cuda.syncthreads()  # a previous block_sum's readers are done with buf
    buf[tid] = v
    cuda.syncthreads()
    s = cuda.blockDim.x // 2
    while s > 0:
        if tid < s:
            buf[tid] += buf[tid + s]
        cuda.syncthreads()
        s //= 2
    return buf[0]


# ============================================================================ kernel makers
# (and launch helpers) of gpu.py's family: gpu.py, gpu_dists.py, gpu_costs.py, gpu_optim.py


def _cells(a):
    return a.shape[0] * a.shape[1]


def _map1(f):
    """out[r, j] = f(a[r, j])."""

    @cuda.jit
    def k(a, out):
        R, D = out.shape
        for i in range(cuda.grid(1), R * D, cuda.gridsize(1)):
            r = i // D
            j = i - r * D
            out[r, j] = f(a[r, j])

    return k


def _map2(f):
    """out[r, j] = f(a[r, j], b[r, j])."""

    @cuda.jit
    def k(a, b, out):
        R, D = out.shape
        for i in range(cuda.grid(1), R * D, cuda.gridsize(1)):
            r = i // D
            j = i - r * D
            out[r, j] = f(a[r, j], b[r, j])

    return k


def _chain(f):
    """gx[r, j] += gout[r, j] * f(a[r, j]) (the VJP of an elementwise map)."""

    @cuda.jit
    def k(a, gout, gx):
        R, D = gout.shape
        for i in range(cuda.grid(1), R * D, cuda.gridsize(1)):
            r = i // D
            j = i - r * D
            gx[r, j] += gout[r, j] * f(a[r, j])

    return k


def _rows2(f):
    """out_rows[r] = sum_j f(a[r, j], x[r, j]) (one thread per row, j in order)."""

    @cuda.jit
    def k(a, x, out_rows):
        R, D = x.shape
        for r in range(cuda.grid(1), R, cuda.gridsize(1)):
            s = like(x, 0.0)
            for j in range(D):
                s += f(a[r, j], x[r, j])
            out_rows[r] = s

    return k


def _group_rows(f):
    """out_rows[r] = sum_g f(a, x, r, g*K, K) over the G = D // K groups of a row."""

    @cuda.jit
    def k(a, x, K, out_rows):
        R, D = x.shape
        G = D // K
        for r in range(cuda.grid(1), R, cuda.gridsize(1)):
            s = like(x, 0.0)
            for gi in range(G):
                s += f(a, x, r, gi * K, K)
            out_rows[r] = s

    return k


def _run_map(kernel, out, *args):
    """Launch ``kernel(*args, out)`` over the cells of the 2D ``out``."""
    k = launch(kernel, _cells(out))
    if k is not None:
        k(*args, out)


def _launch_cells(kernel, shape_of, *args):
    """Launch ``kernel(*args)`` over the cells of the 2D array ``shape_of``."""
    k = launch(kernel, _cells(shape_of))
    if k is not None:
        k(*args)


_run_rows = run   # over n_rows items (rows, groups or vector entries)


def _reducing(kernel, n, wants_sum):
    """One block when a grand total is wanted (deterministic block_sum), else the full grid."""
    if wants_sum:
        return single_block(kernel, n)
    return launch(kernel, n)


def _groups(a, K):
    return a.shape[0] * (a.shape[1] // K)


@cuda.jit
def _mul_acc(a, b, out):
    """out[r, j] += a[r, j] * b[r, j]."""
    R, D = out.shape
    for i in range(cuda.grid(1), R * D, cuda.gridsize(1)):
        r = i // D
        j = i - r * D
        out[r, j] += a[r, j] * b[r, j]


@cuda.jit
def _acc(a, out):
    """out[r, j] += a[r, j]."""
    R, D = out.shape
    for i in range(cuda.grid(1), R * D, cuda.gridsize(1)):
        r = i // D
        j = i - r * D
        out[r, j] += a[r, j]
