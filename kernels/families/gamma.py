"""Gamma(concentration, rate) kernels: p(x) = rate^a x^(a - 1) exp(-rate x) / Gamma(a), x > 0.

Sampling is the inverse CDF of one uniform u per cell (the program's uniform noise, so common
random numbers hold across configuration rows): x = P^{-1}(a, u) / rate (kernels/scalar_gamma.py).
Its gradient is the implicit reparameterisation one (Figurnov, Mohamed & Mnih 2018): at fixed u,
dx/da = -(dP/da)(a, rate x) / (rate p(rate x; a)) and dx/drate = -x / rate. Forward kernels
overwrite their outputs, backward kernels accumulate (+=) and skip a gradient passed with 0 rows.
"""
from ..declare import cells, rows
from ..scalar import like
from ..scalar_gamma import gamma_icdf, gamma_icdf_dalpha, gamma_log_prob as _log_prob_term, gamma_log_prob_grad


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
    "gamma_sample": lambda g: (g.pos(R, D), g.pos(R, D), g.u(R, D), g.out(R, D)),
    "gamma_sample_bwd": lambda g: (g.pos(R, D), g.pos(R, D), g.pos(R, D), g.u(R, D), g.x(R, D), g.x(R, D),
                                   g.x(R, D)),
    "gamma_log_prob": lambda g: (g.pos(R, D), g.pos(R, D), g.pos(R, D), g.out(R)),
    "gamma_log_prob_bwd": lambda g: (g.pos(R, D), g.pos(R, D), g.pos(R, D), g.x(R), g.x(R, D), g.x(R, D),
                                     g.x(R, D)),
}
