"""Dirichlet(alpha) kernels over groups of K columns: p(x) = Gamma(A) prod_k x_k^(a_k - 1) / Gamma(a_k),
A = sum_k a_k, x on the simplex; a (R, G * K) array holds G groups (K is passed after the inputs,
as the step does for a grouped law).

Sampling is one uniform per column (the program's uniform noise, so common random numbers hold
across configuration rows): x_k = G_k / sum_j G_j, G_k = P^{-1}(a_k, u_k), normalised in log space
(kernels/math/gamma.py's dirichlet_sample_group). Its gradient at fixed uniforms is the implicit
reparameterisation one (Figurnov, Mohamed & Mnih 2018): dx_i/da_j = x_i (delta_ij - x_j) dlog G_j/da_j
(dirichlet_sample_vjp_group, one recomputed quantile per group). The log-density's partials are in
the free coordinates; the sampler's Jacobian keeps a value's cotangent on the simplex. Forward
kernels overwrite their outputs, backward kernels accumulate (+=) and skip a gradient passed with
0 rows.
"""
import math

import numpy as np

from ..declare import rows
from ..math.scalar import like
from ..math.gamma import digamma
from .gamma import _trigamma
from ..math.gamma import (dirichlet_log_prob_grad_group, dirichlet_log_prob_group, dirichlet_sample_group,
                            dirichlet_sample_vjp_group)


@rows("out")
def dirichlet_sample(r, alpha, u, K, out):
    """out[r, group] = G_k / sum_j G_j over each group of K columns, G_k = P^{-1}(alpha_k, u_k)."""
    for c0 in range(0, out.shape[1], K):
        dirichlet_sample_group(alpha, u, r, c0, K, out)


@rows("gout")
def dirichlet_sample_bwd(r, alpha, value, u, gout, K, galpha):
    """galpha += the implicit VJP of the draw at fixed uniforms, per group (skippable)."""
    if galpha.shape[0] != 0:
        for c0 in range(0, gout.shape[1], K):
            dirichlet_sample_vjp_group(alpha, u, value, gout, r, c0, K, galpha)


@rows("x")
def dirichlet_log_prob(r, alpha, x, K, out_rows):
    """out_rows[r] = sum over the groups of log p(x_group | alpha_group)."""
    s = like(x, 0.0)
    for c0 in range(0, x.shape[1], K):
        s += dirichlet_log_prob_group(alpha, x, r, c0, K)
    out_rows[r] = s


@rows("x")
def dirichlet_log_prob_bwd(r, alpha, x, K, grow, galpha, gx):
    """grow[r] times the partials of log p(x) into galpha, gx (accumulated, each skippable)."""
    for c0 in range(0, x.shape[1], K):
        dirichlet_log_prob_grad_group(alpha, x, grow[r], r, c0, K, galpha, gx)


def _simplex(g, R, G, K):
    x = g.pos(R, G * K)
    for c0 in range(0, G * K, K):
        x[:, c0:c0 + K] /= x[:, c0:c0 + K].sum(axis=1, keepdims=True)
    return x


def _drawn(g, R, G, K):
    """(alpha, the draw, its uniforms): the backward reads the draw its uniforms made."""
    alpha, u, x = g.pos(R, G * K), g.u(R, G * K), g.out(R, G * K)
    dirichlet_sample(alpha, u, K, x)
    return alpha, x, u


R, G, K = 4, 2, 3
PARITY = {
    "dirichlet_kl": lambda g: (g.pos(R, G * K), g.pos(R, G * K), K, g.out(R)),
    "dirichlet_kl_bwd": lambda g: (g.pos(R, G * K), g.pos(R, G * K), K, g.x(R), g.x(R, G * K), g.x(R, G * K)),
    "dirichlet_sample": lambda g: (g.pos(R, G * K), g.u(R, G * K), K, g.out(R, G * K)),
    "dirichlet_sample_bwd": lambda g: (*_drawn(g, R, G, K), g.x(R, G * K), K, g.x(R, G * K)),
    "dirichlet_log_prob": lambda g: (g.pos(R, G * K), _simplex(g, R, G, K), K, g.out(R)),
    "dirichlet_log_prob_bwd": lambda g: (g.pos(R, G * K), _simplex(g, R, G, K), K, g.x(R), g.x(R, G * K),
                                         g.x(R, G * K)),
}


# ---- KL(Dir(alpha) || Dir(beta)) per group, closed form (ppl.dist.Dirichlet priors, kl="analytic")
@rows("alpha")
def dirichlet_kl(r, alpha, beta, K, c):
    """c[r] = sum over groups of lgamma(A) - sum lgamma(alpha_k) - lgamma(B) + sum lgamma(beta_k)
    + sum (alpha_k - beta_k) (psi(alpha_k) - psi(A)), A, B the groups' sums."""
    s = 0.0
    for c0 in range(0, alpha.shape[1], K):
        A = 0.0
        B = 0.0
        for k in range(K):
            A += np.float64(alpha[r, c0 + k])
            B += np.float64(beta[r, c0 + k])
        s += math.lgamma(A) - math.lgamma(B)
        dA = digamma(A)
        for k in range(K):
            a, b = np.float64(alpha[r, c0 + k]), np.float64(beta[r, c0 + k])
            s += math.lgamma(b) - math.lgamma(a) + (a - b) * (digamma(a) - dA)
    c[r] = like(c, s)


@rows("alpha")
def dirichlet_kl_bwd(r, alpha, beta, K, cw, galpha, gbeta):
    """cw[r] times the KL's gradients: d/dalpha_k = (alpha_k - beta_k) psi'(alpha_k) - (A - B)
    psi'(A); d/dbeta_k = psi(beta_k) - psi(B) - psi(alpha_k) + psi(A) (each skippable)."""
    w = cw[r]
    for c0 in range(0, alpha.shape[1], K):
        A = 0.0
        B = 0.0
        for k in range(K):
            A += np.float64(alpha[r, c0 + k])
            B += np.float64(beta[r, c0 + k])
        tA, dA, dB = _trigamma(A), digamma(A), digamma(B)
        for k in range(K):
            a, b = np.float64(alpha[r, c0 + k]), np.float64(beta[r, c0 + k])
            if galpha.shape[0] != 0:
                galpha[r, c0 + k] += w * like(galpha, (a - b) * _trigamma(a) - (A - B) * tA)
            if gbeta.shape[0] != 0:
                gbeta[r, c0 + k] += w * like(gbeta, digamma(b) - dB - digamma(a) + dA)
