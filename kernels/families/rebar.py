"""REBAR for Bernoulli and categorical units (Tucker et al. 2017), as rows of
the fused step. Bernoulli first; the categorical kernels follow the same layout.

A drawn row becomes `configs` configuration rows of the node, sharing u and v: 5 when eta and
the temperature are trained (CONFIGS), 3 when the temperature is fixed (FIXED_CONFIGS; eta
trained or not):
  c = 0: b = H(z)               z  = a + logit(u)
  c = 1: sigma(z / lam)          c = 2: sigma(z~ / lam)   (z~ ~ p(z | b), as in RELAX)
  c = 3: sigma(z / lam')         c = 4: sigma(z~ / lam')  lam' = lam * exp(delta)   (trained only)
Every REBAR node of a graph shares one row digit (stride `stride`, `span` rows; see
ppl.lowering.Lowering.plan_rows): local index 0 is the drawn row (c = 0 of every node) and the
node's rows c >= 1 sit at local index off + c - 1, the other nodes' rows beside them. A lone node
has off = 1 and span = configs: row c at r0 + c stride. Where another node's rows hold the node's
hard value b, the forward pass copies it there (below that node it is relaxed over it).
Loss weights are (1, 0, 0, 0, 0) and cost cotangent seeds (1, eta, -eta, eps*eta, -eps*eta)
times the drawn row's weight, so backpropagation from the costs leaves in the node's value
cotangent exactly eta * df/dy at rows 1 and 2 (and eps * eta * df/dy at rows 3 and 4), while
costs that do not depend on the node cancel exactly between rows. The estimate is
  g_a = (f(b) - eta f(sigma_lam(z~))) (b - p) + eta d/da f(sigma_lam(z)) - eta d/da f(sigma_lam(z~)).
eta and log(lam) are trained to minimise E|g_a|^2 (the variance, since E g_a does not depend on
them): d/deta exactly from rows 0-2 (g_a is linear in eta); d/dlog(lam) by a forward difference
between lam and lam' on the same noise (rows 3, 4: the exact derivative would need d^2 f / dy^2),
so eta alone is trained at the fixed variant's 3 rows.
Discrete nodes below a REBAR node are relaxed in its rows c > 0 so the control variate is a
continuous function of z (Tucker et al., multi-layer case); see `relax_rows*`.

One file for both targets (kernels/declare.py): the per-row and per-group kernels are row, group
and cell bodies over the per-unit helpers; a device runs the forward and relaxed Bernoulli rows a
thread per cell (`CUDA`: cuda_launcher). The backward kernels sum the variance gradients of eta
and the temperature over the drawn rows, and the categorical ones keep a group's work vectors: no
loop shape fits them, so they are hand-written on the CPU over the per-row functions
(`_rebar_row`, `_rebar_categorical_row`, ...), whose CUDA launchers (kernels/cuda/rebar.py) run
the same functions, the sums in ONE block (deterministic), a group's vectors in
``cuda.local.array`` (at most MAX_K classes).
"""
import math

import numpy as np
from numba import njit

from ..declare import cells, cuda_launcher, items, rows
from ..math.conditional import gumbel_given_argmax_jac, jac_t_vec, logistic_given_bernoulli
from ..math.scalar import flog, like, sigmoid
from ..math.slots import slot_config, slot_local

CONFIGS = 5         # rows per drawn row when eta and the temperature are trained
FIXED_CONFIGS = 3   # rows per drawn row when the temperature is fixed: rows 3, 4 only serve its gradient
SEED_EPS = 2.0 ** -20   # exact power of two: rows 3, 4 are scaled without rounding


_LOOP = dict(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})


@njit(cache=True, error_model="numpy", inline="always")
def _logistic_z(x, uj):
    """z = a + logit(u); 1 - u is exact on the uniforms' grid."""
    return x + flog(uj / (like(uj, 1.0) - uj))


@njit(cache=True, error_model="numpy", inline="always")
def _hard(x, z):
    """b = H(z) in the precision of x."""
    zero = like(x, 0.0)
    return like(x, 1.0) if z > zero else zero


@njit(cache=True, error_model="numpy", inline="always")   # inlined: the row loops vectorise
def _rebar_unit(r0, r1, j, a, u, v, stride, trained, inv1, inv2, out, dzt):
    """Unit j of drawn row r0, its configuration rows c >= 1 at r1 + (c - 1) stride: b = H(z),
    sigma(z / lam), sigma(z~ / lam) and, when trained, sigma(z / lam'), sigma(z~ / lam');
    z = a + logit(u), z~ from v given b, dz~/da kept in dzt[r0, j]; inv1 = 1 / lam and
    inv2 = 1 / lam' in the precision of a."""
    x = a[r0, j]
    z = _logistic_z(x, u[r0, j])
    b = _hard(x, z)
    zt, dz = logistic_given_bernoulli(x, v[r0, j], b)
    dzt[r0, j] = dz
    out[r0, j] = b
    out[r1, j] = sigmoid(z * inv1)
    out[r1 + stride, j] = sigmoid(zt * inv1)
    if trained:
        out[r1 + 2 * stride, j] = sigmoid(z * inv2)
        out[r1 + 3 * stride, j] = sigmoid(zt * inv2)


@njit(cache=True)
def _inverse_temperatures(loglam, delta, x):
    """(1 / lam, 1 / lam') in the precision of x, lam = exp(loglam[0]), lam' = lam exp(delta)."""
    lam = math.exp(loglam[0])
    return like(x, 1.0 / lam), like(x, 1.0 / (lam * math.exp(delta)))


@njit(**_LOOP)
def _rebar_forward_row(r0, r1, a, u, v, stride, trained, inv1, inv2, out, dzt):
    """The configuration rows of drawn row r0, every unit computed once (_rebar_unit); one loop
    per layout, so each vectorises without a test per unit."""
    if trained:
        for j in range(out.shape[1]):
            _rebar_unit(r0, r1, j, a, u, v, stride, True, inv1, inv2, out, dzt)
    else:
        for j in range(out.shape[1]):
            _rebar_unit(r0, r1, j, a, u, v, stride, False, inv1, inv2, out, dzt)


@njit(**_LOOP)
def _hard_row(r, a, u, out):
    """The node's hard value b = H(a + logit(u)) on row r (another node's row of the shared digit:
    below a node whose extra rows change this node's inputs, the draw follows them)."""
    for j in range(out.shape[1]):
        x = a[r, j]
        out[r, j] = _hard(x, _logistic_z(x, u[r, j]))


@rows("out", fastmath=False, error_model="python")
def rebar_forward(r, a, u, v, stride, off, span, configs, loglam, delta, out, dzt):
    """The node's values in its `configs` configuration rows (module docstring) and its hard
    value b on the other REBAR nodes' rows; u, v are read and dz~/da is written (into dzt, for
    rebar_bwd) at the drawn rows (local index 0). A drawn row writes its configuration rows."""
    if slot_local(r, stride, span) == 0:
        inv1, inv2 = _inverse_temperatures(loglam, delta, out[r, 0])
        _rebar_forward_row(r, r + off * stride, a, u, v, stride, configs == CONFIGS, inv1, inv2, out, dzt)
    elif slot_config(r, stride, off, span, configs) == 0:   # another node's row: a hard draw from its logits
        _hard_row(r, a, u, out)


def _rebar_forward_cell(r, j, a, u, v, stride, off, span, configs, loglam, delta, out, dzt):
    """rebar_forward's CUDA body: a thread per cell."""
    inv1, inv2 = _inverse_temperatures(loglam, delta, out[0, 0])
    if slot_local(r, stride, span) == 0:
        _rebar_unit(r, r + off * stride, j, a, u, v, stride, configs == CONFIGS, inv1, inv2, out, dzt)
    elif slot_config(r, stride, off, span, configs) == 0:
        x = a[r, j]
        out[r, j] = _hard(x, _logistic_z(x, u[r, j]))


@njit(cache=True, error_model="numpy", inline="always")
def _seed_factor(c, e):
    """The cost cotangent seed of configuration digit c = 1..4: eta, -eta, eps eta, -eps eta."""
    return e if c == 1 else (-e if c == 2 else (SEED_EPS * e if c == 3 else -SEED_EPS * e))


@items("rw.shape[0] // (span * stride)")
def rebar_weights(i, stride, off, span, configs, eta, rw, cw):
    """On the node's rows c >= 1: cw[r] = the drawn row's cw times the seed factor of c, rw[r] = 0
    (cw starts as a copy of rw); one item per block of the digit (its stride drawn rows and
    their configuration rows: no divisions)."""
    base = i * span * stride
    e = eta[0]
    for c in range(1, configs):
        f = _seed_factor(c, e)
        for r in range(base + (off + c - 1) * stride, base + (off + c) * stride):
            cw[r] = cw[r - (off + c - 1) * stride] * f   # the drawn row's weight times the seed factor
            rw[r] = 0.0


@njit(**_LOOP)
def _rebar_row(r0, r1, a, sa, dzt, y, L, rw, gs, stride, e, inv1, inv2, delta, ga, train, lam_rows, lane, W):
    """One drawn row r0 of rebar_bwd (its rows c >= 1 at r1 + (c - 1) stride), its columns lane,
    lane + W, ... (all of them with lane 0, W 1; the CUDA kernel gives a row W lanes): accumulates
    into ga's rows r0, r1, r1 + stride and returns those columns' (d/deta, d/dlog lam) terms
    (train; both are sums over the columns, so the lanes' terms add up to the row's), the
    second 0 unless rows 3, 4 exist (lam_rows). The
    relaxed values (y's rows 1..4) and dz~/da come from the forward pass, and sigma(a) from sa
    when a log_prob cost kept it (sa.shape[0] != 0), else it is computed here."""
    base = rw[r0]
    if base == 0.0:
        return 0.0, 0.0
    D = a.shape[1]
    r2, r3, r4 = r1 + stride, r1 + 2 * stride, r1 + 3 * stride
    one = like(a, 1.0)
    x0 = like(a, 0.0)
    wb = like(a, base)
    sc = like(a, L[r0] - e * L[r2])         # learning signal of the score term
    sc2 = like(a, L[r0] - e * L[r4]) if lam_rows else x0   # rows 3, 4 exist only then
    mL2 = like(a, -L[r2])
    ibe = like(a, 1.0 / (base * e)) if e != 0.0 else x0
    ib = like(a, 1.0 / base)
    ibs = like(a, 1.0 / (base * SEED_EPS))
    kept = sa.shape[0] != 0
    n1 = x0
    n2 = x0
    dot = x0
    for j in range(lane, D, W):
        aj = a[r0, j]
        b = y[r0, j]
        dz = dzt[r0, j]
        s = b - (sa[r0, j] if kept else sigmoid(aj))
        y1 = y[r1, j]
        y2 = y[r2, j]
        c1 = gs[r1, j] * y1 * (one - y1) * inv1
        c2 = gs[r2, j] * y2 * (one - y2) * inv1 * dz
        ga[r0, j] += wb * sc * s
        ga[r1, j] += c1
        ga[r2, j] += c2
        if train:
            g = sc * s + (c1 + c2) * ib
            n1 += g * g
            dot += g * (mL2 * s + (c1 + c2) * ibe)
            if lam_rows:
                y3 = y[r3, j]
                y4 = y[r4, j]
                c3 = gs[r3, j] * y3 * (one - y3) * inv2
                c4 = gs[r4, j] * y4 * (one - y4) * inv2 * dz
                g2 = sc2 * s + (c3 + c4) * ibs
                n2 += g2 * g2
    de = 2.0 * base * float(dot) if e != 0.0 else 0.0
    return de, base * (float(n2) - float(n1)) / delta if lam_rows else 0.0


@njit(cache=True)
def _check_layout(configs):
    if configs != CONFIGS and configs != FIXED_CONFIGS:
        raise ValueError("REBAR: CONFIGS (temperature trained) or FIXED_CONFIGS configuration rows per drawn row")


@njit(cache=True)
def rebar_bwd(a, sa, dzt, y, L, rw, gs, stride, off, span, configs, eta, loglam, delta, ga, geta, glam, train):
    """Accumulate the REBAR estimate into ga (rows c = 0, 1, 2 of each drawn row) and, if train,
    the variance gradient of eta into geta and, when configs == CONFIGS (rows 3, 4 at the
    temperature lam'), that of log lam into glam. y holds
    the node's values of the forward pass (its configuration rows), dzt its dz~/da (drawn rows)
    and sa sigma(a) if a log_prob cost kept it (else an empty array: computed here)."""
    _check_layout(configs)
    lam_rows = train and configs == CONFIGS
    e = eta[0]
    inv1, inv2 = _inverse_temperatures(loglam, delta, a)
    R = a.shape[0]
    ge = 0.0
    gl = 0.0
    for base in range(0, R, span * stride):
        for r0 in range(base, base + stride):
            de, dl = _rebar_row(r0, r0 + off * stride, a, sa, dzt, y, L, rw, gs, stride, e, inv1, inv2, delta, ga,
                                train, lam_rows, 0, 1)
            ge += de
            gl += dl
    if train:
        geta[0] += ge
    if lam_rows:
        glam[0] += gl


@rows("flag")
def cv_flags(r, stride, off, span, configs, flag):
    """flag[r] = 1 on the node's rows c >= 1 (OR-accumulated over the REBAR nodes above a node)."""
    if slot_config(r, stride, off, span, configs) != 0:
        flag[r] = 1.0


@njit(cache=True, error_model="numpy", inline="always")
def _relaxed_unit(x, noise, uniform, inv):
    """sigmoid((a + L) / lam), L the logistic noise (logit(u) of a uniform if `uniform`), as
    _rebar_unit relaxes z; inv = 1 / lam in the precision of x."""
    z = _logistic_z(x, noise) if uniform else x + noise
    return sigmoid(z * inv)


@njit(cache=True)
def _relaxed_bernoulli_vjp(y, g, lam):
    """d/da of y = sigmoid((a + L) / lam) applied to cotangent g."""
    return g * y * (1.0 - y) / lam


@njit(**_LOOP)
def _relax_row(r, a, noise, uniform, inv, out):
    """One flagged row of relax_rows_bernoulli; one loop per noise kind, so each vectorises."""
    if uniform:
        for j in range(out.shape[1]):
            out[r, j] = _relaxed_unit(a[r, j], noise[r, j], True, inv)
    else:
        for j in range(out.shape[1]):
            out[r, j] = _relaxed_unit(a[r, j], noise[r, j], False, inv)


@rows("out", fastmath=False, error_model="python")
def relax_rows_bernoulli(r, flag, a, noise, uniform, loglam, out):
    """In flagged rows: out = sigmoid((a + L) / lam), L the node's logistic noise (from a uniform
    if `uniform`)."""
    if flag[r] != 0:
        _relax_row(r, a, noise, uniform, _inverse_temperatures(loglam, 0.0, out[r, 0])[0], out)


def _relax_rows_bernoulli_cell(r, j, flag, a, noise, uniform, loglam, out):
    if flag[r] != 0:
        out[r, j] = _relaxed_unit(a[r, j], noise[r, j], uniform, _inverse_temperatures(loglam, 0.0, out[0, 0])[0])


@rows("out", fastmath=False, error_model="python")
def relax_rows_bernoulli_bwd(r, flag, out, loglam, g, ga):
    """In flagged rows: ga += g * y (1 - y) / lam, then g = 0 (the node's own estimator then
    sees no cotangent there)."""
    if flag[r] != 0:
        lam = math.exp(loglam[0])
        for j in range(out.shape[1]):
            ga[r, j] += _relaxed_bernoulli_vjp(out[r, j], g[r, j], lam)
            g[r, j] = 0.0


def _relax_rows_bernoulli_bwd_cell(r, j, flag, out, loglam, g, ga):
    if flag[r] != 0:
        ga[r, j] += _relaxed_bernoulli_vjp(out[r, j], g[r, j], math.exp(loglam[0]))
        g[r, j] = 0.0


@njit(cache=True)
def _relaxed_categorical_group(a, gumbel, r, g0, K, lam, out):
    """out[r, g0:g0+K] = softmax((a + g) / lam) over one group."""
    m = -math.inf
    for k in range(K):
        m = max(m, (a[r, g0 + k] + gumbel[r, g0 + k]) / lam)
    tot = 0.0
    for k in range(K):
        e = math.exp((a[r, g0 + k] + gumbel[r, g0 + k]) / lam - m)
        out[r, g0 + k] = e
        tot += e
    for k in range(K):
        out[r, g0 + k] /= tot


@njit(cache=True)
def _relaxed_categorical_group_bwd(out, r, g0, K, lam, g, ga):
    """ga[r, group] += softmax VJP of g / lam; g[r, group] = 0."""
    dot = 0.0
    for k in range(K):
        dot += g[r, g0 + k] * out[r, g0 + k]
    for k in range(K):
        ga[r, g0 + k] += out[r, g0 + k] * (g[r, g0 + k] - dot) / lam
        g[r, g0 + k] = 0.0


@rows("out", fastmath=False, error_model="python")
def relax_rows_categorical(r, flag, a, gumbel, K, loglam, out):
    """In flagged rows: out = softmax((a + g) / lam) per group of K."""
    if flag[r] != 0:
        lam = math.exp(loglam[0])
        for g0 in range(0, out.shape[1], K):
            _relaxed_categorical_group(a, gumbel, r, g0, K, lam, out)


def _relax_rows_categorical_group(r, q, flag, a, gumbel, K, loglam, out):
    if flag[r] != 0:
        _relaxed_categorical_group(a, gumbel, r, q * K, K, math.exp(loglam[0]), out)


@rows("out", fastmath=False, error_model="python")
def relax_rows_categorical_bwd(r, flag, out, K, loglam, g, ga):
    """In flagged rows: ga += the softmax VJP of g / lam per group of K, then g = 0."""
    if flag[r] != 0:
        lam = math.exp(loglam[0])
        for g0 in range(0, out.shape[1], K):
            _relaxed_categorical_group_bwd(out, r, g0, K, lam, g, ga)


def _relax_rows_categorical_bwd_group(r, q, flag, out, K, loglam, g, ga):
    if flag[r] != 0:
        _relaxed_categorical_group_bwd(out, r, q * K, K, math.exp(loglam[0]), g, ga)


@njit(cache=True)
def _reparam_normal_bwd(r, j, eps, g, gloc, gscale):
    """One element: gloc += g, gscale += g * eps (each skipped when passed empty), g = 0."""
    if gloc.shape[0] != 0:
        gloc[r, j] += g[r, j]
    if gscale.shape[0] != 0:
        gscale[r, j] += g[r, j] * eps[r, j]
    g[r, j] = 0.0


@cells("g", fastmath=False, error_model="python")
def relax_rows_normal_bwd(r, j, flag, eps, g, gloc, gscale):
    """Continuous nodes below a REBAR node are reparameterised in its rows c > 0."""
    if flag[r] != 0:
        _reparam_normal_bwd(r, j, eps, g, gloc, gscale)


@rows("src")
def copy1(r, src, dst):
    """dst = src (1D)."""
    dst[r] = src[r]


# ----------------------------------------------------------------------------- categorical
@njit(cache=True)
def _softmax_group(x, lam, out):
    m = -math.inf
    for i in range(x.shape[0]):
        m = max(m, x[i] / lam)
    s = 0.0
    for i in range(x.shape[0]):
        out[i] = math.exp(x[i] / lam - m)
        s += out[i]
    for i in range(x.shape[0]):
        out[i] /= s


@njit(cache=True)
def _softmax_vjp(y, g, lam, out):
    """out = d/dx of softmax(x / lam) applied to cotangent g."""
    d = 0.0
    for i in range(y.shape[0]):
        d += g[i] * y[i]
    for i in range(y.shape[0]):
        out[i] = y[i] * (g[i] - d) / lam


@njit(cache=True)
def _group_noise(a, u, v, z, zt, th, cc, b):
    """z = a + Gumbel(u), b = argmax, z~ | b and its Jacobian pieces, for one group."""
    K = a.shape[0]
    best = 0
    for i in range(K):
        z[i] = a[i] - math.log(-math.log(u[i]))
        if z[i] > z[best]:
            best = i
    gumbel_given_argmax_jac(a, v, best, zt, th, cc)
    for i in range(K):
        b[i] = 1.0 if i == best else 0.0


@njit(cache=True)
def _rebar_categorical_forward_row(r, a, u, v, c, K, lam, lam2, out, z, zt, th, cc, b):
    """Row r (configuration c) of rebar_categorical_forward; work arrays hold >= K entries."""
    for g0 in range(0, out.shape[1], K):
        _group_noise(a[r, g0: g0 + K], u[r, g0: g0 + K], v[r, g0: g0 + K], z[:K], zt[:K], th[:K], cc[:K], b[:K])
        if c == 0:
            for i in range(K):
                out[r, g0 + i] = b[i]
        elif c == 1 or c == 3:
            _softmax_group(z[:K], lam if c <= 2 else lam2, out[r, g0: g0 + K])
        else:
            _softmax_group(zt[:K], lam if c <= 2 else lam2, out[r, g0: g0 + K])


@njit(cache=True)
def rebar_categorical_forward(a, u, v, stride, off, span, configs, K, loglam, delta, out):
    """Rows c = 0..configs-1 as for Bernoulli units: one-hot b, softmax(z / lam), softmax(z~ / lam),
    and (trained) the same at lam' (z = a + Gumbel noise, z~ the conditional Gumbel given b)."""
    lam = math.exp(loglam[0])
    lam2 = lam * math.exp(delta)
    z, zt, th, cc, b = np.empty(K), np.empty(K), np.empty(K), np.empty(K), np.empty(K)
    for r in range(out.shape[0]):
        c = slot_config(r, stride, off, span, configs)   # 0 (b) on the drawn row and other nodes' rows
        _rebar_categorical_forward_row(r, a, u, v, c, K, lam, lam2, out, z, zt, th, cc, b)


@njit(cache=True)
def _rebar_categorical_row(r0, r1, a, u, v, L, rw, gs, stride, K, e, lam, lam2, delta, ga, train, lam_rows,
                           wz, wzt, wth, wcc, wb, wy, wgz, wc1, wc2, wc3, wc4):
    """One drawn row r0 of rebar_categorical_bwd (work arrays hold >= K entries; the first K
    are used): accumulates into ga and returns the row's (d/deta, d/dlog lam) terms (train;
    the second 0 unless rows 3, 4 exist, lam_rows)."""
    base = rw[r0]
    if base == 0.0:
        return 0.0, 0.0
    D = a.shape[1]
    r2, r3, r4 = r1 + stride, r1 + 2 * stride, r1 + 3 * stride
    z, zt, th, cc, b, y, gz = wz[:K], wzt[:K], wth[:K], wcc[:K], wb[:K], wy[:K], wgz[:K]
    c1, c2, c3, c4 = wc1[:K], wc2[:K], wc3[:K], wc4[:K]
    n1 = 0.0
    n2 = 0.0
    dot = 0.0
    for g0 in range(0, D, K):
        _group_noise(a[r0, g0: g0 + K], u[r0, g0: g0 + K], v[r0, g0: g0 + K], z, zt, th, cc, b)
        _softmax_group(z, lam, y)
        _softmax_vjp(y, gs[r1, g0: g0 + K], lam, c1)
        _softmax_group(zt, lam, y)
        _softmax_vjp(y, gs[r2, g0: g0 + K], lam, gz)
        for i in range(K):
            c2[i] = 0.0
        jac_t_vec(th, cc, gz, c2)
        if lam_rows:
            _softmax_group(z, lam2, y)
            _softmax_vjp(y, gs[r3, g0: g0 + K], lam2, c3)
            _softmax_group(zt, lam2, y)
            _softmax_vjp(y, gs[r4, g0: g0 + K], lam2, gz)
            for i in range(K):
                c4[i] = 0.0
            jac_t_vec(th, cc, gz, c4)
        for i in range(K):
            s = b[i] - th[i]
            ga[r0, g0 + i] += base * (L[r0] - e * L[r2]) * s
            ga[r1, g0 + i] += c1[i]
            ga[r2, g0 + i] += c2[i]
            if train:
                g = (L[r0] - e * L[r2]) * s + (c1[i] + c2[i]) / base
                n1 += g * g
                if e != 0.0:
                    dot += g * (-L[r2] * s + (c1[i] + c2[i]) / (base * e))
                if lam_rows:
                    g2 = (L[r0] - e * L[r4]) * s + (c3[i] + c4[i]) / (base * SEED_EPS)
                    n2 += g2 * g2
    return 2.0 * base * dot, base * (n2 - n1) / delta if lam_rows else 0.0


@njit(cache=True)
def rebar_categorical_bwd(a, u, v, L, rw, gs, stride, off, span, configs, K, eta, loglam, delta, ga, geta, glam,
                          train):
    """REBAR for groups of K: relaxed rows backpropagate through softmax(. / lam) to z (row 1,
    dz/da = I) and to z~ (row 2, then J^T with J = dz~/da of the conditional Gumbel)."""
    _check_layout(configs)
    lam_rows = train and configs == CONFIGS
    e = eta[0]
    lam = math.exp(loglam[0])
    lam2 = lam * math.exp(delta)
    R = a.shape[0]
    z, zt, th, cc, b = np.empty(K), np.empty(K), np.empty(K), np.empty(K), np.empty(K)
    y, gz = np.empty(K), np.empty(K)
    c1, c2, c3, c4 = np.empty(K), np.empty(K), np.empty(K), np.empty(K)
    ge = 0.0
    gl = 0.0
    for r0 in range(R):
        if slot_local(r0, stride, span) != 0:
            continue
        de, dl = _rebar_categorical_row(r0, r0 + off * stride, a, u, v, L, rw, gs, stride, K, e, lam, lam2, delta,
                                        ga, train, lam_rows,
                                        z, zt, th, cc, b, y, gz, c1, c2, c3, c4)
        ge += de
        gl += dl
    if train:
        geta[0] += ge
    if lam_rows:
        glam[0] += gl


CUDA = {   # a thread per cell or group on a device (the CPU kernel's row loop is the wrong grain there), and the
    # kernels no loop shape fits: their launchers' makers (a string: one of kernels/cuda/rebar.py)
    "rebar_forward": lambda: cuda_launcher(rebar_forward, "cells", _rebar_forward_cell, "out"),
    "relax_rows_bernoulli": lambda: cuda_launcher(relax_rows_bernoulli, "cells", _relax_rows_bernoulli_cell, "out"),
    "relax_rows_bernoulli_bwd": lambda: cuda_launcher(relax_rows_bernoulli_bwd, "cells",
                                                      _relax_rows_bernoulli_bwd_cell, "out"),
    "relax_rows_categorical": lambda: cuda_launcher(relax_rows_categorical, "groups", _relax_rows_categorical_group,
                                                    "out"),
    "relax_rows_categorical_bwd": lambda: cuda_launcher(relax_rows_categorical_bwd, "groups",
                                                        _relax_rows_categorical_bwd_group, "out"),
    "rebar_bwd": "rebar.rebar_bwd_launcher",
    "rebar_categorical_forward": "rebar.rebar_categorical_forward_launcher",
    "rebar_categorical_bwd": "rebar.rebar_categorical_bwd_launcher",
}


# parity cases: REBAR rows at stride 2 of a lone node's digit (off 1, span = configs), 2 drawn rows;
# the variants (fixed temperature, a shared digit, eta = 0, ...) are tests/kernels/test_gpu_estimator_kernels.py's
R, D, K, S = 4, 6, 3, 2
N = S * CONFIGS * 2


def _forward_case(g):
    return (g.x(N, D), g.u(N, D), g.u(N, D), S, 1, CONFIGS, CONFIGS, g.h(-0.3), 0.1, g.out(N, D), g.out(N, D))


def _bwd_case(g):
    a, dzt, y = g.x(N, D), g.out(N, D), g.out(N, D)
    rebar_forward(a, g.u(N, D), g.u(N, D), S, 1, CONFIGS, CONFIGS, g.h(-0.3), 0.1, y, dzt)
    rw = g.pos(N)
    rw[S * CONFIGS + 1] = 0.0   # a drawn row of weight 0 is skipped
    return (a, np.empty((0, 0), g.dt), dzt, y, g.x(N), rw, g.x(N, D), S, 1, CONFIGS, CONFIGS, g.h(0.7), g.h(-0.3),
            0.1, g.x(N, D), g.x(1), g.x(1), True)


def _flag(g):
    f = np.zeros(R, g.dt)
    cv_flags(1, 1, CONFIGS, CONFIGS, f)   # rows 1..3 flagged, row 0 not
    return f


def _categorical_bwd_rows(g):
    f, out = _flag(g), g.out(R, D)
    relax_rows_categorical(f, g.x(R, D), g.x(R, D), K, g.h(0.3), out)
    return (f, out, K, g.h(0.3), g.x(R, D), g.x(R, D))


PARITY = {
    "rebar_forward": _forward_case,
    "rebar_weights": lambda g: (S, 1, CONFIGS, CONFIGS, g.h(0.7), g.pos(N), g.pos(N)),
    "rebar_bwd": _bwd_case,
    "cv_flags": lambda g: (1, 1, CONFIGS, CONFIGS, np.array([0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0], g.dt)),
    "relax_rows_bernoulli": lambda g: (_flag(g), g.x(R, D), g.u(R, D), True, g.h(0.3), g.out(R, D)),
    "relax_rows_bernoulli_bwd": lambda g: (_flag(g), g.u(R, D), g.h(0.3), g.x(R, D), g.x(R, D)),
    "relax_rows_categorical": lambda g: (_flag(g), g.x(R, D), g.x(R, D), K, g.h(0.3), g.out(R, D)),
    "relax_rows_categorical_bwd": _categorical_bwd_rows,
    "relax_rows_normal_bwd": lambda g: (_flag(g), g.x(R, D), g.x(R, D), g.x(R, D), g.x(R, D)),
    "copy1": lambda g: (g.x(R), g.out(R)),
    "rebar_categorical_forward": lambda g: (g.x(N, D), g.u(N, D), g.u(N, D), S, 1, CONFIGS, CONFIGS, K, g.h(0.2), 0.1,
                                            g.out(N, D)),
    "rebar_categorical_bwd": lambda g: (g.x(N, D), g.u(N, D), g.u(N, D), g.x(N), g.pos(N), g.x(N, D), S, 1, CONFIGS,
                                        CONFIGS, K, g.h(0.7), g.h(0.2), 0.1, g.x(N, D), g.x(1), g.x(1), True),
}
