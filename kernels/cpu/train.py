"""The nopython training loop behind ``ppl.fit`` on the CPU: a chunk of training steps (batch
gather, fused step, non-finite check, optimiser update, loss record) in one call, so Python runs
only between chunks (progress bar, evaluation, checkpoints).

The step arrives as a first-class function value (Numba's ``FunctionType`` for the step's
signature) and is called through its address. ``train_chunk`` is therefore compiled once per
step *signature* (the shapes of the argument tuples, not the graph) and cached on disk, and a
new program's step is not linked into a second function and optimised again by LLVM: the cost
of a new graph stays the cost of its step.

The updates are the optimiser kernels of ``families/optim.py`` with the hyper-parameters ``ppl.optim``
passes them, in the same order, so a chunk gives bit for bit the parameters and losses of the
same steps taken one Python call at a time (tests/training/test_fit_loop.py).

``train_chunk_rows`` is the same loop with each batch split in two halves of rows that run at
once on two of Numba's threads. Each half runs the generated ``step_rows`` with its own
gradient, estimator state and workspaces, and draws its noise by global row (row0), as the
shards of ``ppl.training.distributed.fit_data_parallel`` do. The halves' losses, gradients and state
changes are then combined, weighted by rows. It trains as ``train_chunk`` does, to the rounding
of that combination.
"""
import math

import numpy as np
from numba import njit, prange
from numba.core import types
from numba.extending import overload

from ..families.optim import adam_update, momentum_update, sgd_update
from .rows import all_finite2, flat_view
from ..math.optim import robbins_monro_rate, schedule_factor

OPT_SGD, OPT_MOMENTUM, OPT_ADAM = 0, 1, 2
# hyper: [lr, beta1, beta2, eps, t0 (inf: constant rate), kappa, mu,
#         schedule kind, warm-up updates, schedule a, schedule b, clip norm (inf: none)]
N_HYPER = 12


@njit(cache=True)
def rate(hyper, k):
    """The step size of update k + 1 (k = updates applied before): lr times the schedule's factor
    (schedule_factor), and for SGD / momentum with t0 < inf the Robbins-Monro factor."""
    lr = hyper[0] * schedule_factor(hyper[7], hyper[8], hyper[9], hyper[10], float(k))
    if math.isinf(hyper[4]):
        return lr
    return robbins_monro_rate(lr, hyper[4], hyper[5], float(k))


@njit(cache=True)
def clip_by_norm(grad, c):
    """grad scaled in place to Euclidean norm c when its norm is larger (Pascanu et al. 2013);
    the norm summed in float64. A NaN gradient stays NaN (its norm is NaN: no scaling)."""
    s = 0.0
    for i in range(grad.shape[0]):
        s += float(grad[i]) * float(grad[i])
    norm = math.sqrt(s)
    if norm > c:
        f = c / norm
        for i in range(grad.shape[0]):
            grad[i] = grad[i] * f


@njit(cache=True)
def take_rows(src, rows, off, out):
    """out[i] = src[rows[off + i]] for the out.shape[0] rows of a batch."""
    for i in range(out.shape[0]):
        r = rows[off + i]
        for j in range(out.shape[1]):
            out[i, j] = src[r, j]


def gather_batch(data, rows, off, inputs):
    """inputs[j][i] = data[j][rows[off + i]] for every input j (a no-op for a model without inputs)."""


@overload(gather_batch, jit_options={"cache": True})
def _gather_batch(data, rows, off, inputs):
    if not isinstance(inputs, types.BaseTuple) or len(inputs) == 0:
        return lambda data, rows, off, inputs: None

    def impl(data, rows, off, inputs):
        for j in range(len(inputs)):
            take_rows(data[j], rows, off, inputs[j])
    return impl


@njit(cache=True, no_cfunc_wrapper=False)   # a first-class value: fit's chunk loop takes it (kernels/_link.py)
def optimizer_update(opt, theta, grad, s1, s2, hyper, k):
    """Update k + 1 (k = updates applied before) of optimiser `opt` (OPT_*), as ppl.optim applies it."""
    if not math.isinf(hyper[11]):
        clip_by_norm(grad, hyper[11])
    if opt == OPT_ADAM:
        adam_update(theta, grad, s1, s2, rate(hyper, k), hyper[1], hyper[2], hyper[3], k + 1)
    elif opt == OPT_MOMENTUM:
        momentum_update(theta, grad, s1, rate(hyper, k), hyper[6])
    else:
        sgd_update(theta, grad, rate(hyper, k))


@njit(cache=True)
def combine_by_rows(w, parts, base, out):
    """The row-weighted combination of shards, written once for fit's split rows and for Dask's
    data-parallel training: out = base + sum_i w[i] (parts[i] - base) (a shard's share of the
    rows w[i], summing to 1; base: the value before the step, or an empty array for 0, as for
    losses and gradients). `out` may be one of the parts."""
    n = out.shape[0]
    for j in range(n):
        b = base[j] if base.shape[0] != 0 else 0.0
        acc = 0.0
        for i in range(len(parts)):
            acc += w[i] * (parts[i][j] - b)
        out[j] = b + acc


@njit(cache=True)
def _end_step(update, opt, theta, grad, s1, s2, hyper, k, loss, losses, s, done):
    """The end of step s of a chunk: losses[s] = loss; then, when the loss and the gradient are
    finite, update k + 1 of the optimiser and True, else done[1] = 1 (no update) and False."""
    losses[s] = loss
    if not math.isfinite(loss) or not all_finite2(flat_view(grad, 0, (1, grad.shape[0]))):
        done[1] = 1
        return False
    update(opt, theta, grad, s1, s2, hyper, k)
    return True


@njit(cache=True)
def train_chunk(step, update, theta, grad, state, ws2, ws1, inputs, B, seed, t0, n, data, rows,
                opt, hyper, s1, s2, opt_t, losses, done):
    """Training steps t0 .. t0 + n - 1. Step t0 + s trains on the rows rows[s B : (s + 1) B]
    of the data arrays (gathered into the `inputs` buffers), draws with (seed, t0 + s), then
    applies update opt_t + s + 1 of the optimiser `opt` by `update` (optimizer_update; state
    arrays s1, s2: Adam's moments or the momentum velocity). losses[s] = the step's loss.
    `step` and `update` are first-class functions (called through their addresses).
    done[0] = steps completed (also while the step raises: the failing step is done[0]);
    done[1] = 1 when step done[0] gave a non-finite loss or gradient (losses[done[0]] holds
    that loss; no update was applied for it), else 0."""
    done[1] = 0
    for s in range(n):
        done[0] = s
        gather_batch(data, rows, s * B, inputs)
        loss = step(theta, grad, state, ws2, ws1, inputs, B, seed, t0 + s, 1)
        if not _end_step(update, opt, theta, grad, s1, s2, hyper, opt_t + s, loss, losses, s, done):
            return
    done[0] = n


@njit(cache=True, parallel=True)
def two_halves(step, theta, g0, g1, s0, s1, w20, w10, w21, w11, in0, in1, B0, B1, seed, t, row1, out):
    """out[k] = the loss of half k: step_rows on rows 0 .. B0 - 1 (gradient g0, state s0,
    workspaces w20 / w10, inputs in0) and on rows B0 .. B0 + B1 - 1 (g1, s1, w21 / w11, in1;
    first drawn row row1), at once on two threads. A raise inside Numba's parallel loop is
    dropped, so a half that raised leaves out[k] as the caller set it (NaN)."""
    for k in prange(2):
        if k == 0:
            out[0] = step(theta, g0, s0, w20, w10, in0, B0, seed, t, 1, 0)
        else:
            out[1] = step(theta, g1, s1, w21, w11, in1, B1, seed, t, 1, row1)


@njit(cache=True)
def train_chunk_rows(step, update, theta, grad, state, ws2, ws1, inputs, grad1, state1, state0, ws21, ws11, inputs1,
                     B0, B1, samples, seed, t0, n, data, rows, opt, hyper, s1, s2, opt_t, losses, done):
    """train_chunk with each batch of B0 + B1 rows split in two halves run at once (two_halves):
    rows rows[s B : s B + B0] into `inputs` (with grad, state, ws2 / ws1) and the next B1 rows into
    `inputs1` (grad1, state1, ws21 / ws11); `step` is the program's step_rows. Then loss and
    gradient = the halves' weighted by rows (w = B0 / B, B1 / B), and state = state0 + the
    halves' changes weighted alike (state0: the state before the step). A half whose loss is not
    finite (it raised inside the parallel loop, or its loss is NaN / inf) makes the step run
    again, half after half on this thread, from the same state, so that a raise surfaces here.
    B1 = 0: the whole batch of B0 rows in one step on this thread (fit's one-thread setting of a
    split fit: the same compiled loop, the same draws by global row). done as in train_chunk."""
    done[1] = 0
    B = B0 + B1
    w0 = B0 / B
    w1 = B1 / B
    row1 = B0 * samples
    out = np.empty(2, np.float64)
    w = (w0, w1)
    nothing = np.empty(0, state.dtype)
    for s in range(n):
        done[0] = s
        t = t0 + s
        gather_batch(data, rows, s * B, inputs)
        if B1 == 0:
            loss = step(theta, grad, state, ws2, ws1, inputs, B0, seed, t, 1, 0)
        else:
            gather_batch(data, rows, s * B + B0, inputs1)
            for j in range(state.shape[0]):
                state0[j] = state[j]
                state1[j] = state[j]
            out[0] = math.nan
            out[1] = math.nan
            two_halves(step, theta, grad, grad1, state, state1, ws2, ws1, ws21, ws11, inputs, inputs1, B0, B1, seed,
                       t, row1, out)
            if not (math.isfinite(out[0]) and math.isfinite(out[1])):
                for j in range(state.shape[0]):
                    state[j] = state0[j]
                    state1[j] = state0[j]
                out[0] = step(theta, grad, state, ws2, ws1, inputs, B0, seed, t, 1, 0)
                out[1] = step(theta, grad1, state1, ws21, ws11, inputs1, B1, seed, t, 1, row1)
            loss = w0 * out[0] + w1 * out[1]
            combine_by_rows(w, (grad, grad1), nothing, grad)
            combine_by_rows(w, (state, state1), state0, state)
        if not _end_step(update, opt, theta, grad, s1, s2, hyper, opt_t + s, loss, losses, s, done):
            return
    done[0] = n
