"""StudentT(df, loc, scale) kernels: density Gamma((df + 1) / 2) / (Gamma(df / 2) sqrt(df pi) scale)
(1 + z^2 / df)^(-(df + 1) / 2), z = (x - loc) / scale.

Sampling takes two uniforms per cell (the law's noise_draws=2, at columns j and D + j): two
Gamma(df / 2, 1) quantiles G_a, G_b (kernels/math/gamma.py), whose ratio gives a t draw,
    t = sqrt(df) (sqrt(G_a / G_b) - sqrt(G_b / G_a)) / 2 = sqrt(df) sinh((log G_a - log G_b) / 2),
(if G_a, G_b are i.i.d. Gamma(df / 2), G_a / (G_a + G_b) is Beta(df / 2, df / 2), and a
symmetric Beta maps to a t draw so), x = loc + scale t. Its gradient at fixed uniforms: dx/dloc =
1, dx/dscale = t, and dx/ddf = scale dt/ddf through the implicit gradients of the two log-Gamma
quantiles in their concentration df / 2 (Figurnov, Mohamed & Mnih 2018). Forward kernels
overwrite their outputs, backward kernels accumulate (+=) and skip a gradient passed with 0 rows.
"""
import math

import numpy as np
from numba import njit

from ..declare import cells, rows
from ..math.gamma import digamma, gamma_log_icdf, gamma_log_icdf_dalpha
from ..math.scalar import flog, flog1p, like


@njit(cache=True, error_model="numpy")
def _t(ua, ub, df):
    """(t, dt/ddf) of the standard t draw of the uniforms ua, ub (float64)."""
    a = 0.5 * np.float64(df)
    wa = gamma_log_icdf(np.float64(ua), a)
    wb = gamma_log_icdf(np.float64(ub), a)
    h = 0.5 * (wa - wb)
    rd = math.sqrt(np.float64(df))
    dh = 0.25 * (gamma_log_icdf_dalpha(wa, a) - gamma_log_icdf_dalpha(wb, a))   # d h / d df
    return rd * math.sinh(h), math.sinh(h) / (2.0 * rd) + rd * math.cosh(h) * dh


@cells("out")
def student_t_sample(r, j, df, loc, scale, u, out):
    """out = loc + scale t(u[r, j], u[r, D + j]; df) (pathwise)."""
    t, _ = _t(u[r, j], u[r, out.shape[1] + j], df[r, j])
    out[r, j] = loc[r, j] + scale[r, j] * like(out, t)


@cells("gout")
def student_t_sample_bwd(r, j, df, loc, scale, value, u, gout, gdf, gloc, gscale):
    """gdf += gout scale dt/ddf ; gloc += gout ; gscale += gout t (each skippable)."""
    t, dt = _t(u[r, j], u[r, gout.shape[1] + j], df[r, j])
    g = gout[r, j]
    if gdf.shape[0] != 0:
        gdf[r, j] += g * scale[r, j] * like(g, dt)
    if gloc.shape[0] != 0:
        gloc[r, j] += g
    if gscale.shape[0] != 0:
        gscale[r, j] += g * like(g, t)


@njit(cache=True, error_model="numpy")
def _log_prob_term(x, df, loc, scale):
    z = (x - loc) / scale
    c = like(x, math.lgamma(0.5 * (np.float64(df) + 1.0)) - math.lgamma(0.5 * np.float64(df))
             - 0.5 * math.log(np.float64(df) * math.pi))
    return c - flog(scale) - like(x, 0.5) * (df + like(x, 1.0)) * flog1p(z * z / df)


@rows("x")
def student_t_log_prob(r, df, loc, scale, x, out_rows):
    """out_rows[r] = sum_j log p(x[r, j] | df, loc, scale)."""
    s = like(x, 0.0)
    for j in range(x.shape[1]):
        s += _log_prob_term(x[r, j], df[r, j], loc[r, j], scale[r, j])
    out_rows[r] = s


@cells("x")
def student_t_log_prob_bwd(r, j, df, loc, scale, x, grow, gdf, gloc, gscale, gx):
    """grow[r] times the gradients of log p(x) (accumulated, each skippable): with z = (x -
    loc) / scale and q = 1 + z^2 / df, d/ddf = (psi((df + 1) / 2) - psi(df / 2) - 1 / df - log q)
    / 2 + (df + 1) z^2 / (2 df^2 q), d/dloc = (df + 1) z / (scale df q) = -d/dx, d/dscale =
    (df + 1) z^2 / (scale df q) - 1 / scale."""
    v, s = df[r, j], scale[r, j]
    z = (x[r, j] - loc[r, j]) / s
    q = like(x, 1.0) + z * z / v
    k = (v + like(x, 1.0)) / (v * q)
    g = grow[r]
    if gdf.shape[0] != 0:
        dv = like(x, 0.5) * (digamma(like(x, 0.5) * (v + like(x, 1.0))) - digamma(like(x, 0.5) * v)
                             - like(x, 1.0) / v - flog(q)) + like(x, 0.5) * k * z * z / v
        gdf[r, j] += g * dv
    if gloc.shape[0] != 0:
        gloc[r, j] += g * k * z / s
    if gscale.shape[0] != 0:
        gscale[r, j] += g * (k * z * z - like(x, 1.0)) / s
    if gx.shape[0] != 0:
        gx[r, j] -= g * k * z / s


R, D = 4, 6
PARITY = {
    "student_t_sample": lambda g: (g.pos(R, D), g.x(R, D), g.pos(R, D), g.u(R, 2 * D), g.out(R, D)),
    "student_t_sample_bwd": lambda g: (g.pos(R, D), g.x(R, D), g.pos(R, D), g.x(R, D), g.u(R, 2 * D), g.x(R, D),
                                       g.x(R, D), g.x(R, D), g.x(R, D)),
    "student_t_log_prob": lambda g: (g.pos(R, D), g.x(R, D), g.pos(R, D), g.x(R, D), g.out(R)),
    "student_t_log_prob_bwd": lambda g: (g.pos(R, D), g.x(R, D), g.pos(R, D), g.x(R, D), g.x(R), g.x(R, D),
                                         g.x(R, D), g.x(R, D), g.x(R, D)),
}
