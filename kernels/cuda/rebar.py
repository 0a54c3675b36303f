"""CUDA twin of ``cpu/rebar.py``: REBAR for Bernoulli and categorical units and the relaxed
rows of the nodes below a REBAR node.

The math is ``cpu_rebar``'s own ``@njit`` helpers, re-jitted by ``device()``: per unit
(``_rebar_unit``, ``_relaxed_unit``, ``_relaxed_bernoulli_vjp``, ``_reparam_normal_bwd``),
per group (``_relaxed_categorical_group``, ``_relaxed_categorical_group_bwd``) and per row
(``_rebar_weight_row``, ``_rebar_row``, ``_rebar_categorical_forward_row``,
``_rebar_categorical_row``); the CPU kernels are loops over the same helpers.

``rebar_bwd`` / ``rebar_categorical_bwd`` end in the eta and temperature variance-gradient sums:
they run as ONE block (``gpu_core.single_block``), each thread taking drawn rows
tid, tid + blockDim, ... in order, then a ``block_sum`` tree: a fixed summation order, so
the result is deterministic. A drawn row's thread alone writes its three rows of ``ga``.
The categorical kernels keep a group's work vectors in ``cuda.local.array``: at most
``MAX_K`` classes per group (``ValueError`` naming the limit otherwise).
"""
import math

from numba import cuda, float64

from ..cpu import rebar as B
from ..cpu.rebar import CONFIGS, FIXED_CONFIGS, SEED_EPS  # noqa: F401  (the same layout constants)
from ..math.slots import slot_config as _slot_config, slot_local as _slot_local
from .device import device
from ..native.launch import block_sum, single_block
from ..native.launch import run as _run
from ..registry import cells, items

MAX_K = 64   # classes per group of a categorical REBAR node (local work vectors per thread)

_rebar_unit = device(B._rebar_unit)
_logistic_z = device(B._logistic_z)
_hard = device(B._hard)
slot_config = device(_slot_config)
slot_local = device(_slot_local)
_inverse_temperatures = device(B._inverse_temperatures)
_rebar_weight_row = device(B._rebar_weight_row)
_rebar_row = device(B._rebar_row)
_relaxed_unit = device(B._relaxed_unit)
_relaxed_bernoulli_vjp = device(B._relaxed_bernoulli_vjp)
_relaxed_categorical_group = device(B._relaxed_categorical_group)
_relaxed_categorical_group_bwd = device(B._relaxed_categorical_group_bwd)
_reparam_normal_bwd = device(B._reparam_normal_bwd)
_rebar_categorical_forward_row = device(B._rebar_categorical_forward_row)
_rebar_categorical_row = device(B._rebar_categorical_row)


def _check_k(name, K):
    if K > MAX_K:
        raise ValueError(f"gpu_rebar.{name}: groups of K = {K} classes; the CUDA REBAR kernels support at most "
                         f"MAX_K = {MAX_K} classes per group (use target='cpu' for larger groups)")


def _check_configs(name, configs):
    if configs != CONFIGS and configs != FIXED_CONFIGS:
        raise ValueError(f"gpu_rebar.{name}: CONFIGS = {CONFIGS} (temperature trained) or FIXED_CONFIGS = "
                         f"{FIXED_CONFIGS} configuration rows, got {configs}")


def _rebar_forward_body(r, j, a, u, v, stride, off, span, configs, loglam, delta, out, dzt):
    R, D = out.shape
    inv1, inv2 = _inverse_temperatures(loglam, delta, out[0, 0])
    k = slot_local(r, stride, span)
    if k == 0:
        _rebar_unit(r, r + off * stride, j, a, u, v, stride, configs == CONFIGS, inv1, inv2, out, dzt)
    elif slot_config(r, stride, off, span, configs) == 0:   # another node's row: a hard draw from its logits
        x = a[r, j]
        out[r, j] = _hard(x, _logistic_z(x, u[r, j]))


_rebar_forward = cells(_rebar_forward_body, "out")


def rebar_forward(a, u, v, stride, off, span, configs, loglam, delta, out, dzt):
    """Configuration rows c = 0..configs-1 of a Bernoulli REBAR node, its hard value on the other
    REBAR nodes' rows and its dz~/da (see cpu_rebar)."""
    _run(_rebar_forward, out.shape[0] * out.shape[1], a, u, v, stride, off, span, configs, loglam, delta, out, dzt)


def _rebar_weights_body(r, stride, off, span, configs, eta, rw, cw):
    e = eta[0]
    _rebar_weight_row(r, stride, off, span, configs, e, rw, cw)


_rebar_weights = items(_rebar_weights_body, "rw.shape[0]")


def rebar_weights(stride, off, span, configs, eta, rw, cw):
    """On the node's rows c >= 1: cw[r] = the drawn row's cw times the seed factor of c, rw[r] = 0
    (cw starts as a copy of rw)."""
    _run(_rebar_weights, rw.shape[0], stride, off, span, configs, eta, rw, cw)


@cuda.jit
def _rebar_bwd(a, sa, dzt, y, L, rw, gs, stride, off, span, eta, loglam, delta, ga, geta, glam, train, lam_rows):
    e = eta[0]
    inv1, inv2 = _inverse_temperatures(loglam, delta, a[0, 0])
    ge = 0.0
    gl = 0.0
    for r0 in range(cuda.threadIdx.x, a.shape[0], cuda.blockDim.x):
        if slot_local(r0, stride, span) == 0:
            de, dl = _rebar_row(r0, r0 + off * stride, a, sa, dzt, y, L, rw, gs, stride, e, inv1, inv2, delta, ga,
                                train, lam_rows)
            ge += de
            gl += dl
    ge = block_sum(ge)
    gl = block_sum(gl)
    if train and cuda.threadIdx.x == 0:
        geta[0] += ge
    if lam_rows and cuda.threadIdx.x == 0:
        glam[0] += gl


def rebar_bwd(a, sa, dzt, y, L, rw, gs, stride, off, span, configs, eta, loglam, delta, ga, geta, glam, train):
    """Accumulate the REBAR estimate into ga and, if train, the variance gradient into geta
    and (configs == CONFIGS) glam (one block: deterministic sums); y and dzt come from
    rebar_forward, sa is sigma(a) kept by a log_prob cost or empty."""
    _check_configs("rebar_bwd", configs)
    single_block(_rebar_bwd, a.shape[0])(a, sa, dzt, y, L, rw, gs, stride, off, span, eta, loglam, delta, ga,
                                         geta, glam, bool(train), bool(train) and configs == CONFIGS)


def _cv_flags_body(r, stride, off, span, configs, flag):
    if slot_config(r, stride, off, span, configs) != 0:
        flag[r] = 1.0


_cv_flags = items(_cv_flags_body, "flag.shape[0]")


def cv_flags(stride, off, span, configs, flag):
    """flag[r] = 1 on the node's rows c >= 1 (OR-accumulated over the REBAR nodes above a node)."""
    _run(_cv_flags, flag.shape[0], stride, off, span, configs, flag)


def _relax_rows_bernoulli_body(r, j, flag, a, noise, uniform, loglam, out):
    R, D = out.shape
    inv = _inverse_temperatures(loglam, 0.0, out[0, 0])[0]
    if flag[r] != 0:
        out[r, j] = _relaxed_unit(a[r, j], noise[r, j], uniform, inv)


_relax_rows_bernoulli = cells(_relax_rows_bernoulli_body, "out")


def relax_rows_bernoulli(flag, a, noise, uniform, loglam, out):
    """In flagged rows: out = sigmoid((a + L) / lam)."""
    _run(_relax_rows_bernoulli, out.shape[0] * out.shape[1], flag, a, noise, bool(uniform), loglam, out)


def _relax_rows_bernoulli_bwd_body(r, j, flag, out, loglam, g, ga):
    R, D = out.shape
    lam = math.exp(loglam[0])
    if flag[r] != 0:
        ga[r, j] += _relaxed_bernoulli_vjp(out[r, j], g[r, j], lam)
        g[r, j] = 0.0


_relax_rows_bernoulli_bwd = cells(_relax_rows_bernoulli_bwd_body, "out")


def relax_rows_bernoulli_bwd(flag, out, loglam, g, ga):
    """In flagged rows: ga += g * y (1 - y) / lam, then g = 0."""
    _run(_relax_rows_bernoulli_bwd, out.shape[0] * out.shape[1], flag, out, loglam, g, ga)


def _relax_rows_categorical_body(i, flag, a, gumbel, K, loglam, out):
    R = out.shape[0]
    G = out.shape[1] // K
    lam = math.exp(loglam[0])
    r = i // G
    if flag[r] != 0:
        _relaxed_categorical_group(a, gumbel, r, (i - r * G) * K, K, lam, out)


_relax_rows_categorical = items(_relax_rows_categorical_body, "(out.shape[0]) * (out.shape[1] // K)")


def relax_rows_categorical(flag, a, gumbel, K, loglam, out):
    """In flagged rows: out = softmax((a + g) / lam) per group of K."""
    _run(_relax_rows_categorical, out.shape[0] * (out.shape[1] // K), flag, a, gumbel, K, loglam, out)


def _relax_rows_categorical_bwd_body(i, flag, out, K, loglam, g, ga):
    R = out.shape[0]
    G = out.shape[1] // K
    lam = math.exp(loglam[0])
    r = i // G
    if flag[r] != 0:
        _relaxed_categorical_group_bwd(out, r, (i - r * G) * K, K, lam, g, ga)


_relax_rows_categorical_bwd = items(_relax_rows_categorical_bwd_body, "(out.shape[0]) * (out.shape[1] // K)")


def relax_rows_categorical_bwd(flag, out, K, loglam, g, ga):
    """In flagged rows: ga += softmax VJP of g / lam per group, then g = 0."""
    _run(_relax_rows_categorical_bwd, out.shape[0] * (out.shape[1] // K), flag, out, K, loglam, g, ga)


def _relax_rows_normal_bwd_body(r, j_, flag, eps, g, gloc, gscale):
    R, D = g.shape
    i = r * g.shape[1] + j_
    if flag[r] != 0:
        _reparam_normal_bwd(r, i - r * D, eps, g, gloc, gscale)


_relax_rows_normal_bwd = cells(_relax_rows_normal_bwd_body, "g")


def relax_rows_normal_bwd(flag, eps, g, gloc, gscale):
    """Continuous nodes below a REBAR node are reparameterised in its rows c > 0."""
    _run(_relax_rows_normal_bwd, g.shape[0] * g.shape[1], flag, eps, g, gloc, gscale)


def _copy1_body(r, src, dst):
    dst[r] = src[r]


_copy1 = items(_copy1_body, "src.shape[0]")


def copy1(src, dst):
    _run(_copy1, src.shape[0], src, dst)


# ----------------------------------------------------------------------------- categorical
def _rebar_categorical_forward_body(r, a, u, v, stride, off, span, configs, K, loglam, delta, out):
    lam = math.exp(loglam[0])
    lam2 = lam * math.exp(delta)
    z = cuda.local.array(MAX_K, float64)
    zt = cuda.local.array(MAX_K, float64)
    th = cuda.local.array(MAX_K, float64)
    cc = cuda.local.array(MAX_K, float64)
    b = cuda.local.array(MAX_K, float64)
    _rebar_categorical_forward_row(r, a, u, v, slot_config(r, stride, off, span, configs), K, lam, lam2, out,
                                   z, zt, th, cc, b)


_rebar_categorical_forward = items(_rebar_categorical_forward_body, "out.shape[0]")


def rebar_categorical_forward(a, u, v, stride, off, span, configs, K, loglam, delta, out):
    """Rows c = 0..configs-1 of a categorical REBAR node (see cpu_rebar)."""
    _check_k("rebar_categorical_forward", K)
    _run(_rebar_categorical_forward, out.shape[0], a, u, v, stride, off, span, configs, K, loglam, delta, out)


@cuda.jit
def _rebar_categorical_bwd(a, u, v, L, rw, gs, stride, off, span, K, eta, loglam, delta, ga, geta, glam, train,
                           lam_rows):
    e = eta[0]
    lam = math.exp(loglam[0])
    lam2 = lam * math.exp(delta)
    z = cuda.local.array(MAX_K, float64)
    zt = cuda.local.array(MAX_K, float64)
    th = cuda.local.array(MAX_K, float64)
    cc = cuda.local.array(MAX_K, float64)
    b = cuda.local.array(MAX_K, float64)
    y = cuda.local.array(MAX_K, float64)
    gz = cuda.local.array(MAX_K, float64)
    c1 = cuda.local.array(MAX_K, float64)
    c2 = cuda.local.array(MAX_K, float64)
    c3 = cuda.local.array(MAX_K, float64)
    c4 = cuda.local.array(MAX_K, float64)
    ge = 0.0
    gl = 0.0
    for r0 in range(cuda.threadIdx.x, a.shape[0], cuda.blockDim.x):
        if slot_local(r0, stride, span) == 0:
            de, dl = _rebar_categorical_row(r0, r0 + off * stride, a, u, v, L, rw, gs, stride, K, e, lam, lam2,
                                            delta, ga, train, lam_rows, z, zt, th, cc, b, y, gz, c1, c2, c3, c4)
            ge += de
            gl += dl
    ge = block_sum(ge)
    gl = block_sum(gl)
    if train and cuda.threadIdx.x == 0:
        geta[0] += ge
    if lam_rows and cuda.threadIdx.x == 0:
        glam[0] += gl


def rebar_categorical_bwd(a, u, v, L, rw, gs, stride, off, span, configs, K, eta, loglam, delta, ga, geta, glam,
                          train):
    """REBAR for groups of K (see cpu_rebar.rebar_categorical_bwd); one block, deterministic sums."""
    _check_k("rebar_categorical_bwd", K)
    _check_configs("rebar_categorical_bwd", configs)
    single_block(_rebar_categorical_bwd, a.shape[0])(a, u, v, L, rw, gs, stride, off, span, K, eta, loglam,
                                                     delta, ga, geta, glam, bool(train),
                                                     bool(train) and configs == CONFIGS)


from ..cpu import rebar as _cpu_twin  # noqa: E402
from ..registry import link as _link  # noqa: E402

_link("rebar", _cpu_twin, globals())
