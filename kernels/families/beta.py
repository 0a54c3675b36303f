"""Beta(a, b) kernels: p(x) = x^(a - 1) (1 - x)^(b - 1) / B(a, b), 0 < x < 1.

Sampling takes two uniforms per cell (the law's noise_draws=2: the noise has 2 D columns, the
uniforms of cell (r, j) at columns j and D + j, so common random numbers hold across
configuration rows): x = G_a / (G_a + G_b), G_a = P^{-1}(a, u1), G_b = P^{-1}(b, u2), formed as
sigma(log G_a - log G_b) (kernels/math/gamma.py's beta_icdf). Its gradient at fixed
uniforms is the implicit reparameterisation one (Figurnov, Mohamed & Mnih 2018) through the two
Gammas: dx/da = x (1 - x) dlog G_a/da, dx/db = -x (1 - x) dlog G_b/db (beta_icdf_grad, which
recomputes the two quantiles). Forward kernels overwrite their outputs, backward kernels
accumulate (+=) and skip a gradient passed with 0 rows.
"""
import math

import numpy as np
from numba import njit

from ..declare import cells, rows
from ..math.scalar import like
from ..math.gamma import digamma
from .gamma import _trigamma
from ..math.gamma import beta_icdf, beta_icdf_grad, beta_log_prob as _log_prob_term, beta_log_prob_grad


@cells("out")
def beta_sample(r, j, a, b, u, out):
    """out = G_a / (G_a + G_b) from the uniforms u[r, j] and u[r, D + j] (D = out's width)."""
    out[r, j] = beta_icdf(u[r, j], u[r, out.shape[1] + j], a[r, j], b[r, j])


@cells("gout")
def beta_sample_bwd(r, j, a, b, value, u, gout, ga, gb):
    """ga += gout dx/da, gb += gout dx/db at fixed uniforms (implicit; each skippable)."""
    _, dxa, dxb = beta_icdf_grad(u[r, j], u[r, gout.shape[1] + j], a[r, j], b[r, j])
    g = gout[r, j]
    if ga.shape[0] != 0:
        ga[r, j] += g * dxa
    if gb.shape[0] != 0:
        gb[r, j] += g * dxb


@rows("x")
def beta_log_prob(r, a, b, x, out_rows):
    """out_rows[r] = sum_j log p(x[r, j] | a, b)."""
    s = like(x, 0.0)
    for j in range(x.shape[1]):
        s += _log_prob_term(x[r, j], a[r, j], b[r, j])
    out_rows[r] = s


@cells("x")
def beta_log_prob_bwd(r, j, a, b, x, grow, ga, gb, gx):
    """grow[r] times the gradients of log p(x) into ga, gb, gx (accumulated, skippable)."""
    da, db, dx = beta_log_prob_grad(x[r, j], a[r, j], b[r, j])
    g = grow[r]
    if ga.shape[0] != 0:
        ga[r, j] += g * da
    if gb.shape[0] != 0:
        gb[r, j] += g * db
    if gx.shape[0] != 0:
        gx[r, j] += g * dx


R, D = 4, 6
PARITY = {
    "beta_kl": lambda g: (g.pos(R, D), g.pos(R, D), g.pos(R, D), g.pos(R, D), g.out(R)),
    "beta_kl_bwd": lambda g: (g.pos(R, D), g.pos(R, D), g.pos(R, D), g.pos(R, D), g.x(R), g.x(R, D), g.x(R, D),
                              g.x(R, D), g.skip(2)),
    "beta_sample": lambda g: (g.pos(R, D), g.pos(R, D), g.u(R, 2 * D), g.out(R, D)),
    "beta_sample_bwd": lambda g: (g.pos(R, D), g.pos(R, D), g.u(R, D), g.u(R, 2 * D), g.x(R, D), g.x(R, D),
                                  g.x(R, D)),
    "beta_log_prob": lambda g: (g.pos(R, D), g.pos(R, D), g.u(R, D), g.out(R)),
    "beta_log_prob_bwd": lambda g: (g.pos(R, D), g.pos(R, D), g.u(R, D), g.x(R), g.x(R, D), g.x(R, D),
                                    g.x(R, D)),
}


# ---- KL(Beta(a1, b1) || Beta(a2, b2)), closed form (ppl.dist.Beta priors with kl="analytic")
@njit(cache=True, error_model="numpy")
def _lbeta(a, b):
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


@njit(cache=True, error_model="numpy")
def _kl_term(a1, b1, a2, b2):
    """log B(a2, b2) - log B(a1, b1) + (a1 - a2) psi(a1) + (b1 - b2) psi(b1)
    + (a2 - a1 + b2 - b1) psi(a1 + b1)."""
    a1, b1, a2, b2 = np.float64(a1), np.float64(b1), np.float64(a2), np.float64(b2)
    return (_lbeta(a2, b2) - _lbeta(a1, b1) + (a1 - a2) * digamma(a1) + (b1 - b2) * digamma(b1)
            + (a2 - a1 + b2 - b1) * digamma(a1 + b1))


@njit(cache=True, error_model="numpy")
def _kl_grad(a1, b1, a2, b2):
    """(d/da1, d/db1, d/da2, d/db2) of _kl_term."""
    a1, b1, a2, b2 = np.float64(a1), np.float64(b1), np.float64(a2), np.float64(b2)
    t = (a2 - a1 + b2 - b1) * _trigamma(a1 + b1)
    s1, s2 = digamma(a1 + b1), digamma(a2 + b2)
    return ((a1 - a2) * _trigamma(a1) + t, (b1 - b2) * _trigamma(b1) + t,
            digamma(a2) - s2 - digamma(a1) + s1, digamma(b2) - s2 - digamma(b1) + s1)


@rows("a")
def beta_kl(r, a, b, a2, b2, c):
    """c[r] = sum_j KL(Beta(a, b) || Beta(a2, b2))."""
    s = 0.0
    for j in range(a.shape[1]):
        s += _kl_term(a[r, j], b[r, j], a2[r, j], b2[r, j])
    c[r] = like(c, s)


@rows("a")
def beta_kl_bwd(r, a, b, a2, b2, cw, ga, gb, ga2, gb2):
    """cw[r] times the gradients of the KL into the four parameters (accumulated, skippable)."""
    w = cw[r]
    for j in range(a.shape[1]):
        d1, d2, d3, d4 = _kl_grad(a[r, j], b[r, j], a2[r, j], b2[r, j])
        if ga.shape[0] != 0:
            ga[r, j] += w * like(ga, d1)
        if gb.shape[0] != 0:
            gb[r, j] += w * like(gb, d2)
        if ga2.shape[0] != 0:
            ga2[r, j] += w * like(ga2, d3)
        if gb2.shape[0] != 0:
            gb2[r, j] += w * like(gb2, d4)
