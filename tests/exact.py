"""An independent oracle for any small model: the exact objective, interpreted from the model's
graph in NumPy (float64), and its gradient by central differences.

The expectation over the random nodes is exact: every discrete node is enumerated over its
support (weight p(v | parents)), every Normal node integrated by a Gauss-Hermite rule
(tensor product over its units; `GH_POINTS` points per unit, exact for polynomials of degree
< 2 * GH_POINTS and accurate to ~1e-10 for the smooth costs used here; `IWAE_GH_POINTS` for the
importance-weighted bound, see below). It shares no code with
the compiler or the kernels: each op is written again below from its definition.

    F = objective(model, params, data)           # mean over data rows of E[sum of costs]
    g = gradient(model, params, data)            # {param name: dF/dparam}
    F = objective(model, params, data, iwae=K)   # the importance-weighted bound of K draws:
                                                 # mean over data rows of E[-log mean_k exp(-C_k)]
    g = gradient(model, params, data, iwae=K)

The bound's expectation is over K independent draws of every branch (weight w_b, total cost
C_b): every multiset of K branches is enumerated once, weighted by its number of orderings (the
bound is symmetric in its draws; C(M + K - 1, K) terms for M branches, not M^K).
"""
import functools
import itertools
import math

import numpy as np
from scipy import stats as sps
from scipy.special import expit, gammaln, log_ndtr, logsumexp, xlog1py, xlogy

GH_POINTS = 16
# a Geometric node's support is cut where the tail's probability is below this (for every branch)
GEOMETRIC_TAIL = 1e-15
# The bound of K draws is a log-sum-exp of K draws' costs: far less polynomial in the draws than
# a cost is, 16 points per unit miss its gradient by ~2% (measured on a one-unit Normal encoder,
# K = 2, against 160 and 320 points, which agree to 1e-4); 120 points agree to 1e-4.
IWAE_GH_POINTS = 120
MAX_TUPLES = 4_000_000
POISSON_MAX = 48


@functools.lru_cache(maxsize=None)
def _gh(points):
    x, w = np.polynomial.hermite_e.hermegauss(points)   # weight exp(-x^2 / 2)
    return x, w / w.sum()


def _softplus(a):
    return np.logaddexp(0.0, a)


def _log_sigmoid(a):
    return -np.logaddexp(0.0, -a)


def _groups(a, K):
    return a.reshape(a.shape[0], -1, K)


def _log_prob(kind, value, params, attrs):
    """log p(value | params), summed over columns, per branch."""
    if kind == "bernoulli":
        (a,) = params
        return (value * _log_sigmoid(a) + (1 - value) * _log_sigmoid(-a)).sum(-1)
    if kind == "bernoulli_probit":
        (a,) = params
        return (value * log_ndtr(a) + (1 - value) * log_ndtr(-a)).sum(-1)
    if kind == "normal":
        loc, scale = params
        return (-0.5 * math.log(2 * math.pi) - np.log(scale) - 0.5 * ((value - loc) / scale) ** 2).sum(-1)
    if kind == "categorical":
        (a,) = params
        K = attrs["K"]
        lp = _groups(a, K) - logsumexp(_groups(a, K), axis=-1, keepdims=True)
        return (lp * _groups(value, K)).sum((-1, -2))
    if kind == "poisson":
        (rate,) = params
        return (xlogy(value, rate) - rate - gammaln(value + 1)).sum(-1)
    if kind == "bernoulli_probs":
        (p,) = params
        return (xlogy(value, p) + xlog1py(1 - value, -p)).sum(-1)
    if kind == "categorical_probs":
        (w,) = params
        K = attrs["K"]
        pi = _groups(w, K) / _groups(w, K).sum(-1, keepdims=True)
        return xlogy(_groups(value, K), pi).sum((-1, -2))
    if kind in ("binomial", "binomial_logits"):
        n, p = params
        p = expit(p) if kind == "binomial_logits" else p
        return sps.binom.logpmf(value, n, p).sum(-1)
    if kind in ("geometric", "geometric_logits"):
        (p,) = params
        p = expit(p) if kind == "geometric_logits" else p
        return sps.geom.logpmf(value + 1, p).sum(-1)   # scipy counts the trials, ppl the failures
    raise NotImplementedError(kind)


def _support(kind, width, attrs, params):
    """The joint support of a discrete node, one row per value (counts: 0..n for the largest n of
    the branches' parameters; a geometric count cut where every branch's tail is below
    GEOMETRIC_TAIL)."""
    if kind in ("bernoulli", "bernoulli_probit", "bernoulli_probs"):
        c = np.arange(2 ** width)
        return ((c[:, None] >> np.arange(width)[None, :]) & 1).astype(np.float64)
    if kind == "poisson":   # counts 0 .. POISSON_MAX - 1 of one unit (rates of a few units: the tail < 1e-25)
        if width != 1:
            raise NotImplementedError("the oracle enumerates Poisson nodes of width 1")
        return np.arange(POISSON_MAX, dtype=np.float64)[:, None]
    if kind.startswith(("binomial", "geometric")):
        if kind.startswith("binomial"):
            top = int(np.max(params[0]))
        else:
            q = 1 - np.min(expit(params[0]) if kind == "geometric_logits" else params[0])
            top = 0 if q == 0 else int(np.ceil(np.log(GEOMETRIC_TAIL) / np.log(q)))
        grid = np.meshgrid(*[np.arange(top + 1.0)] * width, indexing="ij")
        return np.array(grid).reshape(width, -1).T
    K = attrs["K"]
    G = width // K
    c = np.arange(K ** G)
    out = np.zeros((len(c), width))
    for g in range(G):
        out[np.arange(len(c)), g * K + (c // K ** g) % K] = 1.0
    return out


def _layer(n, x, params):
    k = n.kind
    if k == "affine":
        return x[0] @ params[f"{n.name}.W"] + params[f"{n.name}.b"]
    if k == "sigmoid":
        return 1 / (1 + np.exp(-x[0]))
    if k == "tanh":
        return np.tanh(x[0])
    if k == "relu":
        return np.maximum(x[0], 0.0)
    if k == "softplus":
        return _softplus(x[0])
    if k == "exp":
        return np.exp(x[0])
    if k == "sqrt1p":
        return np.sqrt(1 + x[0] ** 2)
    if k == "add":
        return x[0] + x[1]
    if k == "mul":
        return x[0] * x[1]
    if k == "scale_shift":
        return n.attrs["scale"] * x[0] + n.attrs["shift"]
    if k == "rowsum":
        return x[0].sum(-1, keepdims=True)
    if k == "concat":
        return np.concatenate(x, axis=-1)
    if k == "bcast":
        return np.repeat(x[0], n.width, -1)
    if k == "div":
        return x[0] / x[1]
    raise NotImplementedError(k)


def _head(n, x):
    k = n.kind
    if k == "bernoulli_nll":
        a, t = x
        return (_softplus(a) - t * a).sum(-1)
    if k == "gaussian_nll":
        loc, scale, t = x
        return (0.5 * math.log(2 * math.pi) + np.log(scale) + 0.5 * ((t - loc) / scale) ** 2).sum(-1)
    if k == "softmax_xent":
        a, t = x
        K = n.attrs["K"]
        lp = _groups(a, K) - logsumexp(_groups(a, K), axis=-1, keepdims=True)
        return -(lp * _groups(t, K)).sum((-1, -2))
    if k == "gaussian_kl_std":
        loc, scale = x
        return (0.5 * (scale ** 2 + loc ** 2 - 1) - np.log(scale)).sum(-1)
    if k == "gaussian_kl":
        m, s, m2, s2 = x
        return (np.log(s2 / s) + (s ** 2 + (m - m2) ** 2) / (2 * s2 ** 2) - 0.5).sum(-1)
    if k == "total":
        return x[0].sum(-1)
    if k == "log_prob":
        s = n.inputs[0]
        return _log_prob(s.kind, x[0], x[1:], s.attrs)
    if k == "law_nll":
        return -_log_prob(n.attrs["law"], x[-1], x[:-1], n.attrs)
    if k == "blackbox":
        fn = n.attrs["fn"].py_func
        return np.array([float(fn(*(xi[r] for xi in x))) for r in range(x[0].shape[0])])
    raise NotImplementedError(k)


def _row_branches(model, params, row, gh=GH_POINTS):
    """(w, C): the branches of one data row's expectation (dict input name -> 1D array): their
    weights (summing to 1) and the sum of the costs in each."""
    vals = {}
    w = np.ones(1)          # branch weights
    nb = 1
    for n in model.order:
        ins = [vals[i.name] for i in n.inputs]
        if n.kind == "input":
            vals[n.name] = np.repeat(np.asarray(row[n.name], dtype=np.float64)[None, :], nb, 0)
        elif n.kind == "param":
            vals[n.name] = np.repeat(params[n.name][None, :], nb, 0)
        elif n.kind == "const":
            vals[n.name] = np.full((nb, n.width), n.attrs["value"])
        elif n.is_stochastic:
            if n.kind == "normal":
                loc, scale = ins
                gx, gw = _gh(gh)
                pts = np.array(np.meshgrid(*[gx] * n.width, indexing="ij")).reshape(n.width, -1).T
                pw = np.prod(np.array(np.meshgrid(*[gw] * n.width, indexing="ij")).reshape(n.width, -1), 0)
                m = len(pw)
                z = np.repeat(loc, m, 0) + np.repeat(scale, m, 0) * np.tile(pts, (nb, 1))
                w = np.repeat(w, m) * np.tile(pw, nb)
            else:
                sup = _support(n.kind, n.width, n.attrs, ins)
                m = len(sup)
                z = np.tile(sup, (nb, 1))
                rep = [np.repeat(p, m, 0) for p in ins]
                w = np.repeat(w, m) * np.exp(_log_prob(n.kind, z, rep, n.attrs))
            for k in vals:
                vals[k] = np.repeat(vals[k], m, 0)
            nb *= m
            vals[n.name] = z
            if not np.all(w > 0):   # values of probability 0 (counts beyond n, p in {0, 1}): left out
                keep = w > 0
                w, nb = w[keep], int(keep.sum())
                vals = {k: v[keep] for k, v in vals.items()}
        elif n.attrs.get("is_head"):
            vals[n.name] = _head(n, ins)
        else:
            vals[n.name] = _layer(n, ins, params)
    return w, sum(np.broadcast_to(vals[c.name], w.shape) for c in model.costs)


@functools.lru_cache(maxsize=8)
def _multisets(M, K):
    """(K, n) branch indices of every multiset of K draws from M branches (sorted tuples), and
    each one's count of orderings K! / prod(multiplicity!)."""
    idx = np.array(list(itertools.combinations_with_replacement(range(M), K)), dtype=np.int64).T.reshape(K, -1)
    count = np.full(idx.shape[1], float(math.factorial(K)))
    run = np.ones(idx.shape[1])
    for k in range(1, K):   # sorted: equal draws are adjacent; run = length of the current run of equals
        run = np.where(idx[k] == idx[k - 1], run + 1, 1.0)
        count /= run
    return idx, count


def _row_iwae(w, C, K):
    """E[-log (1/K sum_k exp(-C_{b_k}))] over K independent draws of the branches. The bound is
    symmetric in its draws: every multiset of K branches once, weighted by its orderings (the
    same sum as over the M^K tuples, about K! times fewer terms)."""
    if math.comb(len(w) + K - 1, K) > MAX_TUPLES:
        raise NotImplementedError(f"the oracle would enumerate {math.comb(len(w) + K - 1, K)} multisets of {K} of "
                                  f"{len(w)} branches; use a smaller model (fewer units, Normal nodes of width 1) "
                                  f"or fewer draws")
    idx, count = _multisets(len(w), K)
    wt = np.prod(w[idx], axis=0) * count
    ell = -(logsumexp(-C[idx], axis=0) - math.log(K))
    return float((wt * ell).sum())


def _row_objective(model, params, row, iwae=None):
    w, C = _row_branches(model, params, row, GH_POINTS if iwae is None else IWAE_GH_POINTS)
    return float((w * C).sum()) if iwae is None else _row_iwae(w, C, iwae)


def objective(model, params, data=None, rows=1, iwae=None):
    """Mean over data rows of E[sum of costs] (iwae=K: of the importance-weighted bound of K
    draws); `rows` data rows when the model has no input."""
    if data:
        B = len(next(iter(data.values())))
        return sum(_row_objective(model, params, {k: v[i] for k, v in data.items()}, iwae) for i in range(B)) / B
    return _row_objective(model, params, {}, iwae)


def model_params(prog):
    """The model's own parameters of a compiled program, as float64 copies (no estimator state)."""
    return {k: np.array(prog.params[k], dtype=np.float64) for k in prog.model_param_names()}


def gradient(model, params, data=None, eps=1e-5, iwae=None):
    """Central differences of `objective` for every entry of every parameter."""
    P = {k: np.array(v, dtype=np.float64) for k, v in params.items()}
    out = {}
    for k, v in P.items():
        g = np.zeros_like(v)
        for idx in np.ndindex(v.shape):
            old = v[idx]
            v[idx] = old + eps
            fp = objective(model, P, data, iwae=iwae)
            v[idx] = old - eps
            fm = objective(model, P, data, iwae=iwae)
            v[idx] = old
            g[idx] = (fp - fm) / (2 * eps)
        out[k] = g
    return out


def assert_step_gradient(prog, data, seed=3, step=1, h=1e-6):
    """The step's gradient at fixed noise (same seed and step) against central differences of
    its own loss, entry by entry of theta (to 1e-6 relative, 1e-8 absolute): the backward pass
    of a reparameterised / deterministic graph is exact."""
    import pytest
    _, g = prog.grad(data, seed=seed, step=step)
    flat = np.concatenate([g[k].ravel() for k in g])
    for i in range(prog.theta.shape[0]):
        keep = prog.theta[i]
        prog.theta[i] = keep + h
        up = prog.loss(data, seed=seed, step=step)
        prog.theta[i] = keep - h
        down = prog.loss(data, seed=seed, step=step)
        prog.theta[i] = keep
        assert flat[i] == pytest.approx((up - down) / (2 * h), rel=1e-6, abs=1e-8), i
