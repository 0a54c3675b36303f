"""The device clock of a captured training step (ppl/runtime/cuda_graph.py) and the kernels that
read it: a step replayed from a CUDA graph launches on the same arrays every time, so what
changes from step to step lives on the device.

The clock is an int64 device array of three words: STEP (the step the noise fills read,
cuda/noise.py), SLOT (the step's place in its chunk: which row of the chunk's batch indices and
learning rates it takes, which row of the record it writes) and UPDATES (the optimiser's updates
so far). A step ends in one kernel (`adam_end`, `momentum_end`, `sgd_end`): every entry counts
the gradient's non-finite entries into the sink's last word and takes the optimiser's update
(the per-entry steps of kernels/math/optim.py that the declared kernels of kernels/families/
optim.py run, the learning rate read from the chunk's rates at SLOT and Adam's step count from
UPDATES: one arithmetic, so a replayed chunk gives the bits of the same steps run one by one);
then the grid's last block to finish moves the step's sink words (the loss's terms, the checks'
failing counts; lowering/printer.py) into the record's row SLOT, zeroes them and moves the clock
on. `gather_rows_at` starts a step: the batch of the clock's SLOT.
"""
import math

from numba import cuda, int32

from ..math.optim import adam_entry, momentum_entry, sgd_entry
from ..math.scalar import hyper, like
from ..native.launch import configured, grid_for, run
from ..registry import items
from .device import device

STEP, SLOT, UPDATES = 0, 1, 2


def _gather_body(i, src, index, clock, dst):
    D = dst.shape[1]
    r = i // D
    j = i - r * D
    dst[r, j] = src[index[clock[1], r], j]


_gather = items(_gather_body, "dst.shape[0] * dst.shape[1]")
_sgd, _momentum, _adam = device(sgd_entry), device(momentum_entry), device(adam_entry)


def gather_rows_at(src, index, clock, dst):
    """dst[r] = src[index[clock[SLOT], r]]: the batch of the clock's slot of a chunk."""
    run(_gather, dst.shape[0] * dst.shape[1], src, index, clock, dst)


@cuda.jit(device=True, inline="always")
def _last_block_advances(bad, sink, record, clock, done):
    """The end of a step's last kernel: the gradient's non-finite count `bad` (this thread's) added
    to the sink's last word; then the grid's last block to finish (a ticket on `done`, after a
    fence: every other block's updates and counts are written) moves the sink's words into the
    record's row SLOT, zeroes them, moves the clock on and resets the ticket. Every block reads the
    clock before it takes its ticket, so none reads a moved clock."""
    if bad != 0.0:
        cuda.atomic.add(sink, sink.shape[0] - 1, bad)
    last = cuda.shared.array(1, int32)
    cuda.threadfence()
    cuda.syncthreads()
    if cuda.threadIdx.x == 0:
        last[0] = cuda.atomic.add(done, 0, 1) == cuda.gridDim.x - 1
    cuda.syncthreads()
    if last[0]:
        k = clock[1]
        for j in range(cuda.threadIdx.x, sink.shape[0], cuda.blockDim.x):
            record[k, j] = cuda.atomic.add(sink, j, 0.0)   # read where the other blocks' adds went
            sink[j] = 0.0
        cuda.syncthreads()   # every thread has read clock[SLOT] before thread 0 moves it
        if cuda.threadIdx.x == 0:
            clock[0] += 1
            clock[1] += 1
            clock[2] += 1
            done[0] = 0


@cuda.jit(device=True, inline="always")
def _not_finite(x):
    return 0.0 if math.isfinite(x) else 1.0


@cuda.jit
def _sgd_end(theta, grad, rates, clock, sink, record, done):
    lr = like(theta, rates[clock[1]])
    bad = 0.0
    for i in range(cuda.grid(1), theta.shape[0], cuda.gridsize(1)):
        bad += _not_finite(grad[i])
        _sgd(i, theta, grad, lr)
    _last_block_advances(bad, sink, record, clock, done)


@cuda.jit
def _momentum_end(theta, grad, vel, rates, mu, clock, sink, record, done):
    lr = like(theta, rates[clock[1]])
    m = like(theta, hyper(mu))
    bad = 0.0
    for i in range(cuda.grid(1), theta.shape[0], cuda.gridsize(1)):
        bad += _not_finite(grad[i])
        _momentum(i, theta, grad, vel, lr, m)
    _last_block_advances(bad, sink, record, clock, done)


@cuda.jit
def _adam_end(theta, grad, m, v, rates, beta1, beta2, eps, clock, sink, record, done):
    lr = like(theta, rates[clock[1]])
    t = clock[2] + 1
    bad = 0.0
    for i in range(cuda.grid(1), theta.shape[0], cuda.gridsize(1)):
        bad += _not_finite(grad[i])
        _adam(i, theta, grad, m, v, lr, beta1, beta2, eps, t)
    _last_block_advances(bad, sink, record, clock, done)


def _end(kernel, n, *args):
    configured(kernel, *grid_for(max(n, 1)))(*args)


def sgd_end(theta, grad, rates, clock, sink, record, done):
    """The step's last kernel with SGD (lr = rates[clock[SLOT]]): see the module's docstring."""
    _end(_sgd_end, theta.shape[0], theta, grad, rates, clock, sink, record, done)


def momentum_end(theta, grad, vel, rates, mu, clock, sink, record, done):
    """The step's last kernel with heavy-ball momentum (lr = rates[clock[SLOT]])."""
    _end(_momentum_end, theta.shape[0], theta, grad, vel, rates, mu, clock, sink, record, done)


def adam_end(theta, grad, m, v, rates, beta1, beta2, eps, clock, sink, record, done):
    """The step's last kernel with Adam (lr = rates[clock[SLOT]], step count clock[UPDATES] + 1)."""
    _end(_adam_end, theta.shape[0], theta, grad, m, v, rates, beta1, beta2, eps, clock, sink, record, done)
