"""Double control variates for logit-link Bernoulli units: REINFORCE leave-one-out plus a
first-order Taylor control variate and its exact correction (Titsias & Shi, AISTATS 2022).

A data row's K draws b_1..b_K (rows r_k = (i K + k) S + c of one configuration group c), each
with the node's logits a_k (mu_k = sigma(a_k)), learning signal f_k (the node's downstream
costs) and df/db at the draw, G_k (the cotangent of the node's value, read from the backward
pass: no extra evaluation). With G_-k = mean_{j != k} G_j and
    T_k = f_k + alpha <G_-k, b_k - mu_k>
the estimate of d E f / d a_k is
    g_k = (T_k - mean_{j != k} T_j) (b_k - mu_k) - alpha G_-k * mu_k (1 - mu_k).
Unbiased for any alpha: G_-k and mu_k do not depend on b_k, so E[<G_-k, b_k - mu_k> (b_k - mu_k)
| the rest] = G_-k * mu_k (1 - mu_k) (the Bernoulli variance), which the last term removes; each
T_j with j != k is a function of the other draws whose dependence on b_k (through G_-j) is
multiplied by b_j - mu_j, of mean 0 given the rest. alpha = -1 subtracts the first-order
Taylor expansion of f around mu with the slope G_-k; alpha = 0 is REINFORCE leave-one-out.

Configuration digits of stochastic nodes *below* the node (enumerated values, antithetic pairs,
REBAR's rows; `strides`, `sizes`) are marginalised: f_k = sum rw L / sum rw and G_k = sum g /
sum rw over the group of sample k's rows (the backward pass seeded g with the row weights); the
estimate goes to the group's first row with weight W_k = sum rw. A neutral digit (stride 1,
size 1) stands for none. Groups of zero weight (REBAR's control-variate rows above the node)
are skipped. Scratch: `T`, `W`, `Cb` (R,) and `Gm` (R, D) hold T_k, W_k, <G_-k, b_k - mu_k> and G_k
then G_-k on head rows.

alpha's variance gradient (`train`): the group's estimate v = sum_k g_k (a D-vector; the
gradient of the shared logits of a data row) is linear in alpha, v = v0 + alpha c with
c = sum_k W_k ((C_k - mean_{j != k} C_j) (b_k - mu_k) - G_-k mu_k (1 - mu_k)), C_k = <G_-k, b_k - mu_k>;
E|v|^2 = Var v + |E v|^2 and E v does not depend on alpha (unbiased), so d Var / d alpha =
E[2 <v, c>]: written to `gal` at the group's first row (0 on its other rows).

Declared once (kernels/declare.py): the kernel is an item body, one item per (data row,
configuration group) (one CUDA thread each); the groups own disjoint rows, so every item writes
its own cells only and the sums over a group's samples and units run in one order on both
targets.
"""
from numba import njit

from ..math.slots import _group_offset, _group_size, _is_group_head
from ..declare import items
from ..math.scalar import hyper, like, sigmoid, sigmoid_grad


@njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def _dcv_group(logits, b, L, g, rw, K, S, i, c, strides, sizes, alpha, train, T, W, Cb, Gm, ga, gal):
    """One (data row i, configuration group c) of `double_cv_grad` (c has every marginalised digit 0)."""
    D = ga.shape[1]
    M = _group_size(sizes)
    zero = like(ga, 0.0)
    al = like(ga, alpha)
    inv_k1 = like(ga, 1.0) / like(ga, K - 1)
    if train:
        for k in range(K):
            for m in range(M):
                gal[(i * K + k) * S + c + _group_offset(m, strides, sizes)] = zero
    # per sample: its weight, signal and df/db marginalised over the digits below
    for k in range(K):
        r = (i * K + k) * S + c
        w = zero
        fl = zero
        for j in range(D):
            Gm[r, j] = zero
        for m in range(M):
            q = r + _group_offset(m, strides, sizes)
            w += rw[q]
            fl += rw[q] * L[q]
            for j in range(D):
                Gm[r, j] += g[q, j]
        if w == zero:
            return            # rows of zero weight (a REBAR control variate's): no estimate here
        W[r] = w
        T[r] = fl / w
        inv_w = like(ga, 1.0) / w
        for j in range(D):
            Gm[r, j] *= inv_w
    # G_-k in place: (sum_j G_j - G_k) / (K - 1)
    r0 = i * K * S + c
    for j in range(D):
        tot = zero
        for k in range(K):
            tot += Gm[r0 + k * S, j]
        for k in range(K):
            r = r0 + k * S
            Gm[r, j] = (tot - Gm[r, j]) * inv_k1
    # T_k = f_k + alpha C_k, C_k = <G_-k, b_k - mu_k>
    tsum = zero
    csum = zero
    for k in range(K):
        r = r0 + k * S
        dot = zero
        for j in range(D):
            dot += Gm[r, j] * (b[r, j] - sigmoid(logits[r, j]))
        Cb[r] = dot
        csum += dot
        T[r] += al * dot
        tsum += T[r]
    for k in range(K):
        r = r0 + k * S
        s = W[r] * (T[r] - (tsum - T[r]) * inv_k1)
        corr = W[r] * al
        for j in range(D):
            a = logits[r, j]
            ga[r, j] += s * (b[r, j] - sigmoid(a)) - corr * Gm[r, j] * sigmoid_grad(a)
    if train:   # 2 <v, c> over the units (module docstring), accumulated in float64 (a sum of products)
        acc = 0.0
        for j in range(D):
            v = 0.0
            cj = 0.0
            for k in range(K):
                r = r0 + k * S
                a = logits[r, j]
                db = float(b[r, j] - sigmoid(a))
                sg = float(Gm[r, j] * sigmoid_grad(a))
                v += float(W[r]) * (float(T[r] - (tsum - T[r]) * inv_k1) * db - float(al) * sg)
                cj += float(W[r]) * (float(Cb[r] - (csum - Cb[r]) * inv_k1) * db - sg)
            acc += v * cj
        gal[r0] = 2.0 * acc


@items("(L.shape[0] // (K * S)) * S", fastmath=False)   # the old kernel's flags
def double_cv_grad(q, logits, b, L, g, rw, K, S, strides, sizes, alpha, train, T, W, Cb, Gm, ga, gal):
    """ga += the double control variate estimate (module docstring) for every data row and
    configuration group (item q: data row q // S, group q % S); `alpha` a 1-element array (or a
    number). With `train`, gal (R,) holds the variance gradient of alpha per group (summed by the
    caller), else it is not touched."""
    i = q // S
    c = q - i * S
    if _is_group_head(c, strides, sizes):
        _dcv_group(logits, b, L, g, rw, K, S, i, c, strides, sizes, hyper(alpha), train, T, W, Cb, Gm, ga, gal)


R, D = 4, 6
PARITY = {   # 2 samples x a digit of size 2 below the node, marginalised
    "double_cv_grad": lambda g: (g.x(R, D), g.bits(R, D), g.x(R), g.x(R, D), g.pos(R), 2, 2, (1,), (2,), g.h(-0.8),
                                 False, g.out(R), g.out(R), g.out(R), g.out(R, D), g.x(R, D), g.skip(1)),
}
