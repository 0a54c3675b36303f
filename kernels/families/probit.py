"""Probit units, P(b = 1) = Phi(a): the sample (standard normal noise), the log-probability and
its VJP, and straight-through's backward.

    log p(x) = x log Phi(a) + (1 - x) log Phi(-a)   (stable log_ndtr tails; x may be relaxed),
    d/da = x M(a) - (1 - x) M(-a),  M = phi / Phi (the inverse Mills ratio),
    d/dx = log Phi(a) - log Phi(-a).

Declared once (kernels/declare.py): the sample and straight-through's backward are cell bodies,
the log-probability and its VJP row bodies (each skippable gradient tested once per row). The
conventions are cpu/core.py's: forward kernels overwrite, backward kernels accumulate (+=) and
skip a gradient passed with 0 rows.
"""
from ..declare import cells, rows
from ..math.scalar import like, norm_pdf, probit_log_odds, probit_log_prob_term, probit_score, threshold


@cells("out")
def probit_sample(r, j, a, noise, out):
    """out = H(a + eps), eps standard normal: P(out = 1) = Phi(a) (binary stochastic neuron)."""
    out[r, j] = threshold(a[r, j], noise[r, j])


@rows("x")
def probit_log_prob(r, a, x, out_rows):
    """out_rows[r] = sum_j x log Phi(a) + (1 - x) log Phi(-a) (stable log_ndtr tails)."""
    s = like(x, 0.0)
    for j in range(x.shape[1]):
        s += probit_log_prob_term(a[r, j], x[r, j])
    out_rows[r] = s


@rows("x")
def probit_log_prob_bwd(r, a, x, grow, ga, gx):
    """ga += grow (x M(a) - (1 - x) M(-a)), M = phi / Phi (inverse Mills ratio);
    gx += grow (log Phi(a) - log Phi(-a)). Both skippable."""
    g = grow[r]
    if ga.shape[0] != 0:
        for j in range(x.shape[1]):
            ga[r, j] += g * probit_score(a[r, j], x[r, j])
    if gx.shape[0] != 0:
        for j in range(x.shape[1]):
            gx[r, j] += g * probit_log_odds(a[r, j])


@cells("gx")
def probit_st_bwd(r, j, a, gx, ga):
    """Straight-through with Gaussian noise (Bengio et al. 2013): ga += gx dPhi/da = gx phi(a)."""
    ga[r, j] += gx[r, j] * norm_pdf(a[r, j])


R, D = 4, 6
PARITY = {
    "probit_sample": lambda g: (g.x(R, D), g.x(R, D), g.out(R, D)),
    "probit_log_prob": lambda g: (4 * g.x(R, D), g.u(R, D), g.out(R)),
    "probit_log_prob_bwd": lambda g: (4 * g.x(R, D), g.bits(R, D), g.x(R), g.x(R, D), g.x(R, D)),
    "probit_st_bwd": lambda g: (g.x(R, D), g.x(R, D), g.x(R, D)),
}
