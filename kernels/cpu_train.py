"""The nopython training loop behind ``ppl.fit`` on the CPU: a chunk of training steps (batch
gather, fused step, non-finite check, optimiser update, loss record) in one call, so Python runs
only between chunks (progress bar, evaluation, checkpoints).

The step arrives as a first-class function value (Numba's ``FunctionType`` for the step's
signature) and is called through its address. ``train_chunk`` is therefore compiled once per
step *signature* (the shapes of the argument tuples, not the graph) and cached on disk, and a
new program's step is not linked into a second function and optimised again by LLVM: the cost
of a new graph stays the cost of its step.

The updates are the optimiser kernels of ``cpu_optim.py`` with the hyper-parameters ``ppl.optim``
passes them, in the same order, so a chunk gives bit for bit the parameters and losses of the
same steps taken one Python call at a time (tests/test_fit_loop.py).
"""
import math

from numba import njit
from numba.core import types
from numba.extending import overload

from .cpu_optim import adam_update, momentum_update, sgd_update
from .cpu_rows import all_finite2
from .scalar import robbins_monro_rate

OPT_SGD, OPT_MOMENTUM, OPT_ADAM = 0, 1, 2
# hyper: [lr, beta1, beta2, eps, t0 (inf: constant rate), kappa, mu]


@njit(cache=True)
def rate(hyper, k):
    """The SGD / momentum step size of update k + 1 (k = updates applied before): lr when t0 is
    inf (a constant rate, as ppl.optim with t0=None), else the Robbins-Monro schedule."""
    if math.isinf(hyper[4]):
        return hyper[0]
    return robbins_monro_rate(hyper[0], hyper[4], hyper[5], float(k))


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


@njit(cache=True)
def optimizer_update(opt, theta, grad, s1, s2, hyper, k):
    """Update k + 1 (k = updates applied before) of optimiser `opt` (OPT_*), as ppl.optim applies it."""
    if opt == OPT_ADAM:
        adam_update(theta, grad, s1, s2, hyper[0], hyper[1], hyper[2], hyper[3], k + 1)
    elif opt == OPT_MOMENTUM:
        momentum_update(theta, grad, s1, rate(hyper, k), hyper[6])
    else:
        sgd_update(theta, grad, rate(hyper, k))


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
        losses[s] = loss
        if not math.isfinite(loss) or not all_finite2(grad.reshape((1, grad.shape[0]))):
            done[1] = 1
            return
        update(opt, theta, grad, s1, s2, hyper, opt_t + s)
    done[0] = n
