"""Measure-valued derivative kernels (kernels of estimators/mvd.py), per law.

Each drawn row is expanded into `size` configurations (stride: the node's row digit): c = 0 is
the draw itself, c = j + 1 the draw with unit j moved to the other branch of the derivative's
coupled pair. The rows c >= 1 weigh 0 in the objective; the graph below runs on all of them.

Bernoulli(logits a), p = sigmoid(a): d/da E f(b) = p (1 - p) (f(b_j = 1) - f(b_j = 0)); row j + 1
flips unit j, so the difference is the draw's cost against the flipped row's, signed by b_j.
Poisson(rate): d/drate E f(k) = E[f(k + 1) - f(k)]; row j + 1 adds one count to unit j.
"""
import math

from ..declare import rows
from ..scalar import like
from .poisson import _inverse_cdf


@rows("value")
def mvd_bernoulli_draw(r, logits, u, stride, size, value, row_weights):
    """value[r] = the draw (u < sigmoid(a)); configuration c >= 1 flips unit c - 1 and weighs 0."""
    one = like(value, 1.0)
    for j in range(value.shape[1]):
        p = one / (one + math.exp(-logits[r, j]))
        value[r, j] = one if u[r, j] < p else like(value, 0.0)
    c = (r // stride) % size
    if c > 0:
        value[r, c - 1] = one - value[r, c - 1]
        row_weights[r] = 0.0


@rows("value")
def mvd_bernoulli_grad(r, logits, value, cost, row_weights, stride, size, grad_logits):
    """grad_logits[r, j] += w_r p_j (1 - p_j) (f(b_j = 1) - f(b_j = 0)), on the draw's rows."""
    if (r // stride) % size == 0:
        one = like(value, 1.0)
        for j in range(value.shape[1]):
            p = one / (one + math.exp(-logits[r, j]))
            diff = cost[r] - cost[r + (j + 1) * stride]
            if value[r, j] == 0.0:
                diff = -diff
            grad_logits[r, j] += row_weights[r] * p * (one - p) * diff


@rows("value")
def mvd_poisson_draw(r, rate, u, stride, size, value, row_weights):
    """value[r] = the Poisson draw; configuration c >= 1 adds one to unit c - 1 and weighs 0."""
    for j in range(value.shape[1]):
        value[r, j] = _inverse_cdf(rate[r, j], u[r, j])
    c = (r // stride) % size
    if c > 0:
        value[r, c - 1] += like(value, 1.0)
        row_weights[r] = 0.0


@rows("value")
def mvd_poisson_grad(r, value, cost, row_weights, stride, size, grad_rate):
    """grad_rate[r, j] += w_r (f(k_j + 1) - f(k)), on the draw's rows."""
    if (r // stride) % size == 0:
        for j in range(value.shape[1]):
            grad_rate[r, j] += row_weights[r] * (cost[r + (j + 1) * stride] - cost[r])


R, D = 8, 3   # 2 drawn rows of D + 1 configurations each
PARITY = {
    "mvd_bernoulli_draw": lambda g: (g.x(R, D), g.u(R, D), 1, D + 1, g.out(R, D), g.pos(R)),
    "mvd_bernoulli_grad": lambda g: (g.x(R, D), g.bits(R, D), g.x(R), g.pos(R), 1, D + 1, g.x(R, D)),
    "mvd_poisson_draw": lambda g: (4 * g.pos(R, D), g.u(R, D), 1, D + 1, g.out(R, D), g.pos(R)),
    "mvd_poisson_grad": lambda g: (g.bits(R, D), g.x(R), g.pos(R), 1, D + 1, g.x(R, D)),
}
