"""HalfCauchy(scale) kernels: density 2 / (pi scale (1 + (x / scale)^2)), x >= 0.

Sampling is the inverse CDF of a uniform u in (0, 1): x = scale tan(pi u / 2), so dx/dscale =
tan(pi u / 2) (pathwise). The log-density log(2 / pi) - log scale - log(1 + z^2), z = x / scale,
has d/dscale = (2 z^2 / (1 + z^2) - 1) / scale and d/dx = -2 z / (scale (1 + z^2)). Forward
kernels overwrite their outputs, backward kernels accumulate (+=) and skip a gradient passed
with 0 rows.
"""
import math

from ..declare import cells, rows
from ..math.scalar import flog, flog1p, like


@cells("out")
def half_cauchy_sample(r, j, scale, u, out):
    """out = scale tan(pi u / 2) (pathwise)."""
    out[r, j] = scale[r, j] * math.tan(like(u, 0.5 * math.pi) * u[r, j])


@rows("gout")
def half_cauchy_sample_bwd(r, u, gout, gscale):
    """gscale += gout tan(pi u / 2) (skippable)."""
    if gscale.shape[0] != 0:
        for j in range(gout.shape[1]):
            gscale[r, j] += gout[r, j] * math.tan(like(u, 0.5 * math.pi) * u[r, j])


@rows("x")
def half_cauchy_log_prob(r, scale, x, out_rows):
    """out_rows[r] = sum_j log(2 / pi) - log scale - log(1 + (x / scale)^2)."""
    c = like(x, math.log(2.0 / math.pi))
    s = like(x, 0.0)
    for j in range(x.shape[1]):
        z = x[r, j] / scale[r, j]
        s += c - flog(scale[r, j]) - flog1p(z * z)
    out_rows[r] = s


@rows("x")
def half_cauchy_log_prob_bwd(r, scale, x, grow, gscale, gx):
    """grow[r] times (d/dscale, d/dx) of the log-density, accumulated, each skippable."""
    g = grow[r]
    one = like(x, 1.0)
    for j in range(x.shape[1]):
        z = x[r, j] / scale[r, j]
        q = one + z * z
        if gscale.shape[0] != 0:
            gscale[r, j] += g * (like(x, 2.0) * z * z / q - one) / scale[r, j]
        if gx.shape[0] != 0:
            gx[r, j] -= g * like(x, 2.0) * z / (scale[r, j] * q)



@rows("scale")
def half_cauchy_kl(r, scale, scale2, c):
    """c[r] = sum_j KL(HalfCauchy(scale) || HalfCauchy(scale2)) = log((scale + scale2)^2 / (4 scale
    scale2)) (the Cauchys' at loc 0, Chyzak & Nielsen 2019: the density ratio is the same on both halves)."""
    s = 0.0
    for j in range(scale.shape[1]):
        a, b = scale[r, j], scale2[r, j]
        s += 2.0 * math.log(a + b) - math.log(4.0 * a * b)
    c[r] = like(c, s)


@rows("scale")
def half_cauchy_kl_bwd(r, scale, scale2, cw, gscale, gscale2):
    """cw[r] times (2 / (scale + scale2) - 1 / scale, 2 / (scale + scale2) - 1 / scale2), skippable."""
    w = cw[r]
    for j in range(scale.shape[1]):
        a, b = scale[r, j], scale2[r, j]
        if gscale.shape[0] != 0:
            gscale[r, j] += w * like(gscale, 2.0 / (a + b) - 1.0 / a)
        if gscale2.shape[0] != 0:
            gscale2[r, j] += w * like(gscale2, 2.0 / (a + b) - 1.0 / b)


R, D = 4, 6
PARITY = {
    "half_cauchy_sample": lambda g: (g.pos(R, D), g.u(R, D), g.out(R, D)),
    "half_cauchy_sample_bwd": lambda g: (g.u(R, D), g.x(R, D), g.x(R, D)),
    "half_cauchy_log_prob": lambda g: (g.pos(R, D), g.pos(R, D), g.out(R)),
    "half_cauchy_log_prob_bwd": lambda g: (g.pos(R, D), g.pos(R, D), g.x(R), g.x(R, D), g.x(R, D)),
    "half_cauchy_kl": lambda g: (g.pos(R, D), g.pos(R, D), g.out(R)),
    "half_cauchy_kl_bwd": lambda g: (g.pos(R, D), g.pos(R, D), g.x(R), g.x(R, D), g.x(R, D)),
}
