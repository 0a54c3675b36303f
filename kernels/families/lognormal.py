"""LogNormal(loc, scale) kernels: log x ~ N(loc, scale^2), x > 0.

Sampling from a standard normal eps: x = exp(loc + scale eps), so dx/dloc = x and dx/dscale =
x eps (pathwise, read from the draw). The log-density -log x - log scale - log(2 pi) / 2 -
d^2 / 2, d = (log x - loc) / scale, has d/dloc = d / scale, d/dscale = (d^2 - 1) / scale and
d/dx = -(1 + d / scale) / x. Forward kernels overwrite their outputs, backward kernels
accumulate (+=) and skip a gradient passed with 0 rows.
"""
import math

from ..declare import cells, rows
from ..math.scalar import fexp, flog, like


@cells("out")
def lognormal_sample(r, j, loc, scale, eps, out):
    """out = exp(loc + scale eps) (pathwise)."""
    out[r, j] = fexp(loc[r, j] + scale[r, j] * eps[r, j])


@rows("gout")
def lognormal_sample_bwd(r, loc, scale, value, eps, gout, gloc, gscale):
    """gloc += gout x ; gscale += gout x eps (each skippable)."""
    if gloc.shape[0] != 0:
        for j in range(gout.shape[1]):
            gloc[r, j] += gout[r, j] * value[r, j]
    if gscale.shape[0] != 0:
        for j in range(gout.shape[1]):
            gscale[r, j] += gout[r, j] * value[r, j] * eps[r, j]


@rows("x")
def lognormal_log_prob(r, loc, scale, x, out_rows):
    """out_rows[r] = sum_j -log x - log scale - log(2 pi) / 2 - d^2 / 2, d = (log x - loc) / scale."""
    c = like(x, 0.5 * math.log(2.0 * math.pi))
    s = like(x, 0.0)
    for j in range(x.shape[1]):
        lx = flog(x[r, j])
        d = (lx - loc[r, j]) / scale[r, j]
        s -= lx + flog(scale[r, j]) + c + like(x, 0.5) * d * d
    out_rows[r] = s


@rows("x")
def lognormal_log_prob_bwd(r, loc, scale, x, grow, gloc, gscale, gx):
    """grow[r] times (d/dloc, d/dscale, d/dx) of the log-density, accumulated, each skippable."""
    g = grow[r]
    one = like(x, 1.0)
    for j in range(x.shape[1]):
        d = (flog(x[r, j]) - loc[r, j]) / scale[r, j]
        if gloc.shape[0] != 0:
            gloc[r, j] += g * d / scale[r, j]
        if gscale.shape[0] != 0:
            gscale[r, j] += g * (d * d - one) / scale[r, j]
        if gx.shape[0] != 0:
            gx[r, j] -= g * (one + d / scale[r, j]) / x[r, j]



@rows("loc")
def lognormal_kl(r, loc, scale, loc2, scale2, c):
    """c[r] = sum_j KL(LogNormal(loc, scale) || LogNormal(loc2, scale2)), the Normals' KL of log x:
    log(scale2 / scale) + (scale^2 + (loc - loc2)^2) / (2 scale2^2) - 1/2."""
    s = 0.0
    for j in range(loc.shape[1]):
        d, a, b = loc[r, j] - loc2[r, j], scale[r, j], scale2[r, j]
        s += math.log(b) - math.log(a) + (a * a + d * d) / (2.0 * b * b) - 0.5
    c[r] = like(c, s)


@rows("loc")
def lognormal_kl_bwd(r, loc, scale, loc2, scale2, cw, gloc, gscale, gloc2, gscale2):
    """cw[r] times the KL's gradients into the four parameters (accumulated, skippable)."""
    w = cw[r]
    for j in range(loc.shape[1]):
        d, a, b = loc[r, j] - loc2[r, j], scale[r, j], scale2[r, j]
        if gloc.shape[0] != 0:
            gloc[r, j] += w * like(gloc, d / (b * b))
        if gloc2.shape[0] != 0:
            gloc2[r, j] -= w * like(gloc2, d / (b * b))
        if gscale.shape[0] != 0:
            gscale[r, j] += w * like(gscale, a / (b * b) - 1.0 / a)
        if gscale2.shape[0] != 0:
            gscale2[r, j] += w * like(gscale2, 1.0 / b - (a * a + d * d) / (b * b * b))


R, D = 4, 6
PARITY = {
    "lognormal_sample": lambda g: (g.x(R, D), g.pos(R, D), g.x(R, D), g.out(R, D)),
    "lognormal_sample_bwd": lambda g: (g.x(R, D), g.pos(R, D), g.pos(R, D), g.x(R, D), g.x(R, D), g.x(R, D),
                                       g.x(R, D)),
    "lognormal_log_prob": lambda g: (g.x(R, D), g.pos(R, D), g.pos(R, D), g.out(R)),
    "lognormal_log_prob_bwd": lambda g: (g.x(R, D), g.pos(R, D), g.pos(R, D), g.x(R), g.x(R, D), g.x(R, D),
                                         g.x(R, D)),
    "lognormal_kl": lambda g: (g.x(R, D), g.pos(R, D), g.x(R, D), g.pos(R, D), g.out(R)),
    "lognormal_kl_bwd": lambda g: (g.x(R, D), g.pos(R, D), g.x(R, D), g.pos(R, D), g.x(R), g.x(R, D), g.x(R, D),
                                   g.x(R, D), g.x(R, D)),
}
