"""RODEO kernels (kernels of estimators/rodeo.py): the leave-one-out score function over a data
row's K draws of a logit-link Bernoulli node, with control variates from the Gibbs Stein
operator applied to a learned network, and the network's variance gradient.

Layout: row r = (i K + k) S + c (data row i, draw k, configuration c); the configuration digits
of enumerated nodes below the node (`strides`, `sizes`; a neutral (1,), (1,) when none) are
marginalised: a draw's "head" row has them all 0, and its signal is F = sum rw L / sum rw over
them (their rows weigh p(c | the draw)), W = sum rw its weight. Draw j of the head row h's group
is the head row h + (j - k) S.

Per draw (b, p = sigmoid(a), D units), the flip weights w_i = q_i(1 - b_i) (p_i where b_i = 0,
1 - p_i where b_i = 1) and, for a function h of the draw's value,
    (A h)(b) = sum_i w_i (h(b^(i)) - h(b))            (b^(i): b with unit i flipped)
the sum of the single-unit Gibbs Stein operators (mean 0 under q for any h). The learned
surrogates of draw k: h_m(y) = Fbar_-k N_m(y; a_k), m = 0, 1, with Fbar_-k = mean_{j != k} F_j and
    N_m(y; a) = sum_t w_mt tanh(W_t . y + U_t . a + c_t)     (H hidden units t, a: the logits)
so that h_m of draw k is a function of the other draws (and of a_k), never of b_k. The
neighbours' pre-activations are W_t . b + U_t . a + c_t + W_ti (1 - 2 b_i): O(H) each; their
tanh (`Th`, D + 1 per unit) are kept for the variance gradient. `Pm` holds p on head rows.
    S0_k = (A h_0)(b_k)                        (scalar control variate of the baselines)
    V_kj = (A [h_1 (y - p)])(b_k)_j = (b_j - p_j) (A h_1)(b_k) + w_j (1 - 2 b_j) h_1(b_k^(j))
    g_k  = (F_k - mean_{j != k} (F_j + S0_j)) (b_k - p_k) + V_k
`rodeo_grad` adds rw[r] g_k to each row r of draw k (the group's total is W_k g_k).

Variance gradient (`rodeo_train`): v = sum_k W_k g_k (the group's logits gradient); E v does not
depend on phi (every term added has mean 0), so d E|v|^2 / dphi = 2 E <v, dv/dphi> is the
gradient of its variance:
    <v, dv/dphi> = sum_k [c0_k dS0_k/dphi + W_k <v, dV_k/dphi>],
    c0_k = -(sum_{j != k} W_j <v, s_j>) / (K - 1),   s_j = b_j - p_j,
    <v, dV_k/dphi> = sum_i w_i (<v, s_k> + v_i (1 - 2 b_i)) dh_1(b^(i))/dphi
                     - <v, s_k> (sum_i w_i) dh_1(b)/dphi,
each dh_m / dphi = Fbar_-k dN_m / dphi at the D + 1 points. Each head row writes its draw's part
to its own row of `Gp`; `rodeo_collect` sums the rows into the parameter's gradient.
Parameter vector (flat): W (H, D) | U (H, D) | c (H) | w_0 (H) | w_1 (H).
"""
import math

import numpy as np
from numba import njit

from ..declare import rows
from ..math.scalar import like


def rodeo_size(D, H):
    """The network's parameter count for D units and H hidden units."""
    return 2 * H * D + 3 * H


@njit(cache=True, error_model="numpy")
def _head(r, strides, sizes):
    """Row r with the marginalised digits set to 0: its draw's head row."""
    h = r
    for d in range(len(sizes)):
        h -= ((r // strides[d]) % sizes[d]) * strides[d]
    return h


@njit(cache=True, error_model="numpy")
def _is_head(r, strides, sizes):
    return _head(r, strides, sizes) == r


@njit(cache=True, error_model="numpy")
def _prob(a):
    """sigmoid(a) in float64."""
    a = float(a)
    if a >= 0.0:
        return 1.0 / (1.0 + math.exp(-a))
    e = math.exp(a)
    return e / (1.0 + e)


@njit(cache=True, error_model="numpy")
def _flip_weight(b, p):
    """q(1 - b): the probability of the flipped value of a unit drawn b with P(1) = p."""
    return 1.0 - p if b > 0.5 else p


@njit(cache=True, error_model="numpy")
def _loo_mean(x, h, K, S):
    """mean_{j != k} x[head of draw j], h the head row of draw k."""
    k = (h // S) % K
    tot = 0.0
    for j in range(K):
        if j != k:
            tot += float(x[h + (j - k) * S])
    return tot / (K - 1)


@njit(cache=True, error_model="numpy")
def _baseline(F, S0, h, K, S):
    """mean_{j != k} (F_j + S0_j): draw k's baseline with the other draws' Stein terms."""
    return _loo_mean(F, h, K, S) + _loo_mean(S0, h, K, S)


@rows("value")
def rodeo_signal(r, logits, value, cost, row_weights, strides, sizes, F, W, Pm):
    """On head rows: W = sum rw, F = sum rw L / sum rw over the marginalised digits (the plain
    mean where every weight is 0), Pm = sigmoid(logits)."""
    if _is_head(r, strides, sizes):
        M = 1
        for d in range(len(sizes)):
            M *= sizes[d]
        num = 0.0
        den = 0.0
        plain = 0.0
        for m in range(M):
            q = r
            left = m
            for d in range(len(sizes)):
                q += (left % sizes[d]) * strides[d]
                left //= sizes[d]
            num += float(row_weights[q]) * float(cost[q])
            den += float(row_weights[q])
            plain += float(cost[q])
        W[r] = like(W, den)
        F[r] = like(F, num / den if den > 0.0 else plain / M)
        for j in range(value.shape[1]):
            Pm[r, j] = like(Pm, _prob(logits[r, j]))


@rows("value")
def rodeo_cv(r, logits, value, Pm, F, K, S, strides, sizes, phi, H, Th, S0, V):
    """On head rows: the hidden units at the draw and its D flips, Th[r, t (D + 1) + i] = tanh of
    unit t at flip i (i = D: the draw); S0 = (A h_0)(b) and V[r] = (A [h_1 (y - p)])(b)."""
    if _is_head(r, strides, sizes):
        D = value.shape[1]
        fbar = _loo_mean(F, r, K, S)
        n0 = 0.0
        n1 = 0.0
        for t in range(H):
            z = float(phi[2 * H * D + t])
            for j in range(D):
                z += float(phi[t * D + j]) * float(value[r, j]) + float(phi[H * D + t * D + j]) * float(logits[r, j])
            for i in range(D):
                zi = z + float(phi[t * D + i]) * (1.0 - 2.0 * float(value[r, i]))
                Th[r, t * (D + 1) + i] = like(Th, math.tanh(zi))
            th = math.tanh(z)
            Th[r, t * (D + 1) + D] = like(Th, th)
            n0 += float(phi[2 * H * D + H + t]) * th
            n1 += float(phi[2 * H * D + 2 * H + t]) * th
        s0 = 0.0
        d1 = 0.0
        for i in range(D):
            b = float(value[r, i])
            w = _flip_weight(b, float(Pm[r, i]))
            e0 = 0.0
            e1 = 0.0
            for t in range(H):
                th = float(Th[r, t * (D + 1) + i])
                e0 += float(phi[2 * H * D + H + t]) * th
                e1 += float(phi[2 * H * D + 2 * H + t]) * th
            s0 += w * (e0 - n0)
            d1 += w * (e1 - n1)
            V[r, i] = like(V, fbar * w * (1.0 - 2.0 * b) * e1)
        S0[r] = like(S0, fbar * s0)
        for j in range(D):
            V[r, j] += like(V, (float(value[r, j]) - float(Pm[r, j])) * fbar * d1)


@rows("value")
def rodeo_grad(r, value, Pm, F, S0, V, row_weights, K, S, strides, sizes, grad_logits):
    """grad_logits[r] += rw[r] g_k, g_k = (F_k - mean_{j != k} (F_j + S0_j)) (b_k - p_k) + V_k read
    at the head row of r's draw."""
    if grad_logits.shape[0] != 0:
        h = _head(r, strides, sizes)
        sig = float(F[h]) - _baseline(F, S0, h, K, S)
        w = float(row_weights[r])
        for j in range(value.shape[1]):
            g = sig * (float(value[h, j]) - float(Pm[h, j])) + float(V[h, j])
            grad_logits[r, j] += like(grad_logits, w * g)


@njit(cache=True, error_model="numpy")
def _group_v(value, Pm, F, W, S0, V, h, K, S, Vv):
    """Vv[h] = v = sum_k W_k g_k over h's group; returns the sum of W_j <v, s_j> over it."""
    k = (h // S) % K
    D = value.shape[1]
    for j in range(D):
        Vv[h, j] = like(Vv, 0.0)
    for l in range(K):
        q = h + (l - k) * S
        sig = float(F[q]) - _baseline(F, S0, q, K, S)
        for j in range(D):
            g = sig * (float(value[q, j]) - float(Pm[q, j])) + float(V[q, j])
            Vv[h, j] += like(Vv, float(W[q]) * g)
    tot = 0.0
    for l in range(K):
        q = h + (l - k) * S
        tot += float(W[q]) * _vs(value, Pm, Vv, h, q)
    return tot


@njit(cache=True, error_model="numpy")
def _vs(value, Pm, Vv, h, q):
    """<v, s_q>: v (Vv[h]) against draw q's b - p."""
    s = 0.0
    for j in range(value.shape[1]):
        s += float(Vv[h, j]) * (float(value[q, j]) - float(Pm[q, j]))
    return s


@rows("value")
def rodeo_train(r, logits, value, Pm, F, W, S0, V, Th, K, S, strides, sizes, phi, H, Vv, Gp):
    """Gp[r] = this draw's part of d |v|^2 / dphi (head rows; 0 on the others)."""
    for p in range(Gp.shape[1]):
        Gp[r, p] = like(Gp, 0.0)
    if _is_head(r, strides, sizes):
        D = value.shape[1]
        tot = _group_v(value, Pm, F, W, S0, V, r, K, S, Vv)
        vs = _vs(value, Pm, Vv, r, r)
        wk = float(W[r])
        c0 = -(tot - wk * vs) / (K - 1)
        mult = 2.0 * _loo_mean(F, r, K, S)
        wsum = 0.0
        for i in range(D):
            wsum += _flip_weight(float(value[r, i]), float(Pm[r, i]))
        b0 = -c0 * wsum
        b1 = -wk * vs * wsum
        for t in range(H):
            w0 = float(phi[2 * H * D + H + t])
            w1 = float(phi[2 * H * D + 2 * H + t])
            th = float(Th[r, t * (D + 1) + D])
            dt = (b0 * w0 + b1 * w1) * (1.0 - th * th)
            g0 = b0 * th
            g1 = b1 * th
            for i in range(D):
                b = float(value[r, i])
                w = _flip_weight(b, float(Pm[r, i]))
                ti = float(Th[r, t * (D + 1) + i])
                bi0 = c0 * w
                bi1 = wk * w * (vs + float(Vv[r, i]) * (1.0 - 2.0 * b))
                di = (bi0 * w0 + bi1 * w1) * (1.0 - ti * ti)
                g0 += bi0 * ti
                g1 += bi1 * ti
                dt += di
                Gp[r, t * D + i] = like(Gp, mult * di * (1.0 - 2.0 * b))
            for j in range(D):
                Gp[r, t * D + j] += like(Gp, mult * dt * float(value[r, j]))
                Gp[r, H * D + t * D + j] = like(Gp, mult * dt * float(logits[r, j]))
            Gp[r, 2 * H * D + t] = like(Gp, mult * dt)
            Gp[r, 2 * H * D + H + t] = like(Gp, mult * g0)
            Gp[r, 2 * H * D + 2 * H + t] = like(Gp, mult * g1)


@rows("grad_phi")
def rodeo_collect(p, Gp, grad_phi):
    """grad_phi[p] += sum_r Gp[r, p]."""
    s = 0.0
    for r in range(Gp.shape[0]):
        s += float(Gp[r, p])
    grad_phi[p] += like(grad_phi, s)


def init(D, H, seed=0):
    """The network's initial parameters: W, U, c ~ N(0, 0.1^2), w_0 = w_1 = 0 (no control variate:
    the leave-one-out estimate, whose variance gradient starts the training of w_0, w_1)."""
    phi = np.random.default_rng(seed).normal(0.0, 0.1, rodeo_size(D, H))
    phi[2 * H * D + H:] = 0.0
    return phi


# 2 data rows x K = 3 draws x S = 2 configurations (an enumerated digit of 2, stride 1); D = 3, H = 2
_R, _D, _K, _S, _H = 12, 3, 3, 2, 2
_P = 2 * _H * _D + 3 * _H
PARITY = {
    "rodeo_signal": lambda g: (g.x(_R, _D), g.bits(_R, _D), g.x(_R), g.pos(_R), (1,), (2,), g.out(_R), g.out(_R),
                               g.out(_R, _D)),
    "rodeo_cv": lambda g: (g.x(_R, _D), g.bits(_R, _D), g.u(_R, _D), g.x(_R), _K, _S, (1,), (2,), g.x(_P), _H,
                           g.out(_R, _H * (_D + 1)), g.out(_R), g.out(_R, _D)),
    "rodeo_grad": lambda g: (g.bits(_R, _D), g.u(_R, _D), g.x(_R), g.x(_R), g.x(_R, _D), g.pos(_R), _K, _S, (1,), (2,),
                             g.x(_R, _D)),
    "rodeo_train": lambda g: (g.x(_R, _D), g.bits(_R, _D), g.u(_R, _D), g.x(_R), g.pos(_R), g.x(_R), g.x(_R, _D),
                              g.u(_R, _H * (_D + 1)), _K, _S, (1,), (2,), g.x(_P), _H, g.out(_R, _D), g.out(_R, _P)),
    "rodeo_collect": lambda g: (g.x(_R, _P), g.x(_P)),
}
