"""Antithetic Bernoulli kernels for ARM and DisARM.

A drawn row becomes a pair of rows (digit 0 and 1 of the row index at `stride`) sharing one
uniform u per unit: digit 0 holds b = 1[u < sigmoid(a)], digit 1 holds b~ = 1[u > sigmoid(-a)].
  ARM    (Yin & Zhou 2019):        g_a = (f(b~) - f(b)) (u - 1/2)
  DisARM (Dong, Mnih & Tucker 2020): g_a = 1/2 (f(b~) - f(b)) (-1)^b 1[b != b~] sigmoid(|a|)
f is the per-row sum of the node's downstream costs. Each row of the pair receives its row
weight times g_a, so the pair's total is the drawn row's weight times the estimate.

With enumerated nodes below the antithetic one (digits `strides`, `sizes`), each member's rows
carry p(c | that member's value): f of a member is then its signal marginalised over those
digits, sum_c rw L / sum_c rw (`*_grad_marginal`); pairing the rows configuration by
configuration would weight the difference by the members' mixed probabilities (biased).

Declared once (kernels/declare.py): the draw is a cell body; the gradients are row bodies of
the pair's digit-0 row, which writes both rows of its pair (and, marginalised, every row of
both members), so no two iterations touch the same element; the pair test runs once per row
and the unit loop vectorises (DisARM's coefficient is a select, not a branch).
"""
from numba import njit

from ..cpu.rows import _group_offset, _group_size, _is_group_head, _marginal_signal
from ..declare import rows
from ..math.scalar import antithetic_bit, arm_coef, disarm_coef, disarm_pair_coef, like


@njit(cache=True, error_model="numpy")
def _arm_pair_marginal(u, L, rw, r, r1, strides, sizes, j, ga):
    """ARM on column j of the pair (r, r1) (first rows of their groups), both groups' rows."""
    c = arm_coef(_marginal_signal(L, rw, r1, strides, sizes) - _marginal_signal(L, rw, r, strides, sizes), u[r, j])
    for m in range(_group_size(sizes)):
        off = _group_offset(m, strides, sizes)
        ga[r + off, j] += rw[r + off] * c
        ga[r1 + off, j] += rw[r1 + off] * c


@njit(cache=True, error_model="numpy")
def _disarm_pair_marginal(logits, b, L, rw, r, r1, strides, sizes, j, ga):
    """DisARM on column j of the pair (r, r1) (first rows of their groups), both groups' rows."""
    if b[r, j] == b[r1, j]:
        return
    half = 0.5 * (_marginal_signal(L, rw, r1, strides, sizes) - _marginal_signal(L, rw, r, strides, sizes))
    c = disarm_coef(half, logits[r, j], b[r, j])
    for m in range(_group_size(sizes)):
        off = _group_offset(m, strides, sizes)
        ga[r + off, j] += rw[r + off] * c
        ga[r1 + off, j] += rw[r1 + off] * c


@rows("out")
def antithetic_bernoulli(r, logits, u, stride, out):
    """Digit 0 rows: 1[u < sigma(a)]; digit 1 rows: 1[u > sigma(-a)]."""
    tilde = (r // stride) % 2
    for j in range(out.shape[1]):
        out[r, j] = antithetic_bit(logits[r, j], u[r, j], tilde)


@rows("ga")
def arm_grad(r, u, L, rw, stride, ga):
    """ARM (Yin & Zhou 2019): both rows of a pair get rw * (f(b~) - f(b)) (u - 1/2)."""
    if (r // stride) % 2 == 0:
        r1 = r + stride
        diff = L[r1] - L[r]
        for j in range(ga.shape[1]):
            c = arm_coef(diff, u[r, j])
            ga[r, j] += rw[r] * c
            ga[r1, j] += rw[r1] * c


@rows("ga")
def disarm_grad(r, logits, b, L, rw, stride, ga):
    """DisARM (Dong, Mnih & Tucker 2020) pair gradient; units where the pair agrees get exactly 0
    (a select, not a branch: the unit loop vectorises), in the precision of the arrays."""
    if (r // stride) % 2 == 0:
        r1 = r + stride
        half_diff = like(ga, 0.5) * (L[r1] - L[r])
        w0, w1 = rw[r], rw[r1]
        for j in range(ga.shape[1]):
            c = disarm_pair_coef(half_diff, logits[r, j], b[r, j], b[r1, j])
            ga[r, j] += w0 * c
            ga[r1, j] += w1 * c


@rows("ga")
def arm_grad_marginal(r, u, L, rw, stride, strides, sizes, ga):
    """arm_grad with each member's signal marginalised over the enumerated digits below."""
    if (r // stride) % 2 == 0 and _is_group_head(r, strides, sizes):
        for j in range(ga.shape[1]):
            _arm_pair_marginal(u, L, rw, r, r + stride, strides, sizes, j, ga)


@rows("ga")
def disarm_grad_marginal(r, logits, b, L, rw, stride, strides, sizes, ga):
    """disarm_grad with each member's signal marginalised over the enumerated digits below."""
    if (r // stride) % 2 == 0 and _is_group_head(r, strides, sizes):
        for j in range(ga.shape[1]):
            _disarm_pair_marginal(logits, b, L, rw, r, r + stride, strides, sizes, j, ga)


@rows("rw")
def scale_rows(r, rw, factor):
    """rw[r] *= factor."""
    rw[r] *= factor


def _pairs(g, rows):
    """An antithetic pair's logits and draw (the CPU kernel's), stride 1."""
    logits, u = g.x(rows, D), g.u(rows, D)
    b = g.out(rows, D)
    antithetic_bernoulli(logits, u, 1, b)
    return logits, b


R, D = 4, 6
PARITY = {
    "antithetic_bernoulli": lambda g: (g.x(R, D), g.u(R, D), 1, g.out(R, D)),
    "arm_grad": lambda g: (g.u(R, D), g.x(R), g.pos(R), 2, g.x(R, D)),
    "disarm_grad": lambda g: (*_pairs(g, R), g.x(R), g.pos(R), 1, g.x(R, D)),
    # pair digit at stride 1, an enumerated child's digit (size 2) at stride 2: 8 rows = 2 drawn rows
    "arm_grad_marginal": lambda g: (g.u(8, D), g.x(8), g.pos(8), 1, (2,), (2,), g.x(8, D)),
    "disarm_grad_marginal": lambda g: (*_pairs(g, 8), g.x(8), g.pos(8), 1, (2,), (2,), g.x(8, D)),
    "scale_rows": lambda g: (g.pos(R), 0.5),
}
