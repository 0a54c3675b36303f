"""Laplace(loc, scale) kernels: density p(x) = exp(-|x - loc| / scale) / (2 scale).

Sampling is the inverse CDF of a uniform u in (0, 1) (the program's uniform noise; rng.py's
grids never hold 0, 1 or 1/2, so every draw is finite):
    eps = sign(u - 1/2) * -log(1 - 2 |u - 1/2|),   x = loc + scale * eps,
so the pathwise gradient is dx/dloc = 1, dx/dscale = eps. The log-density's gradient:
    d/dloc = sign(x - loc) / scale,  d/dscale = |x - loc| / scale^2 - 1 / scale,  d/dx = -d/dloc
(the subgradient 0 at x = loc, a set of probability zero). Forward kernels overwrite their
outputs, backward kernels accumulate (+=) and skip a gradient passed with 0 rows.
"""
from numba import njit

from ..declare import cells, rows
from ..math.scalar import flog, flog1p, like


@njit(cache=True, error_model="numpy")
def _eps(u):
    """The standard Laplace draw of uniform u (inverse CDF)."""
    d = u - like(u, 0.5)
    m = -flog1p(like(u, -2.0) * abs(d))
    return m if d > 0 else -m


@njit(cache=True, error_model="numpy")
def _log_prob_term(x, loc, scale):
    """log p(x) = -log(2 scale) - |x - loc| / scale."""
    return -flog(like(x, 2.0) * scale) - abs(x - loc) / scale


@njit(cache=True, error_model="numpy")
def _log_prob_grad(x, loc, scale):
    """(d/dloc, d/dscale) of log p(x); d/dx = -d/dloc."""
    d = x - loc
    s = like(x, 1.0) if d > 0 else (like(x, -1.0) if d < 0 else like(x, 0.0))
    return s / scale, (abs(d) / scale - like(x, 1.0)) / scale


@cells("out")
def laplace_sample(r, j, loc, scale, u, out):
    """out = loc + scale * eps(u) (pathwise)."""
    out[r, j] = loc[r, j] + scale[r, j] * _eps(u[r, j])


@rows("gout")
def laplace_sample_bwd(r, u, gout, gloc, gscale):
    """gloc += gout ; gscale += gout * eps(u) (each skippable)."""
    if gloc.shape[0] != 0:
        for j in range(gout.shape[1]):
            gloc[r, j] += gout[r, j]
    if gscale.shape[0] != 0:
        for j in range(gout.shape[1]):
            gscale[r, j] += gout[r, j] * _eps(u[r, j])


@rows("x")
def laplace_log_prob(r, loc, scale, x, out_rows):
    """out_rows[r] = sum_j log p(x[r, j] | loc, scale)."""
    s = like(x, 0.0)
    for j in range(x.shape[1]):
        s += _log_prob_term(x[r, j], loc[r, j], scale[r, j])
    out_rows[r] = s


@rows("x")
def laplace_log_prob_bwd(r, loc, scale, x, grow, gloc, gscale, gx):
    """grow[r] times the gradients of log p(x) into gloc, gscale, gx (accumulated, skippable)."""
    do_l = gloc.shape[0] != 0
    do_s = gscale.shape[0] != 0
    do_x = gx.shape[0] != 0
    g = grow[r]
    for j in range(x.shape[1]):
        dl, ds = _log_prob_grad(x[r, j], loc[r, j], scale[r, j])
        if do_l:
            gloc[r, j] += g * dl
        if do_s:
            gscale[r, j] += g * ds
        if do_x:
            gx[r, j] -= g * dl


R, D = 4, 6
PARITY = {
    "laplace_sample": lambda g: (g.x(R, D), g.pos(R, D), g.u(R, D), g.out(R, D)),
    "laplace_sample_bwd": lambda g: (g.u(R, D), g.x(R, D), g.x(R, D), g.x(R, D)),
    "laplace_log_prob": lambda g: (g.x(R, D), g.pos(R, D), g.x(R, D), g.out(R)),
    "laplace_log_prob_bwd": lambda g: (g.x(R, D), g.pos(R, D), g.x(R, D), g.x(R), g.x(R, D), g.skip(2),
                                       g.x(R, D)),
}
