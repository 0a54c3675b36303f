"""Categorical DisARM (Dong, Mnih & Tucker 2021, "Coupled gradient estimators for discrete latent
variables", NeurIPS): an antithetic pair of categorical draws and its importance-weighted
estimate.

Coupling (the paper's stick-breaking construction): a group of K classes is visited in ascending
order of its logits (ties by index), c_0 .. c_{K-1}; at position i the stick probability is
p_i = pi(c_i) / sum_{j >= i} pi(c_j) (<= 1 / (K - i), so <= 1/2 wherever the pair can part).
One uniform u_i per position is shared by the pair: the draw x is the first c_i with
u_i < p_i, its partner y the first with u_i > 1 - p_i (each marginally Categorical(pi)); the
last class when no position fires. The drawn row (local index 0 of the node's row digit (stride,
span)) holds x, the row at local index `off` y, every other row x (a digit of its own: (stride, 1, 2)).

Estimate (the paper's importance-weighted DisARM): with w = pi(x) pi(y) / q(x, y),
    d/da E f = E_q[ 1/2 w (f(x) - f(y)) (e_x - e_y) ]        (0 where x == y)
since d log pi(x) / da = e_x - pi. Where the pair parts at position l (both passed the
positions before it: both bits 0 there, probability 1 - 2 p_i),
    w = prod_{i < l} (1 - p_i)^2 / (1 - 2 p_i) * (1 - p_l)
Sorting makes p_i < 1/2 before l, so every pair x != y has q > 0 (unbiased: the identity is
E_{pi x pi}[(f(x) - f(y))(e_x - e_y)] = 2 d/da E f). K = 2 gives DisARM's sigma(|a1 - a0|).
Sums are over exp(a - max a) in the arrays' precision; 1 - p_i and 1 - 2 p_i are ratios of
sums of the other classes' terms (never 1 - a rounded p). Groups of the pair draw independently,
so the same estimate holds per group with f evaluated on the whole pair of rows.

Each row of the pair gets its row weight times the estimate (the pair's weights are halved by
the forward pass); with enumerated nodes below (digits `strides`, `sizes`), f of a member is
its signal marginalised over those digits (see families/antithetic.py).

Declared once (kernels/declare.py): the draw is a body per (row, group of K columns), one CUDA
thread each; a gradient is a row body of the pair's digit-0 row, looping over its groups, which
writes both rows of the pair (and, marginalised, every row of both members), so no two
iterations touch the same element; the pair test and the members' signals are computed once per
row (per group they cost 1.1-1.5x on the CPU: BENCHMARKS.md).
"""
import numpy as np
from numba import njit

from ..math.slots import _group_offset, _group_size, _is_group_head, _marginal_signal
from ..declare import groups, rows
from ..math.scalar import fexp, like
from ..math.slots import slot_local


@njit(cache=True, error_model="numpy")
def _before(a, r, c0, i, j):
    """Class i precedes class j in the group's ascending order of logits (ties by index)."""
    ai = a[r, c0 + i]
    aj = a[r, c0 + j]
    return ai < aj or (ai == aj and i < j)


@njit(cache=True, error_model="numpy")
def _group_max(a, r, c0, K):
    m = a[r, c0]
    for k in range(1, K):
        if a[r, c0 + k] > m:
            m = a[r, c0 + k]
    return m


@njit(cache=True, error_model="numpy")
def _stick(a, r, c0, K, c, m):
    """(e, rest): exp(a_c - m) and the sum of exp(a_j - m) over the classes after c; the stick
    probability at c's position is e / (e + rest)."""
    e = fexp(a[r, c0 + c] - m)
    rest = like(e, 0.0)
    for j in range(K):
        if _before(a, r, c0, c, j):
            rest += fexp(a[r, c0 + j] - m)
    return e, rest


@njit(cache=True, error_model="numpy")
def _next_class(a, r, c0, K, prev):
    """The class after `prev` in the ascending order (prev < 0: the first)."""
    c = -1
    for j in range(K):
        if (prev < 0 or _before(a, r, c0, prev, j)) and (c < 0 or _before(a, r, c0, j, c)):
            c = j
    return c


@njit(cache=True, error_model="numpy")
def _cat_antithetic_group(a, u, tilde, r, c0, K, out):
    """One-hot of the coupled draw of the group: x (tilde 0) or its partner y (tilde 1)."""
    m = _group_max(a, r, c0, K)
    pick = -1
    prev = -1
    for i in range(K):
        c = _next_class(a, r, c0, K, prev)
        out[r, c0 + c] = like(out[r, c0], 0.0)
        if pick < 0:
            if i == K - 1:
                pick = c
            else:
                e, rest = _stick(a, r, c0, K, c, m)
                tot = e + rest
                ui = u[r, c0 + i]
                # u < p, or u > 1 - p, as products (no rounded 1 - p)
                if (ui * tot > rest) if tilde else (ui * tot < e):
                    pick = c
        prev = c
    out[r, c0 + pick] = like(out[r, c0], 1.0)


@njit(cache=True, error_model="numpy")
def _onehot_class(v, r, c0, K):
    x = 0
    for k in range(1, K):
        if v[r, c0 + k] > v[r, c0 + x]:
            x = k
    return x


@njit(cache=True, error_model="numpy")
def _cat_pair_weight(a, r, c0, K, x, y):
    """pi(x) pi(y) / q(x, y) for x != y under the coupling above (module docstring)."""
    lo = x if _before(a, r, c0, x, y) else y
    m = _group_max(a, r, c0, K)
    e, rest = _stick(a, r, c0, K, lo, m)
    w = rest / (e + rest) if rest >= e else e / (e + rest)   # max(p, 1 - p) at the parting position
    for j in range(K):
        if _before(a, r, c0, j, lo):
            ej, rj = _stick(a, r, c0, K, j, m)
            w *= rj * rj / ((ej + rj) * (rj - ej))
    return w


@njit(cache=True, error_model="numpy")
def _cat_pair_coef(a, v, f0, f1, r, r1, c0, K):
    """(x, y, c): the pair's classes in this group and c = 1/2 w (f0 - f1); the estimate is
    c (e_x - e_y) (c = 0 where x == y)."""
    x = _onehot_class(v, r, c0, K)
    y = _onehot_class(v, r1, c0, K)
    if x == y:
        return x, y, like(a[r, c0], 0.0)
    return x, y, like(a[r, c0], 0.5) * _cat_pair_weight(a, r, c0, K, x, y) * (f0 - f1)


@njit(cache=True, error_model="numpy")
def _cat_pair_marginal(a, v, f0, f1, rw, r, r1, strides, sizes, c0, K, ga):
    """The pair's estimate for one group, added to every row of both members over the
    marginalised digits (rows r + off and r1 + off)."""
    x, y, c = _cat_pair_coef(a, v, like(a[r, c0], f0), like(a[r, c0], f1), r, r1, c0, K)
    for mm in range(_group_size(sizes)):
        off = _group_offset(mm, strides, sizes)
        ga[r + off, c0 + x] += rw[r + off] * c
        ga[r + off, c0 + y] -= rw[r + off] * c
        ga[r1 + off, c0 + x] += rw[r1 + off] * c
        ga[r1 + off, c0 + y] -= rw[r1 + off] * c


@groups("out", fastmath=False)   # the old kernels' flags (no multiply-add fused)
def cat_antithetic_sample(r, g, logits, u, stride, off, span, K, out):
    """The row at local index off: the antithetic partner y of each group; every other row: x."""
    _cat_antithetic_group(logits, u, 1 if slot_local(r, stride, span) == off else 0, r, g * K, K, out)


@rows("ga", fastmath=False)
def cat_disarm_grad(r, logits, v, L, rw, stride, off, span, K, ga):
    """ga += rw * 1/2 w (f(x) - f(y)) (e_x - e_y) on both rows of each pair, per group."""
    if slot_local(r, stride, span) == 0:
        r1 = r + off * stride
        for c0 in range(0, ga.shape[1], K):
            x, y, c = _cat_pair_coef(logits, v, L[r], L[r1], r, r1, c0, K)
            ga[r, c0 + x] += rw[r] * c
            ga[r, c0 + y] -= rw[r] * c
            ga[r1, c0 + x] += rw[r1] * c
            ga[r1, c0 + y] -= rw[r1] * c


@rows("ga", fastmath=False)
def cat_disarm_grad_marginal(r, logits, v, L, rw, stride, off, span, strides, sizes, K, ga):
    """cat_disarm_grad with each member's signal marginalised over the enumerated digits below."""
    if slot_local(r, stride, span) == 0 and _is_group_head(r, strides, sizes):
        r1 = r + off * stride
        f0 = _marginal_signal(L, rw, r, strides, sizes)
        f1 = _marginal_signal(L, rw, r1, strides, sizes)
        for c0 in range(0, ga.shape[1], K):
            _cat_pair_marginal(logits, v, f0, f1, rw, r, r1, strides, sizes, c0, K, ga)


def _pairs(g, n, marginal=False):
    """Coupled one-hot pairs drawn by the CPU sampler (the pair's rows share their logits);
    marginal: an enumerated child's digit (size 2) at stride 2 above the pair digit."""
    logits, u = np.repeat(2 * g.x(n // 2, D), 2, axis=0), np.repeat(g.u(n // 2, D), 2, axis=0)
    if marginal:   # rows r and r + 2 belong to one member: the same draw
        logits[2::4], u[2::4] = logits[0::4], u[0::4]
        logits[3::4], u[3::4] = logits[1::4], u[1::4]
    v = g.out(n, D)
    cat_antithetic_sample(logits, u, 1, 1, 2, K, v)
    digits = ((2,), (2,)) if marginal else ()
    return (logits, v, g.x(n), g.pos(n), 1, 1, 2, *digits, K, g.x(n, D))


N, D, K = 16, 6, 3   # pairs at stride 1; 16 rows so that pairs part; G = 2 groups of K per row
PARITY = {
    "cat_antithetic_sample": lambda g: (2 * g.x(N, D), g.u(N, D), 1, 2, 3, K, g.out(N, D)),
    "cat_disarm_grad": lambda g: _pairs(g, N),
    "cat_disarm_grad_marginal": lambda g: _pairs(g, N, marginal=True),
}
