"""Shared pieces of the CUDA kernels (cuda/noise.py, cuda/rows.py, cuda/relax.py, the twins of
the families declared once, ...).

* ``require_cuda()``: the clear error every launcher raises when no device is usable.
* ``launch(kernel, n)``: kernel configured for a grid-stride loop over n items;
  ``run(kernel, n, *args)`` launches it.
* ``single_block(kernel, n)``: kernel configured as ONE block, for kernels that end in a
  deterministic block reduction (``block_sum``): a fixed summation order, no atomics, no
  scratch memory, so a reduction gives the same bits on every run.
* ``to_host_scalar`` / ``scratch()``: a preallocated 2-element float64 device array that
  reductions returning a value to the host write to (one copy back per call).
* ``sink(n)``: n zeroed float64 words a CUDA step's reductions add into (their ``_into`` forms)
  and the step copies back once (lowering/printer.py).
* ``configured(kernel, grid, block)``: the kernel configured on the current launch stream, the
  default stream unless ``on_stream(s)`` names another (a stream under graph capture:
  runtime/cuda_graph.py). Every launcher configures its kernels through it;
  ``current_stream()`` is that stream (cuda/cublas.py sends its products there).
* ``LANES``, ``row_lanes(rows, cols)`` and ``lanes_sum`` / ``lanes_any`` / ``lanes_all`` /
  ``lanes_sync``: the lanes that run a row body together (kernels/lanes.py), a warp or, for few
  wide rows, a block, and how they combine what each accumulated (an exchange of registers,
  ``shfl_xor_sync``, then the warps' totals in shared memory: every lane the same bits) and
  meet. One lane per row in the simulator, which has no exchange of registers.
"""
import contextlib
import math
import warnings

import numpy as np
from numba import config, cuda, float64
from numba.extending import overload

from .config import BLOCK, MAX_BLOCKS


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


_STREAM = [None]   # the stream kernels are launched on; None: the default stream


_CONFIGURED = {}   # (kernel, grid, block) -> kernel[grid, block] on the default stream
BOLD = "\x1b\\[[0-9;]*m"   # a terminal escape (bold, reset) that Numba's messages carry on a device
_SMALL_GRID = f"({BOLD})?Grid size \\d+ will likely result in GPU under-utilization"


def configured(kernel, grid, block):
    """``kernel[grid, block]`` on the current launch stream (``on_stream``); on the default stream
    made once per (kernel, grid, block) and kept. Not kept where configuring returns the kernel
    itself (the CUDA simulator sets the configuration on the kernel object): a kept one would
    launch with whichever configuration was set last."""
    s = _STREAM[0]
    if s is not None:
        return _configure(kernel, grid, block, s)
    key = (kernel, grid, block)
    k = _CONFIGURED.get(key)
    if k is None:
        k = _configure(kernel, grid, block, None)
        if k is kernel:
            return k
        if len(_CONFIGURED) >= 4096:
            _CONFIGURED.clear()
        _CONFIGURED[key] = k
    return k


def _configure(kernel, grid, block, s):
    """The configured kernel, without numba-cuda's warning of a grid under 128 blocks: ppl sizes its
    grids to the rows a step has, and a small batch's is small on purpose (the user has nothing to
    change). Only that message, only here: the process's own warning filters stay as they are."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_SMALL_GRID)
        return kernel[grid, block] if s is None else kernel[grid, block, s]


def current_stream():
    """The stream kernels are launched on now (None: the default stream)."""
    return _STREAM[0]


@contextlib.contextmanager
def on_stream(stream):
    """Launch every kernel on ``stream`` (a numba-cuda stream, or an object it accepts as one, such
    as cuda.core's graph builder) inside the block."""
    prev = _STREAM[0]
    _STREAM[0] = stream
    try:
        yield
    finally:
        _STREAM[0] = prev


def threads_for(n, most=BLOCK):
    """Threads per block (or along one side of a block) for n items: the next power of two >= n,
    at most `most`."""
    t = 1
    while t < n and t < most:
        t *= 2
    return t


def grid_for(n):
    """(blocks, threads per block) of a grid-stride launch over n >= 1 items."""
    t = threads_for(n)
    return min(MAX_BLOCKS, math.ceil(n / t)), t


def launch(kernel, n):
    """``kernel`` configured to cover n items with a grid-stride loop (None when n == 0)."""
    require_cuda()
    if n <= 0:
        return None
    return configured(kernel, *grid_for(n))


def run(kernel, n, *args):
    """Launch ``kernel(*args)`` over n items (nothing when n == 0)."""
    k = launch(kernel, n)
    if k is not None:
        k(*args)


COUNTED_ITEMS = 8   # items a thread of a counting kernel takes at least


def launch_counted(kernel, n):
    """``kernel`` (registry.counted) configured for n >= 1 items over the grid, each thread taking
    COUNTED_ITEMS of them or more (its blocks' threads a power of two, as block_sum needs)."""
    require_cuda()
    t = threads_for(-(-n // COUNTED_ITEMS))
    return configured(kernel, min(MAX_BLOCKS, math.ceil(n / (t * COUNTED_ITEMS))), t)


def single_block(kernel, n):
    """``kernel`` configured as one block (for kernels ending in ``block_sum``)."""
    require_cuda()
    return configured(kernel, 1, threads_for(max(n, 1)))


_SCRATCH = []
_SINK = []


def sink(n):
    """n float64 words on the device, zeroed: where a CUDA step's kernels add the values it reads
    (the loss terms, the checks' failing counts) to copy them back once. One array, grown as
    needed, shared by the process's steps (each reads its words before it returns)."""
    if not _SINK or _SINK[0].shape[0] < n:
        _SINK[:] = [cuda.device_array(max(n, 64), dtype=np.float64)]
    out = _SINK[0][:max(n, 1)]
    run(_zero, out.shape[0], out)
    return out


@cuda.jit
def _zero(a):
    for i in range(cuda.grid(1), a.shape[0], cuda.gridsize(1)):
        a[i] = 0.0


def scratch():
    """The 2-element float64 device array reductions return their results through."""
    if not _SCRATCH:
        _SCRATCH.append(cuda.device_array(2, dtype=np.float64))
    return _SCRATCH[0]


@cuda.jit(device=True, inline="always")
def block_sum(v):
    """Sum of v over the threads of the block (every thread gets it); blockDim a power of 2
    (inlined where it is called, as `_block_total` is, for its shared array).

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


LANES = 1 if config.ENABLE_CUDASIM else min(32, BLOCK)   # a row's lanes: a warp (a block, if smaller)
WIDE_ROWS = 1024   # at most this many rows (of at least BLOCK columns) take a block per row


def row_lanes(rows, cols):
    """The lanes a row body's launch gives each row: a warp, or the whole block where the rows are
    few (rows <= WIDE_ROWS: a warp per row would leave most of the device idle) and wide (cols >=
    BLOCK: each lane has columns to do)."""
    if LANES < 32 or BLOCK <= LANES or rows > WIDE_ROWS or cols < BLOCK:
        return LANES
    return BLOCK


def joined_lanes(rows, cols, widest):
    """The lanes of a joined kernel's row (kernels/cuda/fused.py): row_lanes of its loop arrays'
    columns, or one where no argument has a row of LANES columns or more (the members' loops run
    over their arguments' columns: with fewer, most of a warp per row would idle, so a thread per
    row puts 32 rows on a warp)."""
    return 1 if widest < LANES else row_lanes(rows, cols)


@cuda.jit(device=True)
def _lane_mask(W):
    return 0xFFFFFFFF if W >= 32 else (1 << W) - 1


def _as_type_of(v, x):
    """x in v's type (the pure-Python body: the simulator; compiled code takes the overload)."""
    return type(v)(x)


@overload(_as_type_of)
def _as_type_of_overload(v, x):
    t = v
    return lambda v, x: t(x)


@cuda.jit(device=True, inline="always")
def _block_total(v, W):
    """The sum over the W // 32 warps of a block of each warp's total v (every lane holds its
    warp's), in float64 and in warp order: every thread the same bits. Inlined where it is
    called, as are the lanes helpers that call it: its shared array is then defined by each
    caller's own code, so two row bodies in one joined kernel (kernels/cuda/fused.py) do not
    define one shared symbol twice (a device function's shared array, linked into a kernel
    through two callers, is a duplicate definition NVVM refuses)."""
    buf = cuda.shared.array(32, float64)   # a block's warps, 1024 threads at most
    cuda.syncthreads()   # a previous total's readers are done with buf
    if cuda.threadIdx.x % 32 == 0:
        buf[cuda.threadIdx.x // 32] = v
    cuda.syncthreads()
    t = buf[0]
    for k in range(1, W // 32):
        t += buf[k]
    return _as_type_of(v, t)


@cuda.jit(device=True, inline="always")
def lanes_sum(v, W):
    """The sum of v over the W lanes (a butterfly in each warp, then the warps' totals where the
    lanes are a block: every lane the same bits)."""
    w = min(W, 32)
    off = w // 2
    while off > 0:
        v += cuda.shfl_xor_sync(_lane_mask(w), v, off)
        off //= 2
    if W > 32:
        v = _block_total(v, W)
    return v


@cuda.jit(device=True, inline="always")
def lanes_any(v, W):
    """Whether v holds in any of the W lanes."""
    return lanes_sum(1 if v else 0, W) > 0


@cuda.jit(device=True, inline="always")
def lanes_all(v, W):
    """Whether v holds in every one of the W lanes."""
    return lanes_sum(1 if v else 0, W) == W


@cuda.jit(device=True)
def lanes_sync(W):
    """The W lanes meet: what each wrote before, the others read after."""
    if W > 32:
        cuda.syncthreads()
    elif W > 1:
        cuda.syncwarp(_lane_mask(W))
