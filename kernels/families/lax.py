"""LAX for Normal units (Grathwohl et al. 2018, the continuous case of RELAX).

Per row, with z = mu + sigma eps (the node's value), f the row's downstream costs and c(z) the
control variate, unit j receives
  g_mu_j    = (f - c(z)) eps_j / sigma_j           + dc/dz_j          (d log q / dmu    = eps / sigma)
  g_sigma_j = (f - c(z)) (eps_j^2 - 1) / sigma_j   + dc/dz_j eps_j    (d log q / dsigma = (eps^2 - 1) / sigma)
i.e. the score function of f - c plus the reparameterised gradient of c through z. It is
unbiased for any c (E[c(z) d log q] = d E[c(z)] = E[dc/dz dz/dtheta]), and f is read as a
number per row, so it serves black-box costs. c is RELAX's network (kernels/math/relax_net.py: c(z, x)
= w2 . tanh(W1 z + U x + b1) + c0 on the value and the node's data context), evaluated at z
itself. Its parameters phi are trained on the variance: E[g] does not depend on phi, so
d/dphi sum_r rw |g_r|^2 is the variance gradient,
  2 rw [ -(sum_j g_mu_j eps_j / sigma_j + g_sigma_j (eps_j^2 - 1) / sigma_j) dc/dphi
         + d/dphi sum_j (g_mu_j + eps_j g_sigma_j) dc/dz_j ],
with RELAX's dc/dphi and mixed-derivative helpers. Only the gradients the program needs enter
(gloc / gscale with shape[0] == 0 are skipped, and then left out of the variance as well).
Rows that are configurations of one draw (enumerated or antithetic nodes below) share z and c(z)
and carry their own rw, so they add up to w (sum_c rw_c f_c / w - c) d log q + w dc/dtheta: still
unbiased; the variance phi is trained on is then the rows' one, not the drawn row's.

One file for both targets (kernels/declare.py): the row math is `_lax_row`; the CPU kernel
`lax_normal_bwd` is hand-written, as no loop shape fits it (its work vectors are allocated once
for all rows, and the phi gradient is a sum over the rows), and its CUDA launcher is made from the
same `_lax_row` (the family's `CUDA` names kernels/cuda/relax.py's maker): one thread per row with its work vectors in
``cuda.local.array``, so the limits are cuda/relax.py's (``MAX_UNITS`` units, ``MAX_HIDDEN``
hidden units); the phi gradient goes through cuda/relax.py's per-row scratch, summed in row order
(deterministic).
"""
import numpy as np
from numba import njit

from ..math.relax_net import _acc_dc_dphi, _acc_dD_dphi, _cv, _cv_grad_z, relax_size


@njit(cache=True)
def _lax_row(r, x, scale, eps, L, rw, ctx, phi, H, gloc, gscale, gp, train, z, gz, q, h, s):
    """One row of lax_normal_bwd: gloc[r] / gscale[r] += rw[r] * g and, if train, gp += that
    row's variance gradient. Work arrays z, gz, q hold >= D entries, h, s >= H."""
    D = x.shape[1]
    C = ctx.shape[1] if ctx.shape[0] > 0 else 0
    for j in range(D):
        z[j] = x[r, j]
    c = _cv(z, ctx, r, phi, D, C, H, h, s)
    _cv_grad_z(phi, D, H, s, gz)
    w = rw[r]
    d = L[r] - c
    gs = 0.0
    do_loc = gloc.shape[0] != 0
    do_scale = gscale.shape[0] != 0
    for j in range(D):
        e = eps[r, j]
        sig = scale[r, j]
        q[j] = 0.0
        if do_loc:
            sl = e / sig
            gm = d * sl + gz[j]
            gloc[r, j] += w * gm
            gs += gm * sl
            q[j] += gm
        if do_scale:
            ss = (e * e - 1.0) / sig
            gsg = d * ss + gz[j] * e
            gscale[r, j] += w * gsg
            gs += gsg * ss
            q[j] += e * gsg
    if train:
        _acc_dc_dphi(z, ctx, r, D, C, H, h, s, -2.0 * w * gs, gp)
        _acc_dD_dphi(z, ctx, r, phi, D, C, H, h, q, 2.0 * w, gp)


@njit(cache=True)
def lax_normal_bwd(x, scale, eps, L, rw, ctx, phi, H, gloc, gscale, gphi, train):
    """Accumulate rw[r] * g (the LAX estimate of d E f / d(loc, scale), see the module docstring)
    into gloc and gscale (each skippable: shape[0] == 0) and, if train, the variance gradient
    d/dphi sum_r rw |g_r|^2 into gphi. x is the node's value z = loc + scale eps, eps its noise,
    L the rows' downstream costs, ctx the node's data context (shape[0] == 0: none)."""
    R, D = x.shape
    z = np.empty(D)
    gz = np.empty(D)
    q = np.empty(D)
    h = np.empty(H)
    s = np.empty(H)
    for r in range(R):
        _lax_row(r, x, scale, eps, L, rw, ctx, phi, H, gloc, gscale, gphi, train, z, gz, q, h, s)


def _lax_normal_bwd_row(r, x, scale, eps, L, rw, ctx, phi, H, gloc, gscale, gp, train):
    """lax_normal_bwd's CUDA body: row r's `_lax_row`, its work vectors in cuda.local.array and its
    phi gradient into row r of a scratch (`cuda`, `float64` and the limits are bound by the
    launcher's maker: this module does not import numba.cuda)."""
    z = cuda.local.array(MAX_UNITS, float64)  # noqa: F821
    gz = cuda.local.array(MAX_UNITS, float64)  # noqa: F821
    q = cuda.local.array(MAX_UNITS, float64)  # noqa: F821
    h = cuda.local.array(MAX_HIDDEN, float64)  # noqa: F821
    s = cuda.local.array(MAX_HIDDEN, float64)  # noqa: F821
    _lax_row(r, x, scale, eps, L, rw, ctx, phi, H, gloc, gscale, gp[r], train, z, gz, q, h, s)


CUDA = {"lax_normal_bwd": "relax._lax_normal_bwd_launcher"}   # made by kernels/cuda/relax.py

R, D = 4, 6
PARITY = {   # a data context of 2 columns, 4 hidden units; phi's variance gradient trained
    "lax_normal_bwd": lambda g: (g.x(R, D), g.pos(R, D), g.x(R, D), g.x(R), g.pos(R), g.x(R, 2),
                                 0.5 * g.x(relax_size(D, 2, 4)), 4, g.x(R, D), g.x(R, D), g.x(relax_size(D, 2, 4)),
                                 True),
}
