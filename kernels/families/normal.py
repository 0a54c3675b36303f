"""Normal(loc, scale) units: the pathwise sample x = mu + sigma eps (Kingma & Welling 2014) and
its VJP, the log-density and its VJP:

    log N(x; mu, sigma^2) = -log(2 pi) / 2 - log sigma - (x - mu)^2 / (2 sigma^2),
    d/dmu = (x - mu) / sigma^2,  d/dsigma = (x - mu)^2 / sigma^3 - 1 / sigma,  d/dx = -d/dmu.

Declared once (kernels/declare.py): the sample is a cell body, the others row bodies (each
skippable gradient tested once per row). The conventions are cpu/core.py's: forward kernels
overwrite, backward kernels accumulate (+=) and skip a gradient passed with 0 rows.
"""
from ..declare import cells, rows
from ..math.scalar import gaussian_nll_grad, gaussian_nll_term, like, normal_reparam


@cells("out")
def normal_sample(r, j, loc, scale, eps, out):
    """out = mu + sigma eps, the pathwise reparameterisation (Kingma & Welling 2014)."""
    out[r, j] = normal_reparam(loc[r, j], scale[r, j], eps[r, j])


@rows("gout")
def normal_sample_bwd(r, eps, gout, gloc, gscale):
    """gloc += gout ; gscale += gout eps (each skippable)."""
    if gloc.shape[0] != 0:
        for j in range(gout.shape[1]):
            gloc[r, j] += gout[r, j]
    if gscale.shape[0] != 0:
        for j in range(gout.shape[1]):
            gscale[r, j] += gout[r, j] * eps[r, j]


@rows("x")
def normal_log_prob(r, loc, scale, x, out_rows):
    """out_rows[r] = sum_j -log(2 pi)/2 - log sigma - (x - mu)^2 / (2 sigma^2), the Gaussian log-likelihood."""
    s = like(x, 0.0)
    for j in range(x.shape[1]):
        s -= gaussian_nll_term(x[r, j], loc[r, j], scale[r, j])
    out_rows[r] = s


@rows("x")
def normal_log_prob_bwd(r, loc, scale, x, grow, gloc, gscale, gx):
    """Gradients of log N(x; mu, sigma^2): d/dmu = (x - mu)/sigma^2 ; d/dsigma = (x - mu)^2/sigma^3 - 1/sigma ;
    d/dx = -(x - mu)/sigma^2; each times grow[r], accumulated, each skippable."""
    do_l = gloc.shape[0] != 0
    do_s = gscale.shape[0] != 0
    do_x = gx.shape[0] != 0
    g = grow[r]
    for j in range(x.shape[1]):
        # log N = -gaussian_nll_term: d/dx = -q, d/dmu = q, d/dsigma = -w
        q, w = gaussian_nll_grad(x[r, j], loc[r, j], scale[r, j])
        if do_l:
            gloc[r, j] += g * q
        if do_s:
            gscale[r, j] -= g * w
        if do_x:
            gx[r, j] -= g * q


R, D = 4, 6
PARITY = {
    "normal_sample": lambda g: (g.x(R, D), g.pos(R, D), g.x(R, D), g.out(R, D)),
    "normal_sample_bwd": lambda g: (g.x(R, D), g.x(R, D), g.skip(2), g.x(R, D)),
    "normal_log_prob": lambda g: (g.x(R, D), g.pos(R, D), g.x(R, D), g.out(R)),
    "normal_log_prob_bwd": lambda g: (g.x(R, D), g.pos(R, D), g.x(R, D), g.x(R), g.x(R, D), g.x(R, D), g.x(R, D)),
}
