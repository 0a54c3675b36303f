"""Stochastic derivatives with pruning (Arya, Schauer, Schaefer & Rackauckas 2022, "Automatic
differentiation of programs with discrete randomness", NeurIPS): the kernels of
estimators/stochastic_derivative.py.

A discrete draw x(theta) by inverse CDF from one uniform jumps, as theta grows, to an alternative
value y with a probability proportional to d theta: its derivative is E[w (f(y) - f(x))], w the
jump's weight per unit of theta. Per unit of a node, in its law's parameter:
  Bernoulli (logits a), p = sigmoid(a):  x = 0 -> y = 1, w = p               (x = 1: no jump)
  Categorical (logits a, a group):       x = c -> y = k for each class k != c, w_k = p_k
  Poisson (rate):                        x -> x + 1, w = 1
Pruning keeps ONE alternative per drawn row among every jump of every node drawn so far: a
weighted reservoir (the jump of weight |w| replaces the kept one with probability |w| / W, W the
running sum of the weights), so the kept jump is j with probability |w_j| / W_total, and
W_total sign(w_j) (f(y_j) - f(x)) estimates the derivative along j's parameter without bias.

Rows: the drawn row (local index 0 of the digit (stride, span)) holds the draw x; the
alternative row (local index `off`) holds the path that took the kept jump: when a node's jump
is kept, the alternative row takes the drawn row's values with that jump applied (the
lowering copies the drawn row's values read later onto it, `alt_reset`), else it draws the node
plainly from its own inputs with the drawn row's uniform (common random numbers). Every other row
of the digit draws plainly. Per drawn row, 1D buffers: W the weights' running sum, `sid` the
count of kept jumps (the kept one's tag), D the alternative's cost minus the draw's, summed as the
costs are computed (`alt_cost_diff`) and restarted at each kept jump; `tag[r, j]` holds the count
at which unit j's jump was kept (the estimate: its unit's tag equals the final count). The
alternative row weighs 0 in the objective.
"""
import math

from ..declare import rows
from ..math.groups import categorical_sample_group, logsumexp_group
from ..math.scalar import like, sigmoid
from ..math.slots import slot_local
from .poisson import _inverse_cdf


@rows("value")
def sd_bernoulli_draw(r, logits, u, v, stride, off, span, W, sid, D, switched, tag, value, rw):
    """The draw on the drawn row with its jumps in the reservoir, and the alternative row; every
    other row a plain draw (see the module docstring)."""
    one, zero = like(value, 1.0), like(value, 0.0)
    jl = slot_local(r, stride, span)
    if jl == off:   # written by its drawn row
        return
    for j in range(value.shape[1]):
        value[r, j] = one if u[r, j] < sigmoid(logits[r, j]) else zero
    if jl != 0:
        return
    ra = r + off * stride
    kept = -1
    for j in range(value.shape[1]):
        tag[r, j] = 0.0
        if value[r, j] == zero:
            m = float(sigmoid(logits[r, j]))
            W[r] += m
            if v[r, j] * W[r] < m:
                sid[r] += 1.0
                tag[r, j] = sid[r]
                kept = j
    switched[r] = 1.0 if kept >= 0 else 0.0
    rw[ra] = 0.0
    if kept >= 0:
        D[r] = 0.0
        for j in range(value.shape[1]):
            value[ra, j] = value[r, j]
        value[ra, kept] = one
    else:
        for j in range(value.shape[1]):
            value[ra, j] = one if u[ra, j] < sigmoid(logits[ra, j]) else zero


@rows("value")
def sd_categorical_draw(r, logits, gumbel, v, K, stride, off, span, W, sid, D, switched, tag, value, rw):
    """As sd_bernoulli_draw for groups of K classes (Gumbel-max draws): a group drawn c jumps to
    each other class k with weight p_k."""
    jl = slot_local(r, stride, span)
    if jl == off:
        return
    for c0 in range(0, value.shape[1], K):
        categorical_sample_group(logits, gumbel, r, c0, K, value)
    if jl != 0:
        return
    ra = r + off * stride
    kept = -1
    for c0 in range(0, value.shape[1], K):
        m0, lse = logsumexp_group(logits, r, c0, K)
        for k in range(K):
            tag[r, c0 + k] = 0.0
            if value[r, c0 + k] < 0.5:
                m = math.exp(logits[r, c0 + k] - m0 - lse)
                W[r] += m
                if v[r, c0 + k] * W[r] < m:
                    sid[r] += 1.0
                    tag[r, c0 + k] = sid[r]
                    kept = c0 + k
    switched[r] = 1.0 if kept >= 0 else 0.0
    rw[ra] = 0.0
    if kept >= 0:
        D[r] = 0.0
        for j in range(value.shape[1]):
            value[ra, j] = value[r, j]
        g0 = (kept // K) * K
        for k in range(K):
            value[ra, g0 + k] = like(value, 0.0)
        value[ra, kept] = like(value, 1.0)
    else:
        for c0 in range(0, value.shape[1], K):
            categorical_sample_group(logits, gumbel, ra, c0, K, value)


@rows("value")
def sd_poisson_draw(r, rate, u, v, stride, off, span, W, sid, D, switched, tag, value, rw):
    """As sd_bernoulli_draw for Poisson counts: every unit jumps to one more, weight 1."""
    jl = slot_local(r, stride, span)
    if jl == off:
        return
    for j in range(value.shape[1]):
        value[r, j] = _inverse_cdf(rate[r, j], u[r, j])
    if jl != 0:
        return
    ra = r + off * stride
    kept = -1
    for j in range(value.shape[1]):
        tag[r, j] = 0.0
        W[r] += 1.0
        if v[r, j] * W[r] < 1.0:
            sid[r] += 1.0
            tag[r, j] = sid[r]
            kept = j
    switched[r] = 1.0 if kept >= 0 else 0.0
    rw[ra] = 0.0
    if kept >= 0:
        D[r] = 0.0
        for j in range(value.shape[1]):
            value[ra, j] = value[r, j]
        value[ra, kept] += like(value, 1.0)
    else:
        for j in range(value.shape[1]):
            value[ra, j] = _inverse_cdf(rate[ra, j], u[ra, j])


@rows("tag")
def sd_grad(r, tag, stride, span, W, sid, D, rw, grad):
    """grad[r, j] += rw W D on the drawn row of the unit whose jump was kept last (its tag is the
    final count): W_total sign(w) (f(y) - f(x)), every jump's weight positive in its parameter."""
    if slot_local(r, stride, span) == 0 and sid[r] > 0.0:
        s = like(grad, rw[r] * W[r] * D[r])
        for j in range(tag.shape[1]):
            if tag[r, j] == sid[r]:
                grad[r, j] += s


@rows("c")
def alt_cost_diff(r, c, stride, off, span, D):
    """D[r] += c[alternative row] - c[r] on the drawn rows: a cost's share of f(y) - f(x)."""
    if slot_local(r, stride, span) == 0:
        D[r] += c[r + off * stride] - c[r]


@rows("switched")
def alt_reset(r, x, switched, stride, off, span):
    """The alternative row takes the drawn row's values of x where the node just drawn kept a
    jump (a value computed before it and read after it)."""
    if slot_local(r, stride, span) == 0 and switched[r] > 0.0:
        for j in range(x.shape[1]):
            x[r + off * stride, j] = x[r, j]


@rows("switched")
def alt_reset_steps(r, x, steps, switched, stride, off, span):
    """alt_reset for the first `steps` steps of a loop's per-step storage x (the steps' rows one
    after the other, R = switched.shape[0] each): a loop's outputs, read after the loop."""
    if slot_local(r, stride, span) == 0 and switched[r] > 0.0:
        R = switched.shape[0]
        for s in range(steps):
            for j in range(x.shape[1]):
                x[s * R + r + off * stride, j] = x[s * R + r, j]


def _state(g, n, d):
    """The digit (stride 1, alternative at local index 2 of 3) and the buffers a draw writes."""
    return (1, 2, 3, g.x(n) * 0, g.x(n) * 0, g.x(n) * 0, g.out(n), g.out(n, d), g.out(n, d), g.pos(n))


R, D = 9, 3
PARITY = {
    "sd_bernoulli_draw": lambda g: (g.x(R, D), g.u(R, D), g.u(R, D), *_state(g, R, D)),
    "sd_categorical_draw": lambda g: (g.x(R, 6), g.x(R, 6), g.u(R, 6), 3, *_state(g, R, 6)),
    "sd_poisson_draw": lambda g: (3 * g.pos(R, D), g.u(R, D), g.u(R, D), *_state(g, R, D)),
    "sd_grad": lambda g: (g.bits(R, D), 1, 3, g.pos(R), g.bits(R), g.x(R), g.pos(R), g.x(R, D)),
    "alt_cost_diff": lambda g: (g.x(R), 1, 2, 3, g.x(R)),
    "alt_reset": lambda g: (g.x(R, D), g.bits(R), 1, 2, 3),
    "alt_reset_steps": lambda g: (g.x(3 * R, D), 2, g.bits(R), 1, 2, 3),
}
