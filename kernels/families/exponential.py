"""Exponential(rate) kernels: density rate exp(-rate x), x > 0.

Sampling is the inverse CDF of a uniform u in (0, 1) (rng.py's grids never hold 0 or 1):
    eps = -log(1 - u),   x = eps / rate,
so the pathwise gradient, read from the draw (implicit form), is dx/drate = -x / rate. The
log-density log rate - rate x has d/drate = 1 / rate - x and d/dx = -rate. Forward kernels
overwrite their outputs, backward kernels accumulate (+=) and skip a gradient passed with 0 rows.
"""
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


R, D = 4, 6
PARITY = {
    "exponential_sample": lambda g: (g.pos(R, D), g.u(R, D), g.out(R, D)),
    "exponential_sample_bwd": lambda g: (g.pos(R, D), g.pos(R, D), g.u(R, D), g.x(R, D), g.x(R, D)),
    "exponential_log_prob": lambda g: (g.pos(R, D), g.pos(R, D), g.out(R)),
    "exponential_log_prob_bwd": lambda g: (g.pos(R, D), g.pos(R, D), g.x(R), g.x(R, D), g.x(R, D)),
}
