"""The device clock of a captured training step (ppl/runtime/cuda_graph.py) and the kernels that
read it: a step replayed from a CUDA graph launches on the same arrays every time, so what
changes from step to step lives on the device.

The clock is an int64 device array of three words: STEP (the step the noise fills read,
cuda/noise.py), SLOT (the step's place in its chunk: which row of the chunk's batch indices and
learning rates it takes, which row of the record it writes) and UPDATES (the optimiser's updates
so far). `advance` ends a step: it moves the step's sink words (the loss's terms, the checks'
failing counts; lowering/printer.py) into the record's row SLOT, zeroes them and moves the clock
on. The optimiser updates are the per-entry steps of kernels/math/optim.py that the declared
kernels (kernels/families/optim.py) run, with the learning rate read from the chunk's rates at
SLOT and Adam's step count from UPDATES: one arithmetic, so a replayed chunk gives the bits of
the same steps run one by one.
"""
from numba import cuda

from ..math.optim import adam_entry, momentum_entry, sgd_entry
from ..math.scalar import hyper, like
from ..native.launch import run, single_block
from ..registry import items

STEP, SLOT, UPDATES = 0, 1, 2


def _gather_body(i, src, index, clock, dst):
    D = dst.shape[1]
    r = i // D
    j = i - r * D
    dst[r, j] = src[index[clock[1], r], j]


_gather = items(_gather_body, "dst.shape[0] * dst.shape[1]")


def gather_rows_at(src, index, clock, dst):
    """dst[r] = src[index[clock[SLOT], r]]: the batch of the clock's slot of a chunk."""
    run(_gather, dst.shape[0] * dst.shape[1], src, index, clock, dst)


def _sgd_at_body(i, theta, grad, rates, clock):
    sgd_entry(i, theta, grad, like(theta, rates[clock[1]]))


def _momentum_at_body(i, theta, grad, vel, rates, mu, clock):
    momentum_entry(i, theta, grad, vel, like(theta, rates[clock[1]]), like(theta, hyper(mu)))


def _adam_at_body(i, theta, grad, m, v, rates, beta1, beta2, eps, clock):
    adam_entry(i, theta, grad, m, v, like(theta, rates[clock[1]]), beta1, beta2, eps, clock[2] + 1)


_sgd_at = items(_sgd_at_body, "theta.shape[0]")
_momentum_at = items(_momentum_at_body, "theta.shape[0]")
_adam_at = items(_adam_at_body, "theta.shape[0]")


def sgd_update_at(theta, grad, rates, clock):
    """sgd_update with lr = rates[clock[SLOT]]."""
    run(_sgd_at, theta.shape[0], theta, grad, rates, clock)


def momentum_update_at(theta, grad, vel, rates, mu, clock):
    """momentum_update with lr = rates[clock[SLOT]]."""
    run(_momentum_at, theta.shape[0], theta, grad, vel, rates, mu, clock)


def adam_update_at(theta, grad, m, v, rates, beta1, beta2, eps, clock):
    """adam_update with lr = rates[clock[SLOT]] and the step count clock[UPDATES] + 1."""
    run(_adam_at, theta.shape[0], theta, grad, m, v, rates, beta1, beta2, eps, clock)


@cuda.jit
def _advance(sink, record, clock):
    k = clock[1]
    for j in range(cuda.threadIdx.x, sink.shape[0], cuda.blockDim.x):
        record[k, j] = sink[j]
        sink[j] = 0.0
    cuda.syncthreads()   # every thread has read clock[SLOT] before thread 0 moves it
    if cuda.threadIdx.x == 0:
        clock[0] += 1
        clock[1] += 1
        clock[2] += 1


def advance(sink, record, clock):
    """record[clock[SLOT]] = sink; sink = 0; every word of the clock + 1 (one block)."""
    single_block(_advance, sink.shape[0])(sink, record, clock)
