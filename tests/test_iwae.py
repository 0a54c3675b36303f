"""The importance-weighted bound (compile(objective="iwae", samples=K)) and its estimators.

Oracle: tests/exact.py's `objective(..., iwae=K)`: every branch of a data row's expectation
(discrete nodes enumerated, Normal ones by Gauss-Hermite), every K-tuple of independent draws
of them enumerated, the bound -log (1/K sum_k exp(-C_k)) averaged with the tuples' weights; its
gradient by central differences (float64).

Unbiasedness: tests/stats.py's projection ratio on the exact gradient with its standard error
and the per-entry z, on estimates whose tile is sized for a ratio SE of about 0.8%;
`assert_unbiased` also requires the estimates scaled by 1.05 and 0.95 to fail, so each test
detects a 5% bias (the smallest detectable, 4 SE, is printed with -s). The estimators run in
combination, a different one on each of two stacked layers (tests/test_mixed_matrix.py's
models: Bernoulli, Normal and categorical layers).
"""
import math

import numpy as np
import pytest
from scipy.special import logsumexp

import ppl
from ppl.kernels import cpu_rows

import exact
import stats
from test_mixed_matrix import DATA, build


# ----- the row kernels against their formulas
def _bound(C):
    return -(logsumexp(-C) - math.log(len(C)))


@pytest.mark.parametrize("spread", [1.0, 1e3])
def test_iwae_kernels_match_their_formulas(spread):
    """iwae_bound (the bound, the normalised weights / n) and vimco_baseline (the bound with
    draw k's total replaced by the mean of the others) against logsumexp, also with totals
    1e3 apart (no overflow or underflow to a wrong value)."""
    K, n = 4, 3
    tot = np.random.default_rng(0).normal(0.0, spread, n * K)
    rw, ell, b = np.zeros(n * K), np.zeros(n * K), np.zeros(n * K)
    loss = cpu_rows.iwae_bound(tot, K, rw, ell)
    want = [_bound(tot[i * K:(i + 1) * K]) for i in range(n)]
    assert loss == pytest.approx(np.mean(want), rel=1e-13)
    np.testing.assert_allclose(ell, np.repeat(want, K), rtol=1e-13)
    for i in range(n):
        C = tot[i * K:(i + 1) * K]
        np.testing.assert_allclose(rw[i * K:(i + 1) * K], np.exp(-C - logsumexp(-C)) / n, rtol=1e-12, atol=1e-300)
    cpu_rows.vimco_baseline(tot, K, b)
    for i in range(n):
        C = tot[i * K:(i + 1) * K]
        for k in range(K):
            Ck = C.copy()
            Ck[k] = np.delete(C, k).mean()
            assert b[i * K + k] == pytest.approx(_bound(Ck), rel=1e-12, abs=1e-12)
    assert np.all(np.isfinite(b)) and np.all(np.isfinite(rw))


def test_a_nan_total_makes_the_bound_nan():
    tot = np.array([1.0, np.nan, 0.5, 0.2])
    rw, ell = np.zeros(4), np.zeros(4)
    assert math.isnan(cpu_rows.iwae_bound(tot, 2, rw, ell))
    assert np.isnan(ell[:2]).all() and np.isfinite(ell[2:]).all()


# ----- the compiled bound against the oracle
def _program(layers, pe, ce, K, seed=1):
    m = build(layers, f"iw_{layers}_{pe if isinstance(pe, str) else pe[0]}_{ce if isinstance(ce, str) else ce[0]}_{K}")
    prog = m.compile(dtype=np.float64, estimators={"h1": pe, "h2": ce}, samples=K, objective="iwae")
    rng = np.random.default_rng(seed)
    P = {k: rng.normal(0.0, 0.8, v.shape) for k, v in exact.model_params(prog).items()}
    for k, v in P.items():
        prog.params[k][...] = v
    return m, prog, P


def test_the_loss_is_the_bound_and_tighter_than_the_elbo():
    """The mean of the step's loss over many draws is the exact bound (4 SE), which lies below
    the ELBO's objective (Jensen); K = 1 would be the ELBO and is refused."""
    m, prog, P = _program("BB", "vimco", "vimco", 3)
    F, Fe = exact.objective(m, P, DATA, iwae=3), exact.objective(m, P, DATA)
    assert F < Fe - 0.05
    D = {k: np.tile(v, (2000, 1)) for k, v in DATA.items()}
    L = np.array([prog.loss(D, seed=s) for s in range(40)])
    assert abs(L.mean() - F) <= 4 * L.std(ddof=1) / math.sqrt(len(L)), (L.mean(), F)
    assert "objective: iwae" in prog.explain() and "K = 3" in prog.explain()


# (layers, parent estimator, child estimator, K): each estimator of the bound as parent and as
# child, on Bernoulli, Normal and categorical layers
PAIRS = [
    ("BB", "vimco", "vimco", 3),
    ("BN", "vimco", "pathwise", 2),
    ("NB", "pathwise", "vimco", 2),
    ("CB", "vimco", ("score", {"baseline": "moving_average"}), 3),
    ("BC", ("score", {"baseline": "none"}), "vimco", 2),
]


@pytest.mark.slow
@pytest.mark.parametrize("layers,pe,ce,K", PAIRS, ids=[f"{p[0]}-{p[1] if isinstance(p[1], str) else p[1][0]}-"
                                                       f"{p[2] if isinstance(p[2], str) else p[2][0]}-K{p[3]}" for p in PAIRS])
def test_estimators_of_the_bound_are_unbiased(layers, pe, ce, K):
    """Every model parameter's gradient of the IWAE bound, against the exact gradient
    (tests/exact.py); detects a 5% bias (stats.assert_unbiased's test of the test)."""
    m, prog, P = _program(layers, pe, ce, K)
    names = list(P)
    e = stats.flat(exact.gradient(m, P, DATA, iwae=K), names)
    stats.assert_unbiased_tuned(prog, DATA, names, e, label=f"iwae {layers} {pe} -> {ce}, K={K}")


def test_reparameterised_gradient_of_the_bound_is_exact_at_fixed_noise():
    """Two Normal layers, pathwise: at fixed noise the step's gradient is the derivative of its
    own loss (the bound of the drawn samples) through the normalised weights (central differences)."""
    m = build("NN", "iw_NN_pathwise")
    prog = m.compile(dtype=np.float64, samples=3, objective="iwae")
    assert {ch.estimator for ch, _ in prog.choices.values()} == {"pathwise"}
    prog.theta[:] = np.random.default_rng(2).normal(0.0, 0.5, prog.theta.shape)
    exact.assert_step_gradient(prog, DATA)


def test_the_default_estimators_of_the_bound():
    """Under 'iwae' a Normal node with differentiable paths gets pathwise, a discrete one vimco
    (the ELBO's DisARM default does not estimate the bound)."""
    prog = build("BN", "iw_defaults").compile(dtype=np.float64, samples=2, objective="iwae")
    got = {n.name: ch.estimator for n, (ch, _) in prog.choices.items()}
    assert got == {"h1": "vimco", "h2": "pathwise"}
    assert "VIMCO" in prog.explain()


@pytest.mark.parametrize("kwargs, says", [
    (dict(objective="iwae", samples=1), r"objective 'iwae' is a bound over the samples=K draws.*samples >= 2"),
    (dict(objective="iwea", samples=2), r"objective must be one of 'elbo', 'iwae', got 'iwea'"),
    (dict(objective="iwae", samples=2, estimators={"h1": "disarm"}),
     r"Bernoulli 'h1': estimator 'disarm' does not apply \(it estimates the gradient of the 'elbo' objective, "
     r"not of 'iwae'\); use .*'vimco'"),
    (dict(objective="iwae", samples=2, estimators={"h1": ("score", {"baseline": "loo"})}),
     r"Bernoulli 'h1': under objective 'iwae' the score estimator's baseline is 'none' or 'moving_average'.*'vimco'"),
    (dict(objective="elbo", samples=2, estimators={"h1": "vimco"}),
     r"estimator 'vimco' does not apply \(it estimates the gradient of the 'iwae' objective, not of 'elbo'\)"),
    (dict(objective="iwae", samples=2, lowering="scalar"), r"lowering='scalar' does not apply.*IWAE bound"),
])
def test_what_the_bound_refuses_is_a_clear_error(kwargs, says):
    with pytest.raises(ppl.ModelError, match=says):
        build("BB", "iw_refused").compile(dtype=np.float64, **kwargs)
