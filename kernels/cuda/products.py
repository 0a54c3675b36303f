"""The CUDA target's products and column reductions, written for the device's memory hierarchy
(the launchers of the affine layers, ``families/layers.py``, and ``cuda/rows.py`` call them).

* ``matmul(a, ta, b, tb, c, bias)``: c = op(a) op(b) + bias, or c += op(a) op(b) when bias is
  None (op transposes when its flag is set). On a GPU with libcublas, cuBLAS's gemm
  (cuda/cublas.py; the bias first written into c's rows), emulated in the CUDA simulator;
  otherwise (``PPL_CUDA_PRODUCTS=tiled``, no libcublas) ppl's own kernels.
  Tiled: a block of 16 x 16 threads computes a 64 x 64 tile of c, each thread 4 x 4 entries
  (rows ty + 16 i, columns tx + 16 j, so that neighbouring threads read neighbouring words),
  over 16-deep slices of the shared index staged in shared memory. Every entry still sums the
  shared index in order, 0, 1, ..., as one thread per entry did; the slices past the end add
  zeros.
  Outputs of at most SMALL entries take one thread per entry instead (the same order of sums).
* ``column_sums(g, out)``: out[o] += sum_r g[r, o]; cuBLAS's ones @ g where cuBLAS is in use,
  else a block of up to 32 x 32 threads per 32 columns, each thread summing every 32nd row,
  then the partial sums in a fixed order: deterministic either way. ``column_sums_all(g, out,
  g, out, ...)``: several such sums by one launch of those blocks.
* ``spread_rows(a, S)``: in place, a[r] = a[r // S] for every row; the rows whose sources are
  no longer written are copied together (a level), the levels from the last rows up: a level of
  more than SPREAD_LEVEL rows is a launch over the device, the rest one kernel, a block per 32
  columns with its threads in step between levels.
Over at most FEW_ROWS rows, column sums and row spreading take one thread per column, the rows in
turn. Blocks are no larger than the array needs (the simulator runs each thread in Python).
* ``count_not_finite(a, res)``: res[0] = the number of entries of the 1D a that are NaN or
  infinite; the whole grid counts and adds its counts atomically (a count: exact in any order).

Each kernel is compiled per dtype on first use (shared and local arrays need their type).
"""
import math

import numpy as np
from numba import cuda, float32, float64

from ..native.launch import configured, launch, require_cuda, threads_for
from . import cublas

TILE, DEPTH, SIDE = 64, 16, 16      # a block's tile of c, the shared-index slice, threads per side
SMALL = 4096                        # outputs of at most this many entries: one thread per entry
FEW_ROWS = 64                       # column sums and row spreading over at most this many rows: a thread per column
SPREAD_LEVEL = 512                  # row spreading: a level over more rows than this is a launch of its own
JOINED_SUMS_ROWS = 256              # column_sums_all over more rows than this: cuBLAS's products, one a sum
SUMS_APART = 32                     # column_sums_all over at most this many rows: a thread a column
PADDED = TILE + 1                   # a staged slice's row length (no shared-memory bank conflicts)
_KERNELS = {}


def _nb(dtype):
    return float32 if np.dtype(dtype) == np.float32 else float64


@cuda.jit(device=True)
def _stage(src, k_last, S, e, r0, R, k0, K):
    """Entry e of a product operand's staged slice: S[k, r] = the operand's entry (r0 + r,
    k0 + k), zero past its ends. k_last: src is (R, K), neighbouring threads along k; else src is
    (K, R), neighbouring threads along r (coalesced reads either way)."""
    if k_last:
        r = e // DEPTH
        k = e - r * DEPTH
    else:
        k = e // TILE
        r = e - k * TILE
    gr, gk = r0 + r, k0 + k
    if gr < R and gk < K:
        S[k, r] = src[gr, gk] if k_last else src[gk, gr]
    else:
        S[k, r] = 0


def _matmul_kernel(dtype, ta, tb, bias):
    key = ("matmul", np.dtype(dtype), ta, tb, bias)
    if key in _KERNELS:
        return _KERNELS[key]
    nb = _nb(dtype)
    per = TILE // SIDE   # entries per thread along each side

    @cuda.jit
    def matmul(a, b, v, c):
        M, N = c.shape
        K = a.shape[0] if ta else a.shape[1]
        As = cuda.shared.array((DEPTH, PADDED), nb)
        Bs = cuda.shared.array((DEPTH, PADDED), nb)
        acc = cuda.local.array((per, per), nb)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        tid = ty * SIDE + tx
        m0 = cuda.blockIdx.y * TILE
        n0 = cuda.blockIdx.x * TILE
        for i in range(per):
            for j in range(per):
                acc[i, j] = 0
        for k0 in range(0, K, DEPTH):
            for load in range(TILE * DEPTH // (SIDE * SIDE)):
                e = tid + load * SIDE * SIDE
                _stage(a, not ta, As, e, m0, M, k0, K)
                _stage(b, tb, Bs, e, n0, N, k0, K)
            cuda.syncthreads()
            for kk in range(DEPTH):
                for i in range(per):
                    av = As[kk, ty + SIDE * i]
                    for j in range(per):
                        acc[i, j] += av * Bs[kk, tx + SIDE * j]
            cuda.syncthreads()
        for i in range(per):
            gm = m0 + ty + SIDE * i
            if gm < M:
                for j in range(per):
                    gn = n0 + tx + SIDE * j
                    if gn < N:
                        if bias:
                            c[gm, gn] = acc[i, j] + v[gn]
                        else:
                            c[gm, gn] += acc[i, j]

    _KERNELS[key] = matmul
    return matmul


def _entries_kernel(dtype, ta, tb, bias):
    key = ("entries", np.dtype(dtype), ta, tb, bias)
    if key in _KERNELS:
        return _KERNELS[key]
    zero = _nb(dtype)(0)

    @cuda.jit
    def entries(a, b, v, c):
        M, N = c.shape
        K = a.shape[0] if ta else a.shape[1]
        for i in range(cuda.grid(1), M * N, cuda.gridsize(1)):
            m = i // N
            n = i - m * N
            s = zero
            for k in range(K):
                s += (a[k, m] if ta else a[m, k]) * (b[n, k] if tb else b[k, n])
            if bias:
                c[m, n] = s + v[n]
            else:
                c[m, n] += s

    _KERNELS[key] = entries
    return entries


def tiled(a, ta, b, tb, c, v, bias):
    """matmul's tiled kernel (any size)."""
    M, N = c.shape
    grid = (math.ceil(N / TILE), math.ceil(M / TILE))
    configured(_matmul_kernel(c.dtype, bool(ta), bool(tb), bias), grid, (SIDE, SIDE))(a, b, v, c)


def per_entry(a, ta, b, tb, c, v, bias):
    """matmul's kernel for small outputs: one thread per entry of c."""
    launch(_entries_kernel(c.dtype, bool(ta), bool(tb), bias), c.shape[0] * c.shape[1])(a, b, v, c)


def matmul(a, ta, b, tb, c, bias=None):
    """c = op(a) op(b) + bias (bias a vector over c's columns), or c += op(a) op(b) when bias is
    None; op(a) = a.T when ta, op(b) = b.T when tb. Outputs of at most SMALL entries take one
    thread per entry (a tile's 256 threads would mostly idle), larger ones the tiled kernel."""
    require_cuda()
    M, N = c.shape
    if M == 0 or N == 0:
        return
    plan = cublas.plan(a, ta, b, tb, c)
    if plan is not None:
        _on_cublas(plan, c, bias, bias is not None)
        return
    way = per_entry if M * N <= SMALL else tiled
    way(a, ta, b, tb, c, c[0] if bias is None else bias, bias is not None)


def by_cublas(a, ta, b, tb, c, v, bias):
    """matmul on cuBLAS (tiled's signature; an error where cuBLAS is not in use or c's layout
    does not map)."""
    plan = cublas.plan(a, ta, b, tb, c)
    if plan is None:
        raise RuntimeError(f"cuBLAS is not in use: {cublas.why() or 'the layout does not map'}")
    _on_cublas(plan, c, v, bias)


def _on_cublas(plan, c, v, bias):
    """c (+)= the product, the bias first written into c's rows when bias."""
    if bias:
        from .core import broadcast_rows_fwd   # the layers family's twin (made after this module)
        broadcast_rows_fwd(v, c)
    cublas.gemm(plan)


# a block's columns (blockDim.x, at most 32) of G summed into OUT: each thread every blockDim.y-th
# row, then row 0 adds the parts in order
_SUMS_BLOCK = """\
R, O = G.shape
o = BLK * cuda.blockDim.x + cuda.threadIdx.x
s = zero
if o < O:
    for r in range(cuda.threadIdx.y, R, cuda.blockDim.y):
        s += G[r, o]
part[cuda.threadIdx.y, cuda.threadIdx.x] = s
cuda.syncthreads()
if cuda.threadIdx.y == 0 and o < O:
    t = part[0, cuda.threadIdx.x]
    for k in range(1, cuda.blockDim.y):
        t += part[k, cuda.threadIdx.x]
    OUT[o] += t
"""


# one thread a column (blockDim.y 1: no parts, no barrier), the rows added to OUT[o] in turn, in a
# register (an add to OUT[o] in the loop would go to memory at every row)
_SUMS_COLUMN = """\
R, O = G.shape
o = BLK * cuda.blockDim.x + cuda.threadIdx.x
if o < O:
    s = OUT[o]
    for r in range(R):
        s += G[r, o]
    OUT[o] = s
"""


def _sums_lines(g, out, blk, indent, single):
    text = (_SUMS_COLUMN if single else _SUMS_BLOCK).replace("G", g).replace("OUT", out).replace("BLK", blk)
    return [indent + line for line in text.splitlines()]


def _sums_kernel(k, dtype, single=False):
    """The column sums of k (g, out) pairs by one kernel: block b sums blockDim.x columns of the
    pair whose block range holds it (the ranges' ends e1 .. e{k-1} are arguments), k >= 2; k = 0:
    the kernel of one pair (column_sums's), b its block. Written out per pair: a device function
    would not see the simulator's `cuda`. `single`: blocks of one row of threads (_SUMS_COLUMN)."""
    key = ("column_sums", k, np.dtype(dtype), single)
    if key in _KERNELS:
        return _KERNELS[key]
    if k == 0:
        lines = ["def column_sums(g, out):", "    part = cuda.shared.array((32, 33), nb)",
                 *_sums_lines("g", "out", "cuda.blockIdx.x", "    ", single)]
    else:
        params = [f"g{i}, o{i}" for i in range(k)] + [f"e{i}" for i in range(1, k)]
        lines = [f"def column_sums({', '.join(params)}):", "    part = cuda.shared.array((32, 33), nb)",
                 "    b = cuda.blockIdx.x"]
        for i in range(k):
            lines += [f"    {'if' if i == 0 else 'elif'} b < e{i + 1}:" if i < k - 1 else "    else:",
                      *_sums_lines(f"g{i}", f"o{i}", f"(b - e{i})" if i else "b", "        ", single)]
    glb = {"cuda": cuda, "nb": _nb(dtype), "zero": _nb(dtype)(0)}
    exec(compile("\n".join(lines) + "\n", f"<generated column sums kernel ({k} pairs)>", "exec"), glb)
    _KERNELS[key] = cuda.jit(glb["column_sums"])
    return _KERNELS[key]


def column_sums_all(*pairs):
    """out += the column sums of g for each (g, out) of `pairs` (g, out, g, out, ...; 2D g of
    one dtype, 1D out) by ONE launch, each column's sum in the fixed order of ppl's column-sums
    kernel: the bias and broadcast gradients of the CUDA step's backward (lowering/launches.py
    gathers them at its end), one node of a captured step instead of a product each. Over more
    than JOINED_SUMS_ROWS rows, where cuBLAS is in use, each is column_sums's product instead: a
    block per 32 columns leaves most of a large GPU idle."""
    require_cuda()
    gs, outs = pairs[0::2], pairs[1::2]
    R = max(g.shape[0] for g in gs)
    if R > JOINED_SUMS_ROWS and cublas.why() is None:
        for g, out in zip(gs, outs):   # many rows: bandwidth, not launches, bounds them
            column_sums(g, out)
        return
    bx = threads_for(max(g.shape[1] for g in gs), 32)   # columns a block: 32, fewer for narrow arrays
    ends, at = [], 0
    for g in gs:
        at += -(-g.shape[1] // bx)
        ends.append(at)
    if at == 0:
        return
    # each thread sums 8 rows or more; at most SUMS_APART rows: a thread a column, no barrier
    by = 1 if R <= SUMS_APART else threads_for(-(-R // 8), 32)
    kernel = _sums_kernel(len(gs) if len(gs) > 1 else 0, gs[0].dtype, by == 1)
    configured(kernel, at, (bx, by))(*pairs, *ends[:-1])


def column_sums(g, out):
    """out[o] += sum_r g[r, o] (deterministic: a fixed order of partial sums): cuBLAS's product
    ones @ g where cuBLAS is in use, else ppl's kernels."""
    require_cuda()
    R, O = g.shape
    if O == 0:
        return
    plan = cublas.sums_plan(g, out) if R > 1 else None
    if plan is not None:
        cublas.gemm(plan)
        return
    bx = threads_for(O, 32)
    by = 1 if R <= FEW_ROWS else threads_for(-(-R // 8), 32)   # a thread a column, or each 8 rows or more
    configured(_sums_kernel(0, g.dtype, by == 1), math.ceil(O / bx), (bx, by))(g, out)


@cuda.jit
def _spread_rows(a, S, hi):
    D = a.shape[1]
    j = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    while hi > 1:
        lo = (hi - 1) // S + 1   # rows lo .. hi-1 read rows below lo only, which no level wrote yet
        if j < D:
            for r in range(lo + cuda.threadIdx.y, hi, cuda.blockDim.y):
                a[r, j] = a[r // S, j]
        cuda.syncthreads()
        hi = lo


@cuda.jit
def _spread_level(a, S, lo, hi):
    D = a.shape[1]
    for i in range(cuda.grid(1), (hi - lo) * D, cuda.gridsize(1)):
        r = lo + i // D
        j = i - (r - lo) * D
        a[r, j] = a[r // S, j]


def spread_rows(a, S):
    """In place: a[r] = a[r // S] for every row r (the first R / S rows spread to all R): the
    levels of more than SPREAD_LEVEL rows each a launch over the whole device, the rest in one
    kernel, a block per 32 columns meeting between levels."""
    require_cuda()
    R, D = a.shape
    if S <= 1 or R <= 1 or D == 0:
        return
    if R <= FEW_ROWS:
        launch(_spread_rows_few, D)(a, S)
        return
    hi = R
    while hi > SPREAD_LEVEL:
        lo = (hi - 1) // S + 1
        launch(_spread_level, (hi - lo) * D)(a, S, lo, hi)
        hi = lo
    if hi > 1:
        bx, by = threads_for(D, 32), threads_for(-(-(hi - (hi - 1) // S - 1) // 8), 32)   # 8 rows a thread or more per level
        configured(_spread_rows, math.ceil(D / bx), (bx, by))(a, S, hi)


@cuda.jit
def _spread_rows_few(a, S):
    for j in range(cuda.grid(1), a.shape[1], cuda.gridsize(1)):
        for r in range(a.shape[0] - 1, 0, -1):   # the last rows first: a row's source is written after it
            a[r, j] = a[r // S, j]


@cuda.jit
def _count_not_finite(a, res):
    n = 0.0
    for i in range(cuda.grid(1), a.shape[0], cuda.gridsize(1)):
        if not math.isfinite(a[i]):
            n += 1.0
    if n != 0.0:
        cuda.atomic.add(res, 0, n)


def count_not_finite(a, res):
    """res[0] = the number of entries of the 1D a that are not finite (a float64 count)."""
    require_cuda()
    res.copy_to_device(np.zeros(res.shape, res.dtype))
    if a.shape[0]:
        launch(_count_not_finite, a.shape[0])(a, res)


# ----- the CUDA launchers of the families' hand-written CPU products (kernels/families/layers.py
# names them in its `CUDA`; kernels/declare.cuda_twin calls each maker once)
def affine_fwd_launcher():
    def affine_fwd(x, W, b, out):
        matmul(x, False, W, False, out, b)
    affine_fwd.__doc__ = "out = x W + b (cuBLAS, or ppl's tiled kernels: cuda/products.py)."
    affine_fwd.__kernels__ = []
    return affine_fwd


def affine_acc_launcher():
    def affine_acc(x, W, out):
        matmul(x, False, W, False, out)
    affine_acc.__doc__ = "out += x W (cuBLAS, or ppl's tiled kernels: cuda/products.py)."
    affine_acc.__kernels__ = []
    return affine_acc


def affine_bwd_launcher():
    def affine_bwd(x, W, gout, gx, gW, gb):
        if gx.shape[0] != 0:
            matmul(gout, False, W, True, gx)
        if gW.shape[0] != 0:
            matmul(x, True, gout, False, gW)
        if gb.shape[0] != 0:
            column_sums(gout, gb)
    affine_bwd.__doc__ = "gx += gout W^T ; gW += x^T gout ; gb += sum_r gout[r] (each skippable)."
    affine_bwd.__kernels__ = []
    return affine_bwd


def broadcast_rows_bwd_launcher():
    def broadcast_rows_bwd(gout, gp):
        column_sums(gout, gp)
    broadcast_rows_bwd.__doc__ = "gp += sum_r gout[r, :] (column sums, cuda/products.py)."
    broadcast_rows_bwd.__kernels__ = []
    return broadcast_rows_bwd


# ----- the CUDA launchers of the row bookkeeping's hand-written kernels (kernels/families/rows.py)
def all_finite_launcher():
    from ..native.launch import scratch

    def all_finite(a):
        flat = a.reshape(a.size) if a.ndim != 1 else a
        res = scratch()
        count_not_finite(flat, res)
        return bool(res.copy_to_host()[0] == 0)
    def all_finite_into(a, sink, k):
        flat = a.reshape(a.size) if a.ndim != 1 else a
        if flat.shape[0]:
            launch(_count_not_finite, flat.shape[0])(flat, sink[k:k + 1])
    all_finite.__doc__ = "True when every entry of a (any shape, C-contiguous) is finite."
    all_finite.__kernels__ = []
    all_finite.into = all_finite_into   # sink[k] += the count of entries not finite, on the device
    return all_finite


def expand_rows_launcher():
    def expand_rows(a, reps):
        spread_rows(a, reps)
    expand_rows.__doc__ = "In place: a[r] = a[r // reps] for every row (spread_rows)."
    expand_rows.__kernels__ = []
    return expand_rows


_AVERAGE = []


def _average_kernels():
    """(moving_average_baseline's one-block kernel, moving_average_fold's block-per-step kernel),
    made once: both end in `folded`, the block's sums and thread 0's update of the state."""
    if not _AVERAGE:
        from ..math import scalar
        from ..native.launch import block_sum
        from .device import device
        weighted, average = device(scalar.weighted), device(scalar.moving_average)

        @cuda.jit(device=True)
        def folded(m, tot, wsum, state, slot, decay, update):
            tot = block_sum(tot)
            wsum = block_sum(wsum)  # every thread has read state[slot] before thread 0 writes it
            if update and cuda.threadIdx.x == 0:
                state[slot] = average(m, tot, wsum, decay, state[slot + 1] == 0)
                state[slot + 1] = 1

        @cuda.jit
        def one_block(L, rw, state, slot, decay, b, update):
            m = state[slot]
            tot = 0.0
            wsum = 0.0
            for r in range(cuda.threadIdx.x, L.shape[0], cuda.blockDim.x):
                b[r] = m
                tot += weighted(rw[r], L[r])
                wsum += rw[r]
            folded(m, tot, wsum, state, slot, decay, update)

        @cuda.jit
        def per_step(keep, rw, state, slots, decay, update):
            t = cuda.blockIdx.x
            R = rw.shape[0]
            slot = slots[t]
            m = state[slot]
            tot = 0.0
            wsum = 0.0
            for r in range(cuda.threadIdx.x, R, cuda.blockDim.x):
                tot += keep[t * R + r]   # rows.baseline_keep's weighted(rw[r], L[r]) of step t
                wsum += rw[r]
            folded(m, tot, wsum, state, slot, decay, update)
        _AVERAGE.extend((one_block, per_step))
    return _AVERAGE


def moving_average_baseline_launcher():
    from ..native.launch import single_block

    def moving_average_baseline(L, rw, state, state_slot, decay, b, update):
        single_block(_average_kernels()[0], L.shape[0])(L, rw, state, state_slot, decay, b, update)
    moving_average_baseline.__doc__ = ("b[r] = the running mean in state[state_slot]; then, if update, fold in this "
                                       "batch's rw-weighted mean of L (one block, deterministic).")
    moving_average_baseline.__kernels__ = []
    return moving_average_baseline


def moving_average_fold(keep, rw, state, slots, decay, update):
    """After a loop block run as one kernel (kernels/cuda/fused.py): for each step t, what
    moving_average_baseline adds to state[slots[t]] from that step's rows, keep[t R:(t + 1) R]
    holding their rw-weighted L (rows.baseline_keep). One block per step, each summing as
    moving_average_baseline's one block does (the same threads, the same order: the same bits)."""
    from ..native.launch import configured, require_cuda, threads_for
    require_cuda()
    if slots.shape[0]:
        configured(_average_kernels()[1], slots.shape[0], threads_for(max(rw.shape[0], 1)))(
            keep, rw, state, slots, decay, update)
