"""RELAX for Bernoulli and categorical units with a learned control variate (Grathwohl et al. 2018).

Per row, with logits a, uniforms u, v and p = sigmoid(a):
  z  = a + logit(u),  b = H(z)                       (the hard sample)
  z~ ~ p(z | b) from v (kernels/math/conditional.py)
  g_a = (f(b) - c(z~)) (b - p) + dc(z)/dz * dz/da - dc(z~)/dz * dz~/da   (dz/da = 1)
The control variate is a one-hidden-layer network c(z, x) = w2 . tanh(W1 z + U x + b1) + c0 on
the logistic variable z and the node's data context x (kernels/math/relax_net.py). Its parameters
phi are trained to minimise the estimator's variance: since E[g_a] does not depend on phi,
d/dphi E[|g_a|^2] is the gradient of the variance, 2 sum_j g_j dg_j/dphi, derived below in closed
form (it needs the mixed derivative d^2 c / dphi dz, written out for this network).

Parameter vector phi (flat): W1 (H, D) | U (H, C) | b1 (H) | w2 (H) | c0 (1).

One file for both targets (kernels/declare.py): the draws and the column copy are cell and group
bodies. The backward kernels fit no loop shape (their work vectors are allocated once for all
rows, and the phi gradient is a sum over the rows): hand-written on the CPU over the per-row math
`_relax_row` / `_relax_categorical_row`, whose CUDA launchers (kernels/cuda/relax.py, named in
`CUDA`) run the same row functions, one thread per row with its work vectors in
``cuda.local.array``, the phi gradient through a per-row scratch summed in row order.
"""
import math

import numpy as np
from numba import njit

from ..declare import cells, groups
from ..math.conditional import gumbel_given_argmax_jac, jac_t_vec, jac_vec, logistic_given_bernoulli
from ..math.relax_net import _acc_dc_dphi, _acc_dD_dphi, _cv, _cv_grad_z, relax_size  # noqa: F401
from ..math.scalar import sigmoid


@njit(cache=True)
def _relax_bit(a, u):
    """b = 1[a + logit(u) > 0] = 1[u > sigmoid(-a)] for one unit."""
    return 1 if u > sigmoid(-a) else 0


@cells("out", fastmath=False)
def relax_sample(r, j, a, u, out):
    """b = 1[a + logit(u) > 0] = 1[u > sigmoid(-a)]."""
    out[r, j] = _relax_bit(a[r, j], u[r, j])


@njit(cache=True)
def _relax_row(r, a, u, v, b, L, rw, ctx, phi, H, ga, gp, train, z, zt, dzt, gz, gzt, g, q, h, s, ht, st):
    """One row of relax_bwd: ga[r] += rw[r] * g_a and, if train, gp += that row's variance
    gradient. Work arrays z .. q hold >= D entries, h .. st >= H (only the first D / H are used)."""
    D = a.shape[1]
    C = ctx.shape[1] if ctx.shape[0] > 0 else 0
    for j in range(D):
        aj = a[r, j]
        uj = u[r, j]
        vj = v[r, j]
        z[j] = aj + math.log(uj) - math.log1p(-uj)
        zt[j], dzt[j] = logistic_given_bernoulli(aj, vj, b[r, j])
    _cv(z, ctx, r, phi, D, C, H, h, s)
    _cv_grad_z(phi, D, H, s, gz)
    ct = _cv(zt, ctx, r, phi, D, C, H, ht, st)
    _cv_grad_z(phi, D, H, st, gzt)
    w = rw[r]
    gs = 0.0
    for j in range(D):
        sc = b[r, j] - sigmoid(a[r, j])
        g[j] = (L[r] - ct) * sc + gz[j] - gzt[j] * dzt[j]
        ga[r, j] += w * g[j]
        gs += g[j] * sc
    if train:
        # d/dphi sum_r rw |g|^2 = 2 rw [ -(g . sc) dc(z~)/dphi + dD(z; g)/dphi - dD(z~; g * dz~/da)/dphi ]
        _acc_dc_dphi(zt, ctx, r, D, C, H, ht, st, -2.0 * w * gs, gp)
        _acc_dD_dphi(z, ctx, r, phi, D, C, H, h, g, 2.0 * w, gp)
        for j in range(D):
            q[j] = g[j] * dzt[j]
        _acc_dD_dphi(zt, ctx, r, phi, D, C, H, ht, q, -2.0 * w, gp)


@njit(cache=True)
def relax_bwd(a, u, v, b, L, rw, ctx, phi, H, ga, gphi, train):
    """Accumulate rw[r] * g_a into ga and, if train, the variance gradient into gphi.

    Work arrays are allocated once per call (small: O(H + D))."""
    R, D = a.shape
    z = np.empty(D)
    zt = np.empty(D)
    dzt = np.empty(D)
    gz = np.empty(D)
    gzt = np.empty(D)
    g = np.empty(D)
    q = np.empty(D)
    h = np.empty(H)
    s = np.empty(H)
    ht = np.empty(H)
    st = np.empty(H)
    for r in range(R):
        _relax_row(r, a, u, v, b, L, rw, ctx, phi, H, ga, gphi, train, z, zt, dzt, gz, gzt, g, q, h, s, ht, st)


@cells("src")
def copy_cols(r, j, src, dst, offset):
    """dst[:, offset:offset + src.shape[1]] = src."""
    dst[r, offset + j] = src[r, j]


@njit(cache=True)
def _relax_categorical_group(a, u, r, g0, K, out):
    """One group: out[r, g0:g0+K] = one-hot argmax_k (a_k + g_k), g = -log(-log u) Gumbel."""
    best = 0
    bv = -math.inf
    for k in range(K):
        zk = a[r, g0 + k] - math.log(-math.log(u[r, g0 + k]))
        if zk > bv:
            bv = zk
            best = k
    for k in range(K):
        out[r, g0 + k] = 1.0 if k == best else 0.0


@groups("out", fastmath=False)
def relax_categorical_sample(r, g, a, u, K, out):
    """One-hot argmax_k (a_k + g_k) per group of K, g = -log(-log u) Gumbel."""
    _relax_categorical_group(a, u, r, g * K, K, out)


@njit(cache=True)
def _relax_categorical_row(r, a, u, v, b, L, rw, ctx, phi, H, K, ga, gp, train,
                          z, zt, th, cc, gz, gzt, sc, g, q, h, s, ht, st):
    """One row of relax_categorical_bwd (as relax_row; work arrays z .. q >= D, h .. st >= H)."""
    D = a.shape[1]
    C = ctx.shape[1] if ctx.shape[0] > 0 else 0
    for j in range(D):
        z[j] = a[r, j] - math.log(-math.log(u[r, j]))
    for g0 in range(0, D, K):
        k = 0
        for i in range(K):
            if b[r, g0 + i] > 0.5:
                k = i
        gumbel_given_argmax_jac(a[r, g0: g0 + K], v[r, g0: g0 + K], k, zt[g0: g0 + K], th[g0: g0 + K],
                                cc[g0: g0 + K])
    _cv(z, ctx, r, phi, D, C, H, h, s)
    _cv_grad_z(phi, D, H, s, gz)
    ct = _cv(zt, ctx, r, phi, D, C, H, ht, st)
    _cv_grad_z(phi, D, H, st, gzt)
    for j in range(D):
        sc[j] = b[r, j] - th[j]
        g[j] = (L[r] - ct) * sc[j] + gz[j]
    for g0 in range(0, D, K):
        for i in range(K):
            q[g0 + i] = -gzt[g0 + i]
        jac_t_vec(th[g0: g0 + K], cc[g0: g0 + K], q[g0: g0 + K], g[g0: g0 + K])
    w = rw[r]
    gs = 0.0
    for j in range(D):
        ga[r, j] += w * g[j]
        gs += g[j] * sc[j]
    if train:
        _acc_dc_dphi(zt, ctx, r, D, C, H, ht, st, -2.0 * w * gs, gp)
        _acc_dD_dphi(z, ctx, r, phi, D, C, H, h, g, 2.0 * w, gp)
        for g0 in range(0, D, K):
            jac_vec(th[g0: g0 + K], cc[g0: g0 + K], g[g0: g0 + K], q[g0: g0 + K])
        _acc_dD_dphi(zt, ctx, r, phi, D, C, H, ht, q, -2.0 * w, gp)


@njit(cache=True)
def relax_categorical_bwd(a, u, v, b, L, rw, ctx, phi, H, K, ga, gphi, train):
    """RELAX for groups of K categorical units (the Bernoulli kernel's derivation with the
    conditional Gumbel z~ of kernels/math/conditional.py, whose Jacobian is not diagonal):
      g_a = (f(b) - c(z~)) (b - softmax(a)) + dc(z)/dz - J^T dc(z~)/dz~,   J = dz~/da."""
    R, D = a.shape
    z = np.empty(D)
    zt = np.empty(D)
    th = np.empty(D)
    cc = np.empty(D)
    gz = np.empty(D)
    gzt = np.empty(D)
    sc = np.empty(D)
    g = np.empty(D)
    q = np.empty(D)
    h = np.empty(H)
    s = np.empty(H)
    ht = np.empty(H)
    st = np.empty(H)
    for r in range(R):
        _relax_categorical_row(r, a, u, v, b, L, rw, ctx, phi, H, K, ga, gphi, train,
                              z, zt, th, cc, gz, gzt, sc, g, q, h, s, ht, st)


CUDA = {"relax_bwd": "relax.relax_bwd_launcher",   # made by kernels/cuda/relax.py
        "relax_categorical_bwd": "relax.relax_categorical_bwd_launcher"}

R, D, K, C, H = 4, 6, 3, 2, 3   # rows, units (2 groups of K), context width, hidden size


def _bwd_case(categorical):
    """A backward kernel's arguments at a draw of its sample kernel, phi's variance gradient trained."""
    def case(g):
        a, u = g.x(R, D), g.u(R, D)
        b = g.out(R, D)
        (relax_categorical_sample(a, u, K, b) if categorical else relax_sample(a, u, b))
        phi = 0.5 * g.x(relax_size(D, C, H))
        head = (a, u, g.u(R, D), b, g.x(R), g.pos(R), g.x(R, C), phi, H)
        return (*head, *((K,) if categorical else ()), g.x(R, D), g.x(phi.shape[0]), True)
    return case


PARITY = {
    "relax_sample": lambda g: (g.x(R, D), g.u(R, D), g.out(R, D)),
    "copy_cols": lambda g: (g.x(R, 2), g.out(R, D), 3),
    "relax_categorical_sample": lambda g: (g.x(R, D), g.u(R, D), K, g.out(R, D)),
    "relax_bwd": _bwd_case(False),
    "relax_categorical_bwd": _bwd_case(True),
}
