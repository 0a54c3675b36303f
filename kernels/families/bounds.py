"""The importance-weighted bound's row kernels, re-exported by cpu_rows and gpu_rows (the step
calls them as rows.<name>): the bound of each data row's K draws and its normalised weights,
VIMCO's leave-one-out baselines, local ARM / DisARM's swapped signals, and the configuration
weights.

Rows r = (i K + k) S + c: data row i, draw k, configuration c of S.

Declared once (kernels/declare.py): VIMCO's baselines and the swapped signals are item bodies,
one item per data row (one CUDA thread each, writing its data row's K S rows); the
configuration weights a row body. The bound returns its mean, a reduction no loop shape fits:
its CPU kernel is written by hand, and its CUDA kernel is the registry's one-block sum of the
same per-data-row helper (deterministic, `CUDA` below).
"""
import math

from numba import njit

from ..declare import block_launcher, items, rows


# The importance-weighted bound: rows r = (i K + k) S + c (data row i, draw k, configuration c of
# S); the bound is over each data row's K draws in configuration 0 (the drawn values); other
# configurations (antithetic partners of local ARM / DisARM) enter it only through
# iwae_swap_one's signals.
# The per-row helpers are inlined in Numba's IR (inline="always"): as calls (each through Numba's
# calling convention, a status word and a tuple of results) they made vimco_baseline 5.5 us at 32
# data rows of K = 5, and 2.6 us inlined, with the same libm exps and logs.
@njit(cache=True, error_model="numpy", inline="always")
def _bound_shift(tot, K, S, i):
    """The smallest total of data row i's draws (the shift of its log-sum-exp)."""
    m = math.inf
    for k in range(K):
        c = float(tot[(i * K + k) * S])
        if c < m:
            m = c
    return m


@njit(cache=True, error_model="numpy", inline="always")
def _iwae_row(tot, K, S, i, n, rw, ell):
    """Data row i of iwae_bound: writes its K S rows of rw and ell, returns its bound."""
    m = _bound_shift(tot, K, S, i)
    z = 0.0
    for k in range(K):
        r = (i * K + k) * S
        w = math.exp(m - float(tot[r]))
        rw[r] = w
        z += w
    val = m - math.log(z / K)
    for k in range(K):
        r = (i * K + k) * S
        rw[r] = rw[r] / z / n
        ell[r] = val
        for c in range(1, S):
            rw[r + c] = 0.0
            ell[r + c] = val
    return val


@njit(cache=True, error_model="numpy")
def iwae_bound(tot, K, S, rw, ell):
    """The importance-weighted bound (Burda et al. 2016) of each data row's K draws. Row
    (i K + k) S holds draw k's total cost C_ik (= -log w_ik, the costs being -log p + log q
    terms): ell_i = -log (1/K sum_k exp(-C_ik)), written to every row of data row i of `ell`;
    rw[(i K + k) S] = exp(-C_ik) / sum_k' exp(-C_ik') / n, the cotangent of C_ik in the mean of
    ell_i over the n data rows (0 on the other configurations' rows). Returns that mean (float64).
    A NaN total makes its row's bound NaN."""
    n = tot.shape[0] // (K * S)
    s = 0.0
    for i in range(n):
        s += _iwae_row(tot, K, S, i, n, rw, ell)
    return s / n


@njit(cache=True, error_model="numpy", inline="always")
def _swapped_bound(tot, K, S, i, k, ck):
    """Data row i's bound with draw k's total replaced by ck, in O(K) (reference and fallback
    of _swap_parts / _swapped)."""
    m = ck
    for j in range(K):
        c = float(tot[(i * K + j) * S])
        if j != k and c < m:
            m = c
    z = math.exp(m - ck)
    for j in range(K):
        if j != k:
            z += math.exp(m - float(tot[(i * K + j) * S]))
    return m - math.log(z / K)


@njit(cache=True, error_model="numpy", inline="always")
def _swap_parts(tot, K, S, i):
    """What every swapped bound of data row i shares, so that each costs O(1) (2 exps, 1 log)
    instead of O(K): (k1, m1, m2, s2, ok) with m1 the smallest total (draw k1), m2 the smallest
    of the others, s2 = sum_{j != k1} exp(m2 - C_j) (>= 1) and d = exp(m1 - m2); ok is False
    when m1 or m2 is not finite (then _swapped falls back to _swapped_bound)."""
    k1 = 0
    m1 = float(tot[i * K * S])
    for k in range(1, K):
        c = float(tot[(i * K + k) * S])
        if c < m1:
            m1, k1 = c, k
    m2 = math.inf
    for k in range(K):
        c = float(tot[(i * K + k) * S])
        if k != k1 and c < m2:
            m2 = c
    s2 = 0.0
    for k in range(K):
        if k != k1:
            s2 += math.exp(m2 - float(tot[(i * K + k) * S]))
    ok = math.isfinite(m1) and math.isfinite(m2) and math.isfinite(s2)
    return k1, m1, m2, s2, math.exp(m1 - m2), ok


@njit(cache=True, error_model="numpy", inline="always")
def _swapped(tot, K, S, i, k, ck, k1, m1, m2, s2, d, ok):
    """_swapped_bound from _swap_parts: the others' sum shifted by m1 (or by m2 when k is the
    smallest draw, whose removal leaves m2 the shift) is 1 + d (s2 - exp(m2 - C_k)) (or s2):
    no cancellation against the leading 1, so the result agrees with _swapped_bound to
    rounding. Then ck joins at the smaller shift. A NaN ck gives NaN."""
    if not ok:
        return _swapped_bound(tot, K, S, i, k, ck)
    if k == k1:
        m, base = m2, s2
    else:
        m, base = m1, 1.0 + d * (s2 - math.exp(m2 - float(tot[(i * K + k) * S])))
    if ck >= m:
        return m - math.log((base + math.exp(m - ck)) / K)
    return ck - math.log((base * math.exp(ck - m) + 1.0) / K)


@njit(cache=True, error_model="numpy", inline="always")
def _vimco_row(tot, K, S, i, b):
    """Data row i of vimco_baseline."""
    k1, m1, m2, s2, d, ok = _swap_parts(tot, K, S, i)
    tsum = 0.0
    for k in range(K):
        tsum += float(tot[(i * K + k) * S])
    for k in range(K):
        r = (i * K + k) * S
        val = _swapped(tot, K, S, i, k, (tsum - float(tot[r])) / (K - 1), k1, m1, m2, s2, d, ok)
        for c in range(S):
            b[r + c] = val


@items("tot.shape[0] // (K * S)", fastmath=False)   # the sums in their order, as the CUDA twin
def vimco_baseline(i, tot, K, S, b):
    """VIMCO's leave-one-out baselines (Mnih & Rezende 2016): b[(i K + k) S + c] = the bound of
    data row i with draw k's total cost replaced by the mean of the other K - 1 (the geometric
    mean of their weights), -log (1/K (sum_{j != k} exp(-C_ij) + exp(-mean_{j != k} C_ij))); it
    does not depend on draw k. O(K) per data row (_swap_parts: 2K exps and K logs, where
    recomputing each sum would take K^2 exps)."""
    _vimco_row(tot, K, S, i, b)


@njit(cache=True, error_model="numpy", inline="always")
def _swap_one_row(tot, ell, K, S, stride, i, out):
    k1, m1, m2, s2, d, ok = _swap_parts(tot, K, S, i)
    for k in range(K):
        r = (i * K + k) * S
        for c in range(S):
            out[r + c] = ell[r + c]
        out[r + stride] = _swapped(tot, K, S, i, k, float(tot[r + stride]), k1, m1, m2, s2, d, ok)


@items("tot.shape[0] // (K * S)", fastmath=False)
def iwae_swap_one(i, tot, ell, K, S, stride, out):
    """Local ARM / DisARM's signals (Dong et al. 2020, multi-sample bounds): on the row of draw
    k's antithetic partner (configuration `stride`), the bound of data row i with draw k's total
    replaced by the partner's; on every other row the bound itself (ell, from iwae_bound)."""
    _swap_one_row(tot, ell, K, S, stride, i, out)


@rows("out", fastmath=False)
def config_weights(r, S, c0, c1, value, out):
    """out[r] = value on the rows of configuration c0 or c1 (r % S), 0 elsewhere."""
    c = r % S
    out[r] = value if c == c0 or c == c1 else 0.0


def _iwae_bound_item(i, tot, K, S, rw, ell):
    """Data row i's bound (its rows of rw and ell written), the item the CUDA block sums."""
    return _iwae_row(tot, K, S, i, tot.shape[0] // (K * S), rw, ell)


# hand-written on the CPU: its CUDA launcher ONE block summing the data rows' bounds in float64
# (block_sum, a fixed order), thread 0 writing their mean
CUDA = {"iwae_bound": block_launcher(iwae_bound, _iwae_bound_item, "tot.shape[0] // (K * S)",
                                     result="total / (tot.shape[0] // (K * S))")}

PARITY = {   # K = 3 or 4 draws of S = 2 configurations: 2 or 3 data rows
    "iwae_bound": lambda g: (g.x(12), 3, 2, g.out(12), g.out(12)),
    "vimco_baseline": lambda g: (g.x(24), 4, 2, g.out(24)),
    "iwae_swap_one": lambda g: (g.x(24), g.x(24), 3, 4, 2, g.out(24)),
    "config_weights": lambda g: (4, 0, 2, 0.125, g.out(4)),
}
