"""Exponential(rate) kernels: density rate exp(-rate x), x > 0.

Sampling is the inverse CDF of a uniform u in (0, 1) (rng.py's grids never hold 0 or 1):
    eps = -log(1 - u),   x = eps / rate,
so the pathwise gradient, read from the draw (implicit form), is dx/drate = -x / rate. The
log-density log rate - rate x has d/drate = 1 / rate - x and d/dx = -rate. Forward kernels
overwrite their outputs, backward kernels accumulate (+=) and skip a gradient passed with 0 rows.
"""
import math

from ..declare import cells, rows
from ..math.scalar import flog, flog1p, like


@cells("out")
def exponential_sample(r, j, rate, u, out):
    """out = -log(1 - u) / rate (pathwise)."""
    out[r, j] = -flog1p(-u[r, j]) / rate[r, j]


@rows("gout")
def exponential_sample_bwd(r, rate, value, u, gout, grate):
    """grate += gout (-x / rate) (skippable)."""
    if grate.shape[0] != 0:
        for j in range(gout.shape[1]):
            grate[r, j] -= gout[r, j] * value[r, j] / rate[r, j]


@rows("x")
def exponential_log_prob(r, rate, x, out_rows):
    """out_rows[r] = sum_j log rate - rate x."""
    s = like(x, 0.0)
    for j in range(x.shape[1]):
        s += flog(rate[r, j]) - rate[r, j] * x[r, j]
    out_rows[r] = s


@rows("x")
def exponential_log_prob_bwd(r, rate, x, grow, grate, gx):
    """grow[r] times (d/drate, d/dx) = (1 / rate - x, -rate), accumulated, each skippable."""
    g = grow[r]
    if grate.shape[0] != 0:
        for j in range(x.shape[1]):
            grate[r, j] += g * (like(x, 1.0) / rate[r, j] - x[r, j])
    if gx.shape[0] != 0:
        for j in range(x.shape[1]):
            gx[r, j] -= g * rate[r, j]



@rows("rate")
def exponential_kl(r, rate, rate2, c):
    """c[r] = sum_j KL(Exp(rate) || Exp(rate2)) = log rate - log rate2 + rate2 / rate - 1."""
    s = 0.0
    for j in range(rate.shape[1]):
        a, b = rate[r, j], rate2[r, j]
        s += math.log(a) - math.log(b) + b / a - 1.0
    c[r] = like(c, s)


@rows("rate")
def exponential_kl_bwd(r, rate, rate2, cw, grate, grate2):
    """cw[r] times (d/drate, d/drate2) = (1 / rate - rate2 / rate^2, 1 / rate - 1 / rate2), skippable."""
    w = cw[r]
    for j in range(rate.shape[1]):
        a, b = rate[r, j], rate2[r, j]
        if grate.shape[0] != 0:
            grate[r, j] += w * like(grate, 1.0 / a - b / (a * a))
        if grate2.shape[0] != 0:
            grate2[r, j] += w * like(grate2, 1.0 / a - 1.0 / b)


R, D = 4, 6
PARITY = {
    "exponential_sample": lambda g: (g.pos(R, D), g.u(R, D), g.out(R, D)),
    "exponential_sample_bwd": lambda g: (g.pos(R, D), g.pos(R, D), g.u(R, D), g.x(R, D), g.x(R, D)),
    "exponential_log_prob": lambda g: (g.pos(R, D), g.pos(R, D), g.out(R)),
    "exponential_log_prob_bwd": lambda g: (g.pos(R, D), g.pos(R, D), g.x(R), g.x(R, D), g.x(R, D)),
    "exponential_kl": lambda g: (g.pos(R, D), g.pos(R, D), g.out(R)),
    "exponential_kl_bwd": lambda g: (g.pos(R, D), g.pos(R, D), g.x(R), g.x(R, D), g.x(R, D)),
}
