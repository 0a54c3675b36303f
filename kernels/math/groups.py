"""Per-group helpers of the softmax-group kernels (categorical, Gumbel-softmax, softmax,
softmax cross-entropy), shared by the CPU and CUDA kernels.

Each helper is the body for one (row, group) of K columns: it reads and writes array
elements at a given (row, column) -- still no allocation -- so one thread of a CUDA kernel
runs exactly the body one iteration of the CPU loop runs. Otherwise ``scalar.py``'s rules
hold: ``@njit(cache=True)``, ``error_model="numpy"``, constants through ``like``, and
helpers called by their global name (``device()`` re-jits a helper with this module's
globals), hence the plain-name imports from ``scalar.py``.
"""
from numba import njit

from .scalar import fexp, flog, like


# ------------------------------------------------------ per-group helpers (softmax groups)
# A categorical node's (R, G*K) array holds G groups of K classes: group g = columns
# c0 = g*K .. c0+K-1 of a row. Each helper is the body for one (row, group).


@njit(cache=True, error_model="numpy")
def logsumexp_group(a, r, c0, K):
    """(m, l) for the group a[r, c0:c0+K]: m = max_k a_k, l = log sum_k exp(a_k - m).

    logsumexp = m + l; log softmax_k = (a_k - m) - l, which keeps full relative accuracy
    of the small differences even when |a| ~ 1e4 (never exp of a large number).
    """
    m = a[r, c0]
    for k in range(1, K):
        v = a[r, c0 + k]
        if v > m:
            m = v
    s = like(m, 0.0)
    for k in range(K):
        s += fexp(a[r, c0 + k] - m)
    return m, flog(s)


@njit(cache=True, error_model="numpy")
def categorical_sample_group(logits, gumbel, r, c0, K, out):
    """One-hot of argmax_k (a_k + g_k), g standard Gumbel (Gumbel-max trick)."""
    one = like(out[r, c0], 1.0)
    zero = like(out[r, c0], 0.0)
    best = 0
    bv = logits[r, c0] + gumbel[r, c0]
    out[r, c0] = zero
    for k in range(1, K):
        v = logits[r, c0 + k] + gumbel[r, c0 + k]
        out[r, c0 + k] = zero
        if v > bv:
            bv = v
            best = k
    out[r, c0 + best] = one


@njit(cache=True, error_model="numpy")
def categorical_icdf_group(logits, thr, r, c0, K, out):
    """One-hot of the smallest k with sum_{i<=k} softmax(a)_i > thr (inverse CDF); if rounding
    leaves the cumulative sum short of thr, the last class with non-zero probability."""
    one = like(out[r, c0], 1.0)
    zero = like(out[r, c0], 0.0)
    m, ls = logsumexp_group(logits, r, c0, K)
    cum = zero
    pick = -1
    last = 0
    for k in range(K):
        p = fexp((logits[r, c0 + k] - m) - ls)
        out[r, c0 + k] = zero
        if p > 0:
            last = k
        cum += p
        if pick < 0 and cum > thr and p > 0:
            pick = k
    if pick < 0:
        pick = last
    out[r, c0 + pick] = one


@njit(cache=True, error_model="numpy")
def categorical_log_prob_group(logits, x, r, c0, K):
    """sum_k x_k (a_k - logsumexp(a)) over the group (x one-hot or relaxed)."""
    m, ls = logsumexp_group(logits, r, c0, K)
    s = like(x[r, c0], 0.0)
    for k in range(K):
        s += x[r, c0 + k] * ((logits[r, c0 + k] - m) - ls)
    return s


@njit(cache=True, error_model="numpy")
def categorical_log_prob_bwd_group(logits, x, r, c0, K, g, glogits, gx, do_a, do_x):
    """glogits += g (x_k - softmax_k(a) sum_i x_i) ; gx += g (a_k - lse) over the group."""
    m, ls = logsumexp_group(logits, r, c0, K)
    sx = like(x[r, c0], 0.0)
    for k in range(K):
        sx += x[r, c0 + k]
    for k in range(K):
        c = c0 + k
        if do_a:
            glogits[r, c] += g * (x[r, c] - fexp((logits[r, c] - m) - ls) * sx)
        if do_x:
            gx[r, c] += g * ((logits[r, c] - m) - ls)


@njit(cache=True, error_model="numpy")
def gumbel_softmax_group(logits, gumbel, t, r, c0, K, out):
    """out = softmax((a + g) / tau) over the group (Gumbel-softmax / Concrete;
    Jang et al. 2017, Maddison et al. 2017); max-shifted."""
    m = (logits[r, c0] + gumbel[r, c0]) / t
    for k in range(1, K):
        v = (logits[r, c0 + k] + gumbel[r, c0 + k]) / t
        if v > m:
            m = v
    s = like(out[r, c0], 0.0)
    for k in range(K):
        e = fexp((logits[r, c0 + k] + gumbel[r, c0 + k]) / t - m)
        out[r, c0 + k] = e
        s += e
    for k in range(K):
        out[r, c0 + k] /= s


@njit(cache=True, error_model="numpy")
def gumbel_softmax_bwd_group(logits, gumbel, t, r, c0, K, out, gout, glogits, do_a):
    """Exact VJP of y = softmax(u), u = (a + g) / tau, over the group:
    gu_k = y_k (gout_k - sum_i gout_i y_i) ; glogits += gu / tau ; returns
    -sum_k gu_k (u_k - max u), tau times this group's d/dtau (sum_k gu_k = 0, so the shift
    is exact and keeps the product finite for huge logits)."""
    dot = like(out[r, c0], 0.0)
    acc = like(out[r, c0], 0.0)
    m = (logits[r, c0] + gumbel[r, c0]) / t
    for k in range(K):
        dot += gout[r, c0 + k] * out[r, c0 + k]
        v = (logits[r, c0 + k] + gumbel[r, c0 + k]) / t
        if v > m:
            m = v
    for k in range(K):
        c = c0 + k
        gu = out[r, c] * (gout[r, c] - dot)
        if do_a:
            glogits[r, c] += gu / t
        acc -= gu * ((logits[r, c] + gumbel[r, c]) / t - m)
    return acc


@njit(cache=True, error_model="numpy")
def softmax_group(z, r, c0, K, out):
    """out = softmax(z) over the group (max-shifted: exp never overflows)."""
    m, ls = logsumexp_group(z, r, c0, K)
    for k in range(K):
        out[r, c0 + k] = fexp((z[r, c0 + k] - m) - ls)


@njit(cache=True, error_model="numpy")
def softmax_bwd_group(r, c0, K, out, gout, gz):
    """gz_k += y_k (gout_k - sum_i gout_i y_i) over the group, y = softmax(z) = out."""
    dot = like(out[r, c0], 0.0)
    for k in range(K):
        dot += gout[r, c0 + k] * out[r, c0 + k]
    for k in range(K):
        c = c0 + k
        gz[r, c] += out[r, c] * (gout[r, c] - dot)


@njit(cache=True, error_model="numpy")
def softmax_xent_group(logits, t, r, c0, K):
    """-sum_k t_k (a_k - logsumexp(a)) over the group (softmax cross-entropy head)."""
    m, ls = logsumexp_group(logits, r, c0, K)
    s = like(t[r, c0], 0.0)
    for k in range(K):
        s -= t[r, c0 + k] * ((logits[r, c0 + k] - m) - ls)
    return s


@njit(cache=True, error_model="numpy")
def softmax_xent_bwd_group(logits, t, r, c0, K, g, glogits, gt, do_a, do_t):
    """glogits += g (softmax_k(a) sum_i t_i - t_k) ; gt += -g (a_k - lse) over the group."""
    m, ls = logsumexp_group(logits, r, c0, K)
    st = like(t[r, c0], 0.0)
    for k in range(K):
        st += t[r, c0 + k]
    for k in range(K):
        c = c0 + k
        if do_a:
            glogits[r, c] += g * (fexp((logits[r, c] - m) - ls) * st - t[r, c])
        if do_t:
            gt[r, c] -= g * ((logits[r, c] - m) - ls)
