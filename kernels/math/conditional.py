"""Noise conditioned on the hard sample, as REBAR and RELAX need it (z-tilde;
Tucker et al. 2017, appendix).

Bernoulli, z = a + L with L logistic and b = H(z): given b and v ~ U(0, 1),
  b = 1: z~ = softplus(a + log v) - log(1 - v),   dz~/da = sigmoid(a + log v)
  b = 0: z~ = log v - softplus(log(1 - v) - a),   dz~/da = sigmoid(log(1 - v) - a)
has the law of z given H(z) = b (it is a + logit(u~) with u~ uniform on the side of
sigmoid(-a) that b selects).

Categorical, z_k = a_k + g_k with g Gumbel and b = argmax z: with theta = softmax(a),
lse = logsumexp(a) and v ~ U(0, 1)^K,
  z~_b = lse - log(-log v_b)
  z~_i = lse - log(-log v_i / theta_i - log v_b)        (i != b)
has the law of z given argmax z = b (the maximum of Gumbels is Gumbel at lse; the others
are Gumbels truncated below it).
"""
import math

import numpy as np
from numba import njit

from .scalar import flog, like, logistic_parts


@njit(cache=True, error_model="numpy", inline="always")   # inlined: callers' unit loops vectorise
def logistic_given_bernoulli(a, v, b):
    """(z~, dz~/da) for one Bernoulli unit with logit a, uniform v and hard sample b, in the
    precision of a and without branches: w = a + log v if b else log(1 - v) - a, then
    z~ = softplus(w) - log(1 - v) if b else log v - softplus(w), and dz~/da = sigma(w)
    (softplus and sigma share one exp). v is one of ppl's uniforms (an odd multiple of half the
    grid step, rng.uniform_f32_from_word): 1 - v is then exact, so log(1 - v) is log1p(-v) to
    log's own accuracy, without log1p's correction (a division per unit;
    tests/kernels/test_conditional_noise.py checks every float32 uniform)."""
    lv = flog(v)
    l1v = flog(like(v, 1.0) - v)
    zero = like(a, 0.0)
    one = like(a, 1.0)
    w = (a + lv) if b > 0.5 else (l1v - a)
    e, l = logistic_parts(w)
    sp = max(w, zero) + l
    return ((sp - l1v) if b > 0.5 else (lv - sp)), (one if w >= zero else e) / (one + e)


@njit(cache=True)
def group_lse(a):
    """log sum_i exp(a_i) of one group, shifted by its maximum."""
    m = a[0]
    for i in range(1, a.shape[0]):
        m = max(m, a[i])
    s = 0.0
    for i in range(a.shape[0]):
        s += math.exp(a[i] - m)
    return m + math.log(s)


@njit(cache=True)
def gumbel_given_argmax(a, v, k, out):
    """out = z~ for one group: logits a (K,), uniforms v (K,), chosen class k."""
    K = a.shape[0]
    lse = group_lse(a)
    lvb = math.log(v[k])
    for i in range(K):
        if i == k:
            out[i] = lse - math.log(-lvb)
        else:
            theta = math.exp(a[i] - lse)
            out[i] = lse - math.log(-math.log(v[i]) / theta - lvb)


@njit(cache=True)
def fill_logistic_given_bernoulli(a, v, b, out):
    """Array form: out[r, j] = z~ of unit (r, j)."""
    for r in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[r, j] = logistic_given_bernoulli(a[r, j], v[r, j], b[r, j])[0]


@njit(cache=True)
def fill_gumbel_given_argmax(a, v, b, K, out):
    """Array form over groups of K: b one-hot, out = z~ per group."""
    tmp = np.empty(K)
    for r in range(out.shape[0]):
        for g0 in range(0, out.shape[1], K):
            k = 0
            for i in range(K):
                if b[r, g0 + i] > 0.5:
                    k = i
            gumbel_given_argmax(a[r, g0: g0 + K], v[r, g0: g0 + K], k, tmp)
            for i in range(K):
                out[r, g0 + i] = tmp[i]


@njit(cache=True)
def gumbel_given_argmax_jac(a, v, k, zt, theta, c):
    """z~ of one group (as gumbel_given_argmax) plus what its Jacobian dz~/da needs:
    theta = softmax(a) and c_i = (-log v_i) / (theta_i e_i) (c_k = 0), so that
      dz~_i/da_m = theta_m + c_i (delta_im - theta_m)."""
    K = a.shape[0]
    lse = group_lse(a)
    lvb = math.log(v[k])
    for i in range(K):
        theta[i] = math.exp(a[i] - lse)
    for i in range(K):
        if i == k:
            zt[i] = lse - math.log(-lvb)
            c[i] = 0.0
        else:
            nlv = -math.log(v[i])
            e = nlv / theta[i] - lvb
            zt[i] = lse - math.log(e)
            c[i] = nlv / (theta[i] * e)


@njit(cache=True)
def jac_t_vec(theta, c, q, out):
    """out += J^T q for one group: (J^T q)_m = theta_m sum_i q_i + q_m c_m - theta_m sum_i q_i c_i."""
    sq = 0.0
    sqc = 0.0
    for i in range(q.shape[0]):
        sq += q[i]
        sqc += q[i] * c[i]
    for m in range(q.shape[0]):
        out[m] += theta[m] * sq + q[m] * c[m] - theta[m] * sqc


@njit(cache=True)
def jac_vec(theta, c, g, out):
    """out = J g for one group: (J g)_i = t + c_i (g_i - t), t = sum_m theta_m g_m."""
    t = 0.0
    for m in range(g.shape[0]):
        t += theta[m] * g[m]
    for i in range(g.shape[0]):
        out[i] = t + c[i] * (g[i] - t)
