"""Gamma(concentration, rate) kernels: p(x) = rate^a x^(a - 1) exp(-rate x) / Gamma(a), x > 0.

Sampling is the inverse CDF of one uniform u per cell (the program's uniform noise, so common
random numbers hold across configuration rows): x = P^{-1}(a, u) / rate (kernels/math/gamma.py).
Its gradient is the implicit reparameterisation one (Figurnov, Mohamed & Mnih 2018): at fixed u,
dx/da = -(dP/da)(a, rate x) / (rate p(rate x; a)) and dx/drate = -x / rate. Forward kernels
overwrite their outputs, backward kernels accumulate (+=) and skip a gradient passed with 0 rows.
"""
import math

import numpy as np
from numba import njit

from ..declare import cells, rows
from ..math.scalar import like
from ..math.gamma import digamma
from ..math.gamma import gamma_icdf, gamma_icdf_dalpha, gamma_log_prob as _log_prob_term, gamma_log_prob_grad


@cells("out")
def gamma_sample(r, j, conc, rate, u, out):
    """out = P^{-1}(conc, u) / rate."""
    out[r, j] = gamma_icdf(u[r, j], conc[r, j]) / rate[r, j]


@rows("gout")
def gamma_sample_bwd(r, conc, rate, value, u, gout, gconc, grate):
    """gconc += gout dx/dconc (implicit); grate += gout (-x / rate) (each skippable)."""
    if gconc.shape[0] != 0:
        for j in range(gout.shape[1]):
            b = rate[r, j]
            gconc[r, j] += gout[r, j] * gamma_icdf_dalpha(value[r, j] * b, conc[r, j]) / b
    if grate.shape[0] != 0:
        for j in range(gout.shape[1]):
            grate[r, j] -= gout[r, j] * value[r, j] / rate[r, j]


@rows("x")
def gamma_log_prob(r, conc, rate, x, out_rows):
    """out_rows[r] = sum_j log p(x[r, j] | conc, rate)."""
    s = like(x, 0.0)
    for j in range(x.shape[1]):
        s += _log_prob_term(x[r, j], conc[r, j], rate[r, j])
    out_rows[r] = s


@rows("x")
def gamma_log_prob_bwd(r, conc, rate, x, grow, gconc, grate, gx):
    """grow[r] times the gradients of log p(x) into gconc, grate, gx (accumulated, skippable)."""
    do_a = gconc.shape[0] != 0
    do_b = grate.shape[0] != 0
    do_x = gx.shape[0] != 0
    g = grow[r]
    for j in range(x.shape[1]):
        da, db, dx = gamma_log_prob_grad(x[r, j], conc[r, j], rate[r, j])
        if do_a:
            gconc[r, j] += g * da
        if do_b:
            grate[r, j] += g * db
        if do_x:
            gx[r, j] += g * dx


R, D = 4, 6
PARITY = {
    "gamma_kl": lambda g: (g.pos(R, D), g.pos(R, D), g.pos(R, D), g.pos(R, D), g.out(R)),
    "gamma_kl_bwd": lambda g: (g.pos(R, D), g.pos(R, D), g.pos(R, D), g.pos(R, D), g.x(R), g.x(R, D), g.x(R, D),
                               g.skip(2), g.x(R, D)),
    "gamma_sample": lambda g: (g.pos(R, D), g.pos(R, D), g.u(R, D), g.out(R, D)),
    "gamma_sample_bwd": lambda g: (g.pos(R, D), g.pos(R, D), g.pos(R, D), g.u(R, D), g.x(R, D), g.x(R, D),
                                   g.x(R, D)),
    "gamma_log_prob": lambda g: (g.pos(R, D), g.pos(R, D), g.pos(R, D), g.out(R)),
    "gamma_log_prob_bwd": lambda g: (g.pos(R, D), g.pos(R, D), g.pos(R, D), g.x(R), g.x(R, D), g.x(R, D),
                                     g.x(R, D)),
}


# ---- KL(Gamma(a1, b1) || Gamma(a2, b2)), closed form (ppl.dist.Gamma priors with kl="analytic")
@njit(cache=True, error_model="numpy")
def _trigamma(x):
    """psi'(x) for x > 0: psi'(x) = psi'(x + n) + sum 1/(x + k)^2 up to x + n >= 10, then
    1/y + 1/(2 y^2) + sum B_2k / y^(2k + 1) (5 terms)."""
    y = np.float64(x)
    if not (y > 0.0):
        return math.nan
    r = 0.0
    while y < 10.0:
        r += 1.0 / (y * y)
        y += 1.0
    z = 1.0 / (y * y)
    return r + 1.0 / y + 0.5 * z + z / y * (1.0 / 6 - z * (1.0 / 30 - z * (1.0 / 42 - z * (1.0 / 30 - z * 5.0 / 66))))


@njit(cache=True, error_model="numpy")
def _kl_term(a1, b1, a2, b2):
    """KL(Ga(a1, b1) || Ga(a2, b2)) = (a1 - a2) psi(a1) - lgamma(a1) + lgamma(a2)
    + a2 (log b1 - log b2) + a1 (b2 - b1) / b1 (rates b)."""
    a1, b1, a2, b2 = np.float64(a1), np.float64(b1), np.float64(a2), np.float64(b2)
    return ((a1 - a2) * digamma(a1) - math.lgamma(a1) + math.lgamma(a2) + a2 * (math.log(b1) - math.log(b2))
            + a1 * (b2 - b1) / b1)


@njit(cache=True, error_model="numpy")
def _kl_grad(a1, b1, a2, b2):
    """(d/da1, d/db1, d/da2, d/db2) of _kl_term."""
    a1, b1, a2, b2 = np.float64(a1), np.float64(b1), np.float64(a2), np.float64(b2)
    return ((a1 - a2) * _trigamma(a1) + b2 / b1 - 1.0, a2 / b1 - a1 * b2 / (b1 * b1),
            digamma(a2) - digamma(a1) + math.log(b1) - math.log(b2), a1 / b1 - a2 / b2)


@rows("conc")
def gamma_kl(r, conc, rate, conc2, rate2, c):
    """c[r] = sum_j KL(Ga(conc, rate) || Ga(conc2, rate2))."""
    s = 0.0
    for j in range(conc.shape[1]):
        s += _kl_term(conc[r, j], rate[r, j], conc2[r, j], rate2[r, j])
    c[r] = like(c, s)


@rows("conc")
def gamma_kl_bwd(r, conc, rate, conc2, rate2, cw, gconc, grate, gconc2, grate2):
    """cw[r] times the gradients of the KL into the four parameters (accumulated, skippable)."""
    w = cw[r]
    for j in range(conc.shape[1]):
        d1, d2, d3, d4 = _kl_grad(conc[r, j], rate[r, j], conc2[r, j], rate2[r, j])
        if gconc.shape[0] != 0:
            gconc[r, j] += w * like(gconc, d1)
        if grate.shape[0] != 0:
            grate[r, j] += w * like(grate, d2)
        if gconc2.shape[0] != 0:
            gconc2[r, j] += w * like(gconc2, d3)
        if grate2.shape[0] != 0:
            grate2[r, j] += w * like(grate2, d4)
