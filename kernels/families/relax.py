"""RELAX for Bernoulli and categorical units with a learned control variate (Grathwohl et al. 2018).

Per row, with logits a, uniforms u, v and p = sigmoid(a):
  z  = a + logit(u),  b = H(z)                       (the hard sample)
  z~ ~ p(z | b) from v (kernels/math/conditional.py)
  g_a = (f(b) - c(z~)) (b - p) + dc(z)/dz * dz/da - dc(z~)/dz * dz~/da   (dz/da = 1)
The control variate is a one-hidden-layer network c(z, x) = w2 . tanh(W1 z + U x + b1) + c0 on
the logistic variable z and the node's data context x (kernels/math/relax_net.py). Its parameters
phi are trained to minimise the estimator's variance: since E[g_a] does not depend on phi,
d/dphi E[|g_a|^2] is the gradient of the variance, 2 sum_j g_j dg_j/dphi, derived below in closed
form (it needs the mixed derivative d^2 c / dphi dz, written out for this network).

Parameter vector phi (flat): W1 (H, D) | U (H, C) | b1 (H) | w2 (H) | c0 (1).

One file for both targets (kernels/declare.py): the draws and the column copy are cell and group
bodies. The backward kernels fit no loop shape (their work vectors are allocated once for all
rows, and the phi gradient is a sum over the rows): hand-written on the CPU over the per-row math
`_relax_row` / `_relax_categorical_row`, whose CUDA launchers (kernels/cuda/relax.py, named in
`CUDA`) run the same row functions, one thread per row with its work vectors in
``cuda.local.array``, the phi gradient through a per-row scratch summed in row order.
"""
import math

import numpy as np
from numba import njit

from ..declare import cells, groups
from ..math.conditional import gumbel_given_argmax_jac, jac_t_vec, jac_vec, logistic_given_bernoulli
from ..math.relax_net import _acc_dc_dphi, _acc_dD_dphi, _cv, _cv_grad_z, relax_size  # noqa: F401
from ..math.relax_net import _acc_context, _acc_dc_dphi_pre, _acc_dD_dphi_pre, _cv_context, _cv_from
from ..math.scalar import sigmoid
from ..math.slots import slot_local
from .rebar import CONFIGS, SEED_EPS, _check_layout, _group_noise, _softmax_group, _softmax_vjp


@njit(cache=True)
def _relax_bit(a, u):
    """b = 1[a + logit(u) > 0] = 1[u > sigmoid(-a)] for one unit."""
    return 1 if u > sigmoid(-a) else 0


@cells("out", fastmath=False)
def relax_sample(r, j, a, u, out):
    """b = 1[a + logit(u) > 0] = 1[u > sigmoid(-a)]."""
    out[r, j] = _relax_bit(a[r, j], u[r, j])


@njit(cache=True)
def _relax_row(r, a, u, v, b, L, rw, ctx, phi, H, ga, gp, train, z, zt, dzt, gz, gzt, g, q, h, s, ht, st):
    """One row of relax_bwd: ga[r] += rw[r] * g_a and, if train, gp += that row's variance
    gradient. Work arrays z .. q hold >= D entries, h .. st >= H (only the first D / H are used)."""
    D = a.shape[1]
    C = ctx.shape[1] if ctx.shape[0] > 0 else 0
    for j in range(D):
        aj = a[r, j]
        uj = u[r, j]
        vj = v[r, j]
        z[j] = aj + math.log(uj) - math.log1p(-uj)
        zt[j], dzt[j] = logistic_given_bernoulli(aj, vj, b[r, j])
    _cv(z, ctx, r, phi, D, C, H, h, s)
    _cv_grad_z(phi, D, H, s, gz)
    ct = _cv(zt, ctx, r, phi, D, C, H, ht, st)
    _cv_grad_z(phi, D, H, st, gzt)
    w = rw[r]
    gs = 0.0
    for j in range(D):
        sc = b[r, j] - sigmoid(a[r, j])
        g[j] = (L[r] - ct) * sc + gz[j] - gzt[j] * dzt[j]
        ga[r, j] += w * g[j]
        gs += g[j] * sc
    if train:
        # d/dphi sum_r rw |g|^2 = 2 rw [ -(g . sc) dc(z~)/dphi + dD(z; g)/dphi - dD(z~; g * dz~/da)/dphi ]
        _acc_dc_dphi(zt, ctx, r, D, C, H, ht, st, -2.0 * w * gs, gp)
        _acc_dD_dphi(z, ctx, r, phi, D, C, H, h, g, 2.0 * w, gp)
        for j in range(D):
            q[j] = g[j] * dzt[j]
        _acc_dD_dphi(zt, ctx, r, phi, D, C, H, ht, q, -2.0 * w, gp)


@njit(cache=True)
def relax_bwd(a, u, v, b, L, rw, ctx, phi, H, ga, gphi, train):
    """Accumulate rw[r] * g_a into ga and, if train, the variance gradient into gphi.

    Work arrays are allocated once per call (small: O(H + D))."""
    R, D = a.shape
    z = np.empty(D)
    zt = np.empty(D)
    dzt = np.empty(D)
    gz = np.empty(D)
    gzt = np.empty(D)
    g = np.empty(D)
    q = np.empty(D)
    h = np.empty(H)
    s = np.empty(H)
    ht = np.empty(H)
    st = np.empty(H)
    for r in range(R):
        _relax_row(r, a, u, v, b, L, rw, ctx, phi, H, ga, gphi, train, z, zt, dzt, gz, gzt, g, q, h, s, ht, st)


@cells("src")
def copy_cols(r, j, src, dst, offset):
    """dst[:, offset:offset + src.shape[1]] = src."""
    dst[r, offset + j] = src[r, j]


@njit(cache=True)
def _relax_categorical_group(a, u, r, g0, K, out):
    """One group: out[r, g0:g0+K] = one-hot argmax_k (a_k + g_k), g = -log(-log u) Gumbel."""
    best = 0
    bv = -math.inf
    for k in range(K):
        zk = a[r, g0 + k] - math.log(-math.log(u[r, g0 + k]))
        if zk > bv:
            bv = zk
            best = k
    for k in range(K):
        out[r, g0 + k] = 1.0 if k == best else 0.0


@groups("out", fastmath=False)
def relax_categorical_sample(r, g, a, u, K, out):
    """One-hot argmax_k (a_k + g_k) per group of K, g = -log(-log u) Gumbel."""
    _relax_categorical_group(a, u, r, g * K, K, out)


@njit(cache=True)
def _relax_categorical_row(r, a, u, v, b, L, rw, ctx, phi, H, K, ga, gp, train,
                          z, zt, th, cc, gz, gzt, sc, g, q, h, s, ht, st):
    """One row of relax_categorical_bwd (as relax_row; work arrays z .. q >= D, h .. st >= H)."""
    D = a.shape[1]
    C = ctx.shape[1] if ctx.shape[0] > 0 else 0
    for j in range(D):
        z[j] = a[r, j] - math.log(-math.log(u[r, j]))
    for g0 in range(0, D, K):
        k = 0
        for i in range(K):
            if b[r, g0 + i] > 0.5:
                k = i
        gumbel_given_argmax_jac(a[r, g0: g0 + K], v[r, g0: g0 + K], k, zt[g0: g0 + K], th[g0: g0 + K],
                                cc[g0: g0 + K])
    _cv(z, ctx, r, phi, D, C, H, h, s)
    _cv_grad_z(phi, D, H, s, gz)
    ct = _cv(zt, ctx, r, phi, D, C, H, ht, st)
    _cv_grad_z(phi, D, H, st, gzt)
    for j in range(D):
        sc[j] = b[r, j] - th[j]
        g[j] = (L[r] - ct) * sc[j] + gz[j]
    for g0 in range(0, D, K):
        for i in range(K):
            q[g0 + i] = -gzt[g0 + i]
        jac_t_vec(th[g0: g0 + K], cc[g0: g0 + K], q[g0: g0 + K], g[g0: g0 + K])
    w = rw[r]
    gs = 0.0
    for j in range(D):
        ga[r, j] += w * g[j]
        gs += g[j] * sc[j]
    if train:
        _acc_dc_dphi(zt, ctx, r, D, C, H, ht, st, -2.0 * w * gs, gp)
        _acc_dD_dphi(z, ctx, r, phi, D, C, H, h, g, 2.0 * w, gp)
        for g0 in range(0, D, K):
            jac_vec(th[g0: g0 + K], cc[g0: g0 + K], g[g0: g0 + K], q[g0: g0 + K])
        _acc_dD_dphi(zt, ctx, r, phi, D, C, H, ht, q, -2.0 * w, gp)


@njit(cache=True)
def relax_categorical_bwd(a, u, v, b, L, rw, ctx, phi, H, K, ga, gphi, train):
    """RELAX for groups of K categorical units (the Bernoulli kernel's derivation with the
    conditional Gumbel z~ of kernels/math/conditional.py, whose Jacobian is not diagonal):
      g_a = (f(b) - c(z~)) (b - softmax(a)) + dc(z)/dz - J^T dc(z~)/dz~,   J = dz~/da."""
    R, D = a.shape
    z = np.empty(D)
    zt = np.empty(D)
    th = np.empty(D)
    cc = np.empty(D)
    gz = np.empty(D)
    gzt = np.empty(D)
    sc = np.empty(D)
    g = np.empty(D)
    q = np.empty(D)
    h = np.empty(H)
    s = np.empty(H)
    ht = np.empty(H)
    st = np.empty(H)
    for r in range(R):
        _relax_categorical_row(r, a, u, v, b, L, rw, ctx, phi, H, K, ga, gphi, train,
                              z, zt, th, cc, gz, gzt, sc, g, q, h, s, ht, st)


# ----------------------------------------------------------------------------- the paper's form
# RELAX as Grathwohl et al. ran it on SBNs: c(z) = eta f(sigma_lam(z)) + r(z), REBAR's relaxed
# term (its configuration rows, kernels/families/rebar.py: the forward pass and the seeds are
# REBAR's) plus the control-variate network r of this module as a learned residual. Per drawn
# row r0, its relaxed rows r1 (z), r2 (z~) and, when the temperature is trained, r3, r4 (at lam'):
#   g_a = (f(b) - eta f(sigma_lam(z~)) - r(z~)) s + eta d/da f(sigma_lam(z)) - eta d/da f(sigma_lam(z~))
#         + dr(z)/da - dr(z~)/da,                                   s = d log p(b) / da
# The relaxed terms reach the logits through rows r1, r2 (REBAR's c1, c2); the rest at r0. eta,
# log lam and r's parameters are trained on E|g_a|^2 with g_a the WHOLE estimate: d/deta and
# d/dphi exactly (g_a is linear in eta, r's derivatives as in relax_bwd), d/dlog lam by REBAR's
# forward difference between lam and lam' on the same noise.
@njit(cache=True)
def _residual(ctx, r0, phi, D, C, H, z, zt, gz, gzt, h, s, ht, st, ux):
    """r at z and at z~ of drawn row r0 (its context's part once): returns r(z~); gz, gzt its
    gradients in z and z~; h, s, ht, st the network's activations at each."""
    _cv_context(ctx, r0, phi, D, C, H, ux)
    _cv_from(z, ux, phi, D, C, H, h, s)
    _cv_grad_z(phi, D, H, s, gz)
    ct = _cv_from(zt, ux, phi, D, C, H, ht, st)
    _cv_grad_z(phi, D, H, st, gzt)
    return ct


@njit(cache=True)
def _residual_grad(ctx, r0, phi, D, C, H, z, zt, g, q, h, ht, st, score, two_w, gp, pre):
    """gp += d/dphi of the row's weight x |g|^2 through r: score x dr(z~)/dphi (score = -2 w
    g . s) + two_w d/dphi [g . dr(z)/dz] - two_w d/dphi [q . dr(z~)/dz~], q = (dz~/da) g."""
    for k in range(H):
        pre[k] = 0.0
    _acc_dc_dphi_pre(zt, D, C, H, ht, st, score, gp, pre)
    _acc_dD_dphi_pre(z, phi, D, C, H, h, g, two_w, gp, pre)
    _acc_dD_dphi_pre(zt, phi, D, C, H, ht, q, -two_w, gp, pre)
    _acc_context(ctx, r0, D, C, H, pre, gp)


@njit(cache=True)
def _relax_paper_row(r0, r1, a, u, v, y, L, rw, gs, stride, ctx, phi, H, e, inv1, inv2, delta, ga, gp, train,
                     lam_rows, z, zt, dzt, gz, gzt, g, q, h, s, ht, st, ux, pre):
    """One drawn row of relax_paper_bwd (work arrays z .. q >= D, h .. pre >= H): accumulates into ga
    (rows r0, r1, r1 + stride) and, if train, r's variance gradient into gp; returns the row's
    (d/deta, d/dlog lam) terms (the second 0 unless lam_rows)."""
    base = rw[r0]
    if base == 0.0:
        return 0.0, 0.0
    D = a.shape[1]
    C = ctx.shape[1] if ctx.shape[0] > 0 else 0
    r2, r3, r4 = r1 + stride, r1 + 2 * stride, r1 + 3 * stride
    for j in range(D):
        aj = float(a[r0, j])
        uj = float(u[r0, j])
        z[j] = aj + math.log(uj) - math.log1p(-uj)
        zt[j], dzt[j] = logistic_given_bernoulli(aj, float(v[r0, j]), float(y[r0, j]))
    ct = _residual(ctx, r0, phi, D, C, H, z, zt, gz, gzt, h, s, ht, st, ux)
    sc = L[r0] - e * L[r2] - ct
    sc2 = (L[r0] - e * L[r4] - ct) if lam_rows else 0.0
    n1 = 0.0
    n2 = 0.0
    dot = 0.0
    gsum = 0.0
    for j in range(D):
        sj = float(y[r0, j]) - sigmoid(float(a[r0, j]))
        y1 = float(y[r1, j])
        y2 = float(y[r2, j])
        c1 = gs[r1, j] * y1 * (1.0 - y1) * inv1
        c2 = gs[r2, j] * y2 * (1.0 - y2) * inv1 * dzt[j]
        gr = gz[j] - gzt[j] * dzt[j]
        gj = sc * sj + (c1 + c2) / base + gr
        g[j] = gj
        ga[r0, j] += base * (sc * sj + gr)
        ga[r1, j] += c1
        ga[r2, j] += c2
        if train:
            n1 += gj * gj
            gsum += gj * sj
            if e != 0.0:
                dot += gj * (-L[r2] * sj + (c1 + c2) / (base * e))
            if lam_rows:
                y3 = float(y[r3, j])
                y4 = float(y[r4, j])
                c3 = gs[r3, j] * y3 * (1.0 - y3) * inv2
                c4 = gs[r4, j] * y4 * (1.0 - y4) * inv2 * dzt[j]
                g2 = sc2 * sj + (c3 + c4) / (base * SEED_EPS) + gr
                n2 += g2 * g2
    if not train:
        return 0.0, 0.0
    for j in range(D):
        q[j] = g[j] * dzt[j]
    _residual_grad(ctx, r0, phi, D, C, H, z, zt, g, q, h, ht, st, -2.0 * base * gsum, 2.0 * base, gp, pre)
    return 2.0 * base * dot, (base * (n2 - n1) / delta if lam_rows else 0.0)


@njit(cache=True)
def relax_paper_bwd(a, u, v, y, L, rw, gs, stride, off, span, configs, eta, loglam, delta, ctx, phi, H, ga, geta,
                    glam, gphi, train):
    """RELAX's paper form for Bernoulli units (see above): accumulate the estimate into ga (rows
    c = 0, 1, 2 of each drawn row of REBAR's layout) and, if train, the variance gradients of eta
    into geta, of r's parameters into gphi and, when configs == CONFIGS, of log lam into glam. y
    holds the node's values of REBAR's forward pass (rebar_forward), gs its value cotangent."""
    _check_layout(configs)
    lam_rows = train and configs == CONFIGS
    e = eta[0]
    lam = math.exp(loglam[0])
    inv1, inv2 = 1.0 / lam, 1.0 / (lam * math.exp(delta))
    R, D = a.shape
    z, zt, dzt, gz, gzt = np.empty(D), np.empty(D), np.empty(D), np.empty(D), np.empty(D)
    g, q = np.empty(D), np.empty(D)
    h, s, ht, st, ux, pre = np.empty(H), np.empty(H), np.empty(H), np.empty(H), np.empty(H), np.empty(H)
    ge = 0.0
    gl = 0.0
    for r0 in range(R):
        if slot_local(r0, stride, span) != 0:
            continue
        de, dl = _relax_paper_row(r0, r0 + off * stride, a, u, v, y, L, rw, gs, stride, ctx, phi, H, e, inv1, inv2,
                                  delta, ga, gphi, train, lam_rows, z, zt, dzt, gz, gzt, g, q, h, s, ht, st, ux, pre)
        ge += de
        gl += dl
    if train:
        geta[0] += ge
    if lam_rows:
        glam[0] += gl


@njit(cache=True)
def _relax_paper_categorical_row(r0, r1, a, u, v, L, rw, gs, stride, K, ctx, phi, H, e, lam, lam2, delta, ga, gp,
                                 train, lam_rows, z, zt, th, cc, bb, c1, c2, c3, c4, gz, gzt, g, q, yk, gk, h, s, ht,
                                 st, ux, pre):
    """One drawn row of relax_paper_categorical_bwd (work arrays z .. q >= D, yk, gk >= K, h .. pre
    >= H): the Bernoulli row's estimate with the conditional Gumbel z~ (its Jacobian J = dz~/da is
    not diagonal: J^T where the estimate differentiates through z~, J where r's variance gradient
    does) and softmax(. / lam) relaxations."""
    base = rw[r0]
    if base == 0.0:
        return 0.0, 0.0
    D = a.shape[1]
    C = ctx.shape[1] if ctx.shape[0] > 0 else 0
    r2, r3, r4 = r1 + stride, r1 + 2 * stride, r1 + 3 * stride
    for g0 in range(0, D, K):
        grp = slice(g0, g0 + K)
        _group_noise(a[r0, grp], u[r0, grp], v[r0, grp], z[grp], zt[grp], th[grp], cc[grp], bb[grp])
        _softmax_group(z[grp], lam, yk[:K])
        _softmax_vjp(yk[:K], gs[r1, grp], lam, c1[grp])
        _softmax_group(zt[grp], lam, yk[:K])
        _softmax_vjp(yk[:K], gs[r2, grp], lam, gk[:K])
        c2[grp] = 0.0
        jac_t_vec(th[grp], cc[grp], gk[:K], c2[grp])
        if lam_rows:
            _softmax_group(z[grp], lam2, yk[:K])
            _softmax_vjp(yk[:K], gs[r3, grp], lam2, c3[grp])
            _softmax_group(zt[grp], lam2, yk[:K])
            _softmax_vjp(yk[:K], gs[r4, grp], lam2, gk[:K])
            c4[grp] = 0.0
            jac_t_vec(th[grp], cc[grp], gk[:K], c4[grp])
    ct = _residual(ctx, r0, phi, D, C, H, z, zt, gz, gzt, h, s, ht, st, ux)
    for j in range(D):   # g = dr(z)/da - J^T dr(z~)/dz~ first: r's part of the estimate but its score term
        g[j] = gz[j]
        q[j] = -gzt[j]
    for g0 in range(0, D, K):
        jac_t_vec(th[g0: g0 + K], cc[g0: g0 + K], q[g0: g0 + K], g[g0: g0 + K])
    sc = L[r0] - e * L[r2] - ct
    sc2 = (L[r0] - e * L[r4] - ct) if lam_rows else 0.0
    n1 = 0.0
    n2 = 0.0
    dot = 0.0
    gsum = 0.0
    for j in range(D):
        sj = bb[j] - th[j]
        gr = g[j]
        gj = sc * sj + (c1[j] + c2[j]) / base + gr
        g[j] = gj
        ga[r0, j] += base * (sc * sj + gr)
        ga[r1, j] += c1[j]
        ga[r2, j] += c2[j]
        if train:
            n1 += gj * gj
            gsum += gj * sj
            if e != 0.0:
                dot += gj * (-L[r2] * sj + (c1[j] + c2[j]) / (base * e))
            if lam_rows:
                g2 = sc2 * sj + (c3[j] + c4[j]) / (base * SEED_EPS) + gr
                n2 += g2 * g2
    if not train:
        return 0.0, 0.0
    for g0 in range(0, D, K):
        jac_vec(th[g0: g0 + K], cc[g0: g0 + K], g[g0: g0 + K], q[g0: g0 + K])
    _residual_grad(ctx, r0, phi, D, C, H, z, zt, g, q, h, ht, st, -2.0 * base * gsum, 2.0 * base, gp, pre)
    return 2.0 * base * dot, (base * (n2 - n1) / delta if lam_rows else 0.0)


@njit(cache=True)
def relax_paper_categorical_bwd(a, u, v, L, rw, gs, stride, off, span, configs, K, eta, loglam, delta, ctx, phi, H,
                                ga, geta, glam, gphi, train):
    """RELAX's paper form for groups of K categorical units (relax_paper_bwd's layout and
    gradients, REBAR's categorical relaxation: rebar_categorical_forward's rows)."""
    _check_layout(configs)
    lam_rows = train and configs == CONFIGS
    e = eta[0]
    lam = math.exp(loglam[0])
    lam2 = lam * math.exp(delta)
    R, D = a.shape
    z, zt, th, cc, bb = np.empty(D), np.empty(D), np.empty(D), np.empty(D), np.empty(D)
    c1, c2, c3, c4 = np.empty(D), np.empty(D), np.empty(D), np.empty(D)
    gz, gzt, g, q = np.empty(D), np.empty(D), np.empty(D), np.empty(D)
    yk, gk = np.empty(K), np.empty(K)
    h, s, ht, st, ux, pre = np.empty(H), np.empty(H), np.empty(H), np.empty(H), np.empty(H), np.empty(H)
    ge = 0.0
    gl = 0.0
    for r0 in range(R):
        if slot_local(r0, stride, span) != 0:
            continue
        de, dl = _relax_paper_categorical_row(r0, r0 + off * stride, a, u, v, L, rw, gs, stride, K, ctx, phi, H, e,
                                              lam, lam2, delta, ga, gphi, train, lam_rows, z, zt, th, cc, bb, c1, c2,
                                              c3, c4, gz, gzt, g, q, yk, gk, h, s, ht, st, ux, pre)
        ge += de
        gl += dl
    if train:
        geta[0] += ge
    if lam_rows:
        glam[0] += gl


CUDA = {"relax_bwd": "relax.relax_bwd_launcher",   # made by kernels/cuda/relax.py
        "relax_categorical_bwd": "relax.relax_categorical_bwd_launcher",
        "relax_paper_bwd": "relax.relax_paper_bwd_launcher",
        "relax_paper_categorical_bwd": "relax.relax_paper_categorical_bwd_launcher"}

R, D, K, C, H = 4, 6, 3, 2, 3   # rows, units (2 groups of K), context width, hidden size


def _bwd_case(categorical):
    """A backward kernel's arguments at a draw of its sample kernel, phi's variance gradient trained."""
    def case(g):
        a, u = g.x(R, D), g.u(R, D)
        b = g.out(R, D)
        (relax_categorical_sample(a, u, K, b) if categorical else relax_sample(a, u, b))
        phi = 0.5 * g.x(relax_size(D, C, H))
        head = (a, u, g.u(R, D), b, g.x(R), g.pos(R), g.x(R, C), phi, H)
        return (*head, *((K,) if categorical else ()), g.x(R, D), g.x(phi.shape[0]), True)
    return case


def _paper_case(categorical):
    """A paper-form backward's arguments: REBAR's rows at stride 2 of a lone node's digit (off 1,
    span = configs = 5: the temperature trained), 2 drawn rows, a drawn row of weight 0 skipped."""
    from .rebar import rebar_categorical_forward, rebar_forward

    def case(g):
        S, N = 2, 2 * CONFIGS * 2
        a, u, v, y, dzt = g.x(N, D), g.u(N, D), g.u(N, D), g.out(N, D), g.out(N, D)
        if categorical:
            rebar_categorical_forward(a, u, v, S, 1, CONFIGS, CONFIGS, K, g.h(-0.3), 0.1, y)
        else:
            rebar_forward(a, u, v, S, 1, CONFIGS, CONFIGS, g.h(-0.3), 0.1, y, dzt)
        rw = g.pos(N)
        rw[S * CONFIGS + 1] = 0.0
        head = (a, u, v) + (() if categorical else (y,)) + (g.x(N), rw, g.x(N, D), S, 1, CONFIGS, CONFIGS)
        return (*head, *((K,) if categorical else ()), g.h(0.7), g.h(-0.3), 0.1, g.x(N, C),
                0.5 * g.x(relax_size(D, C, H)), H, g.x(N, D), g.x(1), g.x(1), g.x(relax_size(D, C, H)), True)
    return case


PARITY = {
    "relax_paper_bwd": _paper_case(False),
    "relax_paper_categorical_bwd": _paper_case(True),
    "relax_sample": lambda g: (g.x(R, D), g.u(R, D), g.out(R, D)),
    "copy_cols": lambda g: (g.x(R, 2), g.out(R, D), 3),
    "relax_categorical_sample": lambda g: (g.x(R, D), g.u(R, D), K, g.out(R, D)),
    "relax_bwd": _bwd_case(False),
    "relax_categorical_bwd": _bwd_case(True),
}
