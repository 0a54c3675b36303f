"""Antithetic Bernoulli kernels for ARM and DisARM.

A drawn row becomes a pair of rows sharing one uniform u per unit: the drawn row (local index
0 of the node's row digit (stride, span)) holds b = 1[u < sigmoid(a)], the row at local index
`off` holds b~ = 1[u > sigmoid(-a)]. A digit of its own is (stride, 1, 2); in a digit shared with
other nodes' extra rows (Lowering.plan_rows) every other row draws the node plainly (b).
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
and the unit loop vectorises (DisARM's coefficient is a select, not a branch), the layout
(stride, off, span) int64 values, not constants (kernels/_link.py: the alias check of the two
rows stays in the unit loop's preheader).
"""
from numba import njit

from ..math.slots import _group_offset, _group_size, _is_group_head, _marginal_signal
from ..declare import rows
from ..math.scalar import antithetic_bit, arm_coef, disarm_coef, disarm_pair_coef, like
from ..math.slots import slot_local


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
def antithetic_bernoulli(r, logits, u, stride, off, span, out):
    """The row at local index off: 1[u > sigma(-a)]; every other row: 1[u < sigma(a)]."""
    tilde = 1 if slot_local(r, stride, span) == off else 0
    for j in range(out.shape[1]):
        out[r, j] = antithetic_bit(logits[r, j], u[r, j], tilde)


@rows("ga")
def arm_grad(r, u, L, rw, stride, off, span, ga):
    """ARM (Yin & Zhou 2019): both rows of a pair get rw * (f(b~) - f(b)) (u - 1/2)."""
    if slot_local(r, stride, span) == 0:
        r1 = r + off * stride
        diff = L[r1] - L[r]
        for j in range(ga.shape[1]):
            c = arm_coef(diff, u[r, j])
            ga[r, j] += rw[r] * c
            ga[r1, j] += rw[r1] * c


@rows("ga")
def disarm_grad(r, logits, b, L, rw, stride, off, span, ga):
    """DisARM (Dong, Mnih & Tucker 2020) pair gradient; units where the pair agrees get exactly 0
    (a select, not a branch: the unit loop vectorises), in the precision of the arrays."""
    if slot_local(r, stride, span) == 0:
        r1 = r + off * stride
        half_diff = like(ga, 0.5) * (L[r1] - L[r])
        w0, w1 = rw[r], rw[r1]
        for j in range(ga.shape[1]):
            c = disarm_pair_coef(half_diff, logits[r, j], b[r, j], b[r1, j])
            ga[r, j] += w0 * c
            ga[r1, j] += w1 * c


@rows("ga")
def arm_grad_marginal(r, u, L, rw, stride, off, span, strides, sizes, ga):
    """arm_grad with each member's signal marginalised over the enumerated digits below."""
    if slot_local(r, stride, span) == 0 and _is_group_head(r, strides, sizes):
        for j in range(ga.shape[1]):
            _arm_pair_marginal(u, L, rw, r, r + off * stride, strides, sizes, j, ga)


@rows("ga")
def disarm_grad_marginal(r, logits, b, L, rw, stride, off, span, strides, sizes, ga):
    """disarm_grad with each member's signal marginalised over the enumerated digits below."""
    if slot_local(r, stride, span) == 0 and _is_group_head(r, strides, sizes):
        for j in range(ga.shape[1]):
            _disarm_pair_marginal(logits, b, L, rw, r, r + off * stride, strides, sizes, j, ga)


@rows("rw")
def scale_rows(r, rw, factor):
    """rw[r] *= factor."""
    rw[r] *= factor


def _pairs(g, rows):
    """An antithetic pair's logits and draw (the CPU kernel's), stride 1."""
    logits, u = g.x(rows, D), g.u(rows, D)
    b = g.out(rows, D)
    antithetic_bernoulli(logits, u, 1, 1, 2, b)
    return logits, b


R, D = 4, 6
PARITY = {
    "antithetic_bernoulli": lambda g: (g.x(6, D), g.u(6, D), 1, 2, 3, g.out(6, D)),
    "arm_grad": lambda g: (g.u(R, D), g.x(R), g.pos(R), 2, 1, 2, g.x(R, D)),
    "disarm_grad": lambda g: (*_pairs(g, R), g.x(R), g.pos(R), 1, 1, 2, g.x(R, D)),
    # pair digit at stride 1, an enumerated child's digit (size 2) at stride 2: 8 rows = 2 drawn rows
    "arm_grad_marginal": lambda g: (g.u(8, D), g.x(8), g.pos(8), 1, 1, 2, (2,), (2,), g.x(8, D)),
    "disarm_grad_marginal": lambda g: (*_pairs(g, 8), g.x(8), g.pos(8), 1, 1, 2, (2,), (2,), g.x(8, D)),
    "scale_rows": lambda g: (g.pos(R), 0.5),
}
