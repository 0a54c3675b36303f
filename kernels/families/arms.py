"""ARMS kernels (kernels of estimators/arms.py): n antithetically coupled Bernoulli draws per unit.

Each drawn row is expanded into n configurations, one per coupled draw: draw 0 on the drawn row
(local index 0 of the node's row digit (stride, span)), draw c >= 1 at local index off + c - 1.
In a digit of its own, (stride, 1, n), all n rows weigh 1 / n of the drawn row in the
objective; in a digit shared with other nodes' extra rows (span > n) the drawn row keeps its
weight, the node's other rows weigh 0, and every row outside its own is drawn plainly (draw 0,
from that row's logits).

Coupling (Dimitriev & Zhou 2021, the Dirichlet copula): per unit, d ~ Dirichlet(1, ..., 1) of n
components, made as the spacings of m = n - 1 sorted uniforms u[r, i W + j] (i < m; W units), so
sum_i d_i = 1; each d_i is Beta(1, m), its survival function (1 - d)^m is U(0, 1). With
pi = min(p, 1 - p) = sigmoid(-|a|), draw i takes the rarer outcome (1 if a < 0, else 0) iff
(1 - d_i)^m < pi, i.e. 1 - d_i < pi^(1/m): a Bernoulli(p) draw per row, and two draws take the
rarer outcome together with the probability C(pi) = max(2 pi^(1/m) - 1, 0)^m only (0 for
pi <= 2^-m). Row c reads d_c, or d_(m - c) where a < 0 (the components are exchangeable): at
n = 2 the rows then hold 1[u < p] and 1[u > 1 - p], DisARM's pair in its order
(kernels/families/antithetic.py), unit by unit.

Estimate (REINFORCE leave-one-out over the n draws, debiased for their correlation rho):
    g_a = kappa / (n - 1) sum_i (f_i - fbar) (b_i - p) = kappa / (n - 1) sum_i (f_i - fbar) b_i,
    kappa = 1 / (1 - rho) = pi (1 - pi) / (pi - C(pi)) = sigmoid(|a|) / (1 - C(pi) / pi).
E[(f_i - f_k)(b_i - p)] = (1 - rho) p (1 - p) (f(1) - f(0)) for i != k, hence the factor; the two
forms of the sum agree since sum_i (f_i - fbar) = 0. Every row of the group gets its row weight
times g_a, so the group's total is the drawn row's weight times the estimate. With enumerated
nodes below (their rows weigh p(c | the draw)), f_i is draw i's cost marginalised over their
digits, sum rw f / sum rw (`arms_grad_marginal`), as DisARM's `*_grad_marginal` do.
"""
import math

from numba import njit

from ..math.slots import _marginal_signal
from ..declare import rows
from ..math.scalar import like, log_sigmoid, sigmoid
from ..math.slots import slot_local


@njit(cache=True, error_model="numpy")
def _order_stat(u, r, j, W, m, k):
    """The k-th smallest (from 0) of u[r, i W + j], i < m (ties ranked by i)."""
    for l in range(m):
        v = u[r, l * W + j]
        rank = 0
        for i in range(m):
            w = u[r, i * W + j]
            if w < v or (w == v and i < l):
                rank += 1
        if rank == k:
            return float(v)
    return 1.0


@njit(cache=True, error_model="numpy")
def _spacing(u, r, j, W, m, c):
    """d_c: the c-th spacing of the m sorted uniforms between 0 and 1 (c = 0 .. m)."""
    hi = 1.0 if c == m else _order_stat(u, r, j, W, m, c)
    lo = 0.0 if c == 0 else _order_stat(u, r, j, W, m, c - 1)
    return hi - lo


@njit(cache=True, error_model="numpy")
def _root_pi(a, m):
    """pi^(1/m), pi = sigmoid(-|a|), in float64."""
    return math.exp(float(log_sigmoid(-abs(a))) / m)


@njit(cache=True, error_model="numpy")
def arms_kappa(a, m):
    """1 / (1 - rho): the debiasing factor of m + 1 coupled draws of a unit with logit a."""
    t = 2.0 * _root_pi(a, m) - 1.0
    ratio = 0.0
    if t > 0.0:
        ratio = t ** m / math.exp(float(log_sigmoid(-abs(a))))   # C(pi) / pi < 1
    return float(sigmoid(abs(a))) / (1.0 - ratio)


@njit(cache=True, error_model="numpy", inline="always")
def _arms_bit(u, r, j, W, m, a, root, c):
    """Draw c of the unit's n = m + 1 coupled draws (logit a, root = pi^(1/m))."""
    k = m - c if a < 0.0 else c   # a permutation of the draws, so that draw 0 is 1[u_0 < p] at n = 2
    rare = 1.0 - _spacing(u, r, j, W, m, k) < root
    return 1.0 if (a < 0.0) == rare else 0.0


@njit(cache=True, error_model="numpy", inline="always")
def _arms_row(r, c, stride, off):
    """The row of draw c of the group whose drawn row is r."""
    return r if c == 0 else r + (off + c - 1) * stride


@rows("value")
def arms_draw(r, logits, u, stride, off, span, size, value, row_weights):
    """value at the row of draw c = draw c of the n coupled draws of each unit, and the rows'
    weights: written by the group's drawn row (local index 0), which reads the unit's uniforms
    and pi^(1/m) once (the rows of a group share their logits and uniforms); a row outside the
    group's (another node's) draws 0 from its own logits. `size`: n (a number the caller knows:
    the loops then run a known count, about twice as fast as from u's shape)."""
    W = value.shape[1]
    m = size - 1
    one = like(value, 1.0)
    jl = slot_local(r, stride, span)
    if jl == 0:
        for j in range(W):
            a = logits[r, j]
            root = _root_pi(a, m)
            for c in range(size):
                value[_arms_row(r, c, stride, off), j] = one * _arms_bit(u, r, j, W, m, a, root, c)
        for c in range(size):
            rc = _arms_row(r, c, stride, off)
            row_weights[rc] = row_weights[rc] / size if span == size else (row_weights[rc] if c == 0 else 0.0)
    elif jl < off or jl >= off + m:
        for j in range(W):
            a = logits[r, j]
            value[r, j] = one * _arms_bit(u, r, j, W, m, a, _root_pi(a, m), 0)


@rows("value")
def arms_grad(r, logits, value, cost, row_weights, stride, off, span, size, grad_logits):
    """grad_logits[r, j] += w_r kappa_j / (n - 1) sum_i (f_i - fbar) b_ij over the row's group: the
    group's drawn row computes each unit's estimate once and adds it to all n rows (the rows of
    a group share their logits; the other rows return)."""
    if grad_logits.shape[0] == 0 or slot_local(r, stride, span) != 0:
        return
    m = size - 1
    fbar = 0.0
    for i in range(size):
        fbar += cost[_arms_row(r, i, stride, off)]
    fbar /= size
    for j in range(value.shape[1]):
        s = 0.0
        for i in range(size):
            ri = _arms_row(r, i, stride, off)
            if value[ri, j] > 0.5:
                s += cost[ri] - fbar
        g = arms_kappa(logits[r, j], m) * s / m
        for i in range(size):
            ri = _arms_row(r, i, stride, off)
            grad_logits[ri, j] += row_weights[ri] * like(grad_logits, g)


@rows("value")
def arms_grad_marginal(r, logits, value, cost, row_weights, stride, off, span, size, strides, sizes, grad_logits):
    """arms_grad with each draw's cost marginalised over the enumerated digits (strides, sizes)
    below the node (sum rw f / sum rw: their rows weigh p(c | the draw)); row by row is biased.
    Every row adds its own weight's share (a row outside the node's group weighs 0)."""
    if grad_logits.shape[0] == 0:
        return
    r0 = r - slot_local(r, stride, span) * stride
    for d in range(len(sizes)):
        r0 -= ((r // strides[d]) % sizes[d]) * strides[d]
    m = size - 1
    fbar = 0.0
    for i in range(size):
        fbar += _marginal_signal(cost, row_weights, _arms_row(r0, i, stride, off), strides, sizes)
    fbar /= size
    for i in range(size):
        ri = _arms_row(r0, i, stride, off)
        f = _marginal_signal(cost, row_weights, ri, strides, sizes) - fbar
        for j in range(value.shape[1]):
            if value[ri, j] > 0.5:
                g = arms_kappa(logits[r, j], m) * f / m
                grad_logits[r, j] += row_weights[r] * like(grad_logits, g)


R, D, N = 12, 3, 3   # 4 drawn rows of N configurations each
PARITY = {
    # a shared digit of 4 rows: the node's draws at local 0, 2, 3, another node's row at 1
    "arms_draw": lambda g: (g.x(R, D), g.u(R, (N - 1) * D), 1, 2, 4, N, g.out(R, D), g.pos(R)),
    "arms_grad": lambda g: (g.x(R, D), g.bits(R, D), g.x(R), g.pos(R), 1, 1, N, N, g.x(R, D)),
    # 2 drawn rows of N draws x an enumerated digit of 2 below (stride 1)
    "arms_grad_marginal": lambda g: (g.x(R, D), g.bits(R, D), g.x(R), g.pos(R), 2, 1, N, N, (1,), (2,), g.x(R, D)),
}
