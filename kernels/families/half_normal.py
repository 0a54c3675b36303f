"""HalfNormal(scale) kernels: density sqrt(2 / pi) / scale exp(-x^2 / (2 scale^2)), x >= 0.

Sampling from a standard normal eps: x = scale |eps|, so dx/dscale = |eps| (pathwise). The
log-density log sqrt(2 / pi) - log scale - x^2 / (2 scale^2) has d/dscale = x^2 / scale^3 -
1 / scale and d/dx = -x / scale^2. Forward kernels overwrite their outputs, backward kernels
accumulate (+=) and skip a gradient passed with 0 rows.
"""
import math

from ..declare import cells, rows
from ..math.scalar import flog, like


@cells("out")
def half_normal_sample(r, j, scale, eps, out):
    """out = scale |eps| (pathwise)."""
    out[r, j] = scale[r, j] * abs(eps[r, j])


@rows("gout")
def half_normal_sample_bwd(r, eps, gout, gscale):
    """gscale += gout |eps| (skippable)."""
    if gscale.shape[0] != 0:
        for j in range(gout.shape[1]):
            gscale[r, j] += gout[r, j] * abs(eps[r, j])


@rows("x")
def half_normal_log_prob(r, scale, x, out_rows):
    """out_rows[r] = sum_j log sqrt(2 / pi) - log scale - x^2 / (2 scale^2)."""
    c = like(x, 0.5 * math.log(2.0 / math.pi))
    s = like(x, 0.0)
    for j in range(x.shape[1]):
        z = x[r, j] / scale[r, j]
        s += c - flog(scale[r, j]) - like(x, 0.5) * z * z
    out_rows[r] = s


@rows("x")
def half_normal_log_prob_bwd(r, scale, x, grow, gscale, gx):
    """grow[r] times (d/dscale, d/dx) = ((z^2 - 1) / scale, -z / scale), z = x / scale."""
    g = grow[r]
    for j in range(x.shape[1]):
        z = x[r, j] / scale[r, j]
        if gscale.shape[0] != 0:
            gscale[r, j] += g * (z * z - like(x, 1.0)) / scale[r, j]
        if gx.shape[0] != 0:
            gx[r, j] -= g * z / scale[r, j]



@rows("scale")
def half_normal_kl(r, scale, scale2, c):
    """c[r] = sum_j KL(HalfNormal(scale) || HalfNormal(scale2)) = log(scale2 / scale) + scale^2 /
    (2 scale2^2) - 1/2 (the Normals' at loc 0: the density ratio is the same on both halves)."""
    s = 0.0
    for j in range(scale.shape[1]):
        a, b = scale[r, j], scale2[r, j]
        s += math.log(b) - math.log(a) + a * a / (2.0 * b * b) - 0.5
    c[r] = like(c, s)


@rows("scale")
def half_normal_kl_bwd(r, scale, scale2, cw, gscale, gscale2):
    """cw[r] times (-1 / scale + scale / scale2^2, 1 / scale2 - scale^2 / scale2^3), skippable."""
    w = cw[r]
    for j in range(scale.shape[1]):
        a, b = scale[r, j], scale2[r, j]
        if gscale.shape[0] != 0:
            gscale[r, j] += w * like(gscale, a / (b * b) - 1.0 / a)
        if gscale2.shape[0] != 0:
            gscale2[r, j] += w * like(gscale2, 1.0 / b - a * a / (b * b * b))


R, D = 4, 6
PARITY = {
    "half_normal_sample": lambda g: (g.pos(R, D), g.x(R, D), g.out(R, D)),
    "half_normal_sample_bwd": lambda g: (g.x(R, D), g.x(R, D), g.x(R, D)),
    "half_normal_log_prob": lambda g: (g.pos(R, D), g.pos(R, D), g.out(R)),
    "half_normal_log_prob_bwd": lambda g: (g.pos(R, D), g.pos(R, D), g.x(R), g.x(R, D), g.x(R, D)),
    "half_normal_kl": lambda g: (g.pos(R, D), g.pos(R, D), g.out(R)),
    "half_normal_kl_bwd": lambda g: (g.pos(R, D), g.pos(R, D), g.x(R), g.x(R, D), g.x(R, D)),
}
