"""The importance-weighted bound (compile(objective="iwae", samples=K)) and its estimators.

Oracle: tests/exact.py's `objective(..., iwae=K)`: every branch of a data row's expectation
(discrete nodes enumerated, Normal ones by Gauss-Hermite), every K-tuple of independent draws
of them enumerated, the bound -log (1/K sum_k exp(-C_k)) averaged with the tuples' weights; its
gradient by central differences (float64).

Unbiasedness: tests/stats.py's projection ratio on the exact gradient with its standard error
and the per-entry z, on estimates whose tile is sized for a ratio SE of about 0.8%;
`assert_unbiased` also requires the estimates scaled by 1.05 and 0.95 to fail, so each test
detects a 5% bias (the smallest detectable, 4 SE, is printed with -s). The estimators run in
combination, a different one on each of two stacked layers (tests/estimators/test_mixed_matrix.py's
models: Bernoulli, Normal and categorical layers).
"""
import math

import numpy as np
import pytest
from scipy.special import logsumexp

import ppl
from ppl.kernels.cpu import rows as cpu_rows

import exact
import stats
from test_mixed_matrix import X, build

from ppl import Affine, Bernoulli, Model, Normal

# the layer pairs of tests/estimators/test_mixed_matrix.py with one-unit Normal layers (the oracle's
# Gauss-Hermite rule over K draws: 120^K points per unit)
Y1 = np.array([[0.3], [1.1]])
DATA = {"x": X, "y": Y1}


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
    loss = cpu_rows.iwae_bound(tot, K, 1, rw, ell)
    want = [_bound(tot[i * K:(i + 1) * K]) for i in range(n)]
    assert loss == pytest.approx(np.mean(want), rel=1e-13)
    np.testing.assert_allclose(ell, np.repeat(want, K), rtol=1e-13)
    for i in range(n):
        C = tot[i * K:(i + 1) * K]
        np.testing.assert_allclose(rw[i * K:(i + 1) * K], np.exp(-C - logsumexp(-C)) / n, rtol=1e-12, atol=1e-300)
    cpu_rows.vimco_baseline(tot, K, 1, b)
    for i in range(n):
        C = tot[i * K:(i + 1) * K]
        for k in range(K):
            Ck = C.copy()
            Ck[k] = np.delete(C, k).mean()
            assert b[i * K + k] == pytest.approx(_bound(Ck), rel=1e-12, abs=1e-12)
    assert np.all(np.isfinite(b)) and np.all(np.isfinite(rw))


@pytest.mark.parametrize("M,K", [(7, 2), (9, 3), (6, 4), (4, 5)])
def test_the_oracles_multisets_sum_what_every_tuple_of_draws_sums(M, K):
    """tests/exact.py sums the bound over multisets of K branches weighted by their orderings;
    the plain sum over all M^K tuples of branches gives the same expectation."""
    from scipy.special import logsumexp
    rng = np.random.default_rng(M * 10 + K)
    w = rng.random(M)
    w /= w.sum()
    C = rng.normal(0.0, 3.0, M)
    idx = np.array(np.meshgrid(*[np.arange(M)] * K, indexing="ij")).reshape(K, -1)
    every = float((np.prod(w[idx], axis=0) * -(logsumexp(-C[idx], axis=0) - np.log(K))).sum())
    assert exact._row_iwae(w, C, K) == pytest.approx(every, rel=1e-13, abs=1e-13)


def test_a_nan_total_makes_the_bound_nan():
    tot = np.array([1.0, np.nan, 0.5, 0.2])
    rw, ell = np.zeros(4), np.zeros(4)
    assert math.isnan(cpu_rows.iwae_bound(tot, 2, 1, rw, ell))
    assert np.isnan(ell[:2]).all() and np.isfinite(ell[2:]).all()


# ----- the compiled bound against the oracle
def _program(layers, pe, ce, K, seed=1):
    m = build(layers, f"iw_{layers}_{pe if isinstance(pe, str) else pe[0]}_{ce if isinstance(ce, str) else ce[0]}_{K}",
              normal_width=1)
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
    ("BB", "local_disarm", "vimco", 3),
    ("BB", "vimco", "local_disarm", 2),
    ("BB", "local_disarm", "local_arm", 2),
    ("BN", "local_disarm", "pathwise", 2),
    ("NB", "pathwise", "local_arm", 2),
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
    m = build("NN", "iw_NN_pathwise", normal_width=1)
    prog = m.compile(dtype=np.float64, samples=3, objective="iwae")
    assert {ch.estimator for ch, _ in prog.choices.values()} == {"pathwise"}
    prog.theta[:] = np.random.default_rng(2).normal(0.0, 0.5, prog.theta.shape)
    exact.assert_step_gradient(prog, DATA)


def test_the_default_estimators_of_the_bound():
    """Under 'iwae' a discrete node gets vimco (the ELBO's DisARM default does not estimate the
    bound), a Normal node whose parameters depend on a stochastic node pathwise (DReG's rewrite
    does not apply: explain says why the rule fell through), a Normal encoder DReG (below)."""
    prog = build("BN", "iw_defaults", normal_width=1).compile(dtype=np.float64, samples=2, objective="iwae")
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
    (dict(objective="iwae", samples=2, lowering="row-fused"), r"lowering='row-fused' does not apply.*IWAE bound"),
])
def test_what_the_bound_refuses_is_a_clear_error(kwargs, says):
    with pytest.raises(ppl.ModelError, match=says):
        build("BB", "iw_refused", normal_width=1).compile(dtype=np.float64, **kwargs)


# ----- DReG
def vae_mix(name, with_b=True):
    """A one-unit Normal encoder z (DReG applies: its loc and scale feed z alone, nothing
    stochastic above or below it) beside a two-unit Bernoulli code b (with_b), both decoded."""
    with Model(name) as m:
        x = m.input("x", 3)
        e = ppl.tanh(Affine(x, 3, name="e"))
        z = Normal("z", loc=Affine(e, 1, name="loc"), scale=ppl.softplus(Affine(e, 1, name="sc")))
        m.cost("lqz", ppl.log_prob(z))
        m.cost("pz", ppl.gaussian_nll(ppl.param("pm", 1), ppl.softplus(ppl.param("ps", 1)), z))
        dec = Affine(z, 3, name="dz")
        if with_b:
            b = Bernoulli("b", logits=Affine(x, 2, name="qb"))
            m.cost("lqb", ppl.log_prob(b))
            m.cost("pb", ppl.bernoulli_nll(ppl.param("pb", 2), target=b))
            dec = dec + Affine(b, 3, name="db")
        m.cost("nll", ppl.bernoulli_nll(dec, target=x))
    return m


def test_dreg_is_the_default_for_an_encoder_and_refused_where_its_rewrite_fails():
    prog = vae_mix("iw_dreg_default").compile(dtype=np.float64, samples=2, objective="iwae")
    got = {n.name: ch.estimator for n, (ch, _) in prog.choices.items()}
    assert got == {"z": "dreg", "b": "vimco"}
    with pytest.raises(ppl.ModelError, match=r"Normal 'h2': estimator 'dreg' does not apply \(its parameter "
                                             r"'h2_loc' depends on the stochastic node 'h1'\)"):
        build("BN", "iw_dreg_refused", normal_width=1).compile(samples=2, objective="iwae", estimators={"h2": "dreg"})
    with Model("iw_dreg_reg") as m:   # a cost reads q's loc beside z
        x = m.input("x", 3)
        loc, sc = Affine(x, 1, name="loc"), ppl.softplus(Affine(x, 1, name="sc"))
        z = Normal("z", loc=loc, scale=sc)
        m.cost("lq", ppl.log_prob(z))
        m.cost("reg", ppl.total(ppl.tanh(loc)))
        m.cost("nll", ppl.bernoulli_nll(Affine(z, 3, name="dec"), target=x))
    with pytest.raises(ppl.ModelError, match=r"its parameter 'loc' also feeds 'tanh"):
        m.compile(samples=2, objective="iwae", estimators={"z": "dreg"})
    fell = m.compile(samples=2, objective="iwae")   # the rule table falls through to pathwise
    assert {n.name: ch.estimator for n, (ch, _) in fell.choices.items()} == {"z": "pathwise"}


@pytest.mark.slow
@pytest.mark.parametrize("with_b,K", [(True, 2), (False, 3)], ids=["dreg+vimco-K2", "dreg-K3"])
def test_dreg_is_unbiased(with_b, K):
    """DReG on the Normal encoder (beside VIMCO on the Bernoulli code, K = 2; alone, K = 3),
    every model parameter against the exact gradient of the bound (tests/exact.py); detects a
    5% bias."""
    m = vae_mix(f"iw_dreg_{int(with_b)}_{K}", with_b)
    est = {"z": "dreg", "b": "vimco"} if with_b else "dreg"
    prog = m.compile(dtype=np.float64, samples=K, objective="iwae", estimators=est)
    rng = np.random.default_rng(4)
    P = {k: rng.normal(0.0, 0.6, v.shape) for k, v in exact.model_params(prog).items()}
    for k, v in P.items():
        prog.params[k][...] = v
    names = list(P)
    data = {"x": X}
    e = stats.flat(exact.gradient(m, P, data, iwae=K), names)
    stats.assert_unbiased_tuned(prog, data, names, e, label=f"iwae dreg{' + vimco' if with_b else ''}, K={K}")


def test_dreg_keeps_the_encoders_signal_as_K_grows():
    """Tucker et al. (2019): near a trained encoder the pathwise gradient of the bound loses its
    signal-to-noise ratio in the encoder's parameters as K grows; DReG's grows. Measured here
    (4000 draws each, the encoder's entries' median |mean| / sd) after training on a small
    correlated binary set: DReG's variance is a tenth of pathwise's or less at K = 4 and 64, and
    its SNR at K = 64 exceeds its SNR at K = 4 by 30%."""
    rng = np.random.default_rng(0)
    Xb = (rng.random((200, 3)) < np.array([0.8, 0.3, 0.6])).astype(np.float64)
    Xb[:, 2] = np.where(rng.random(200) < 0.8, Xb[:, 0], 1 - Xb[:, 0])
    with Model("iw_snr") as m:
        x = m.input("x", 3)
        e = ppl.tanh(Affine(x, 3, name="e"))
        z = Normal("z", loc=Affine(e, 1, name="loc"), scale=ppl.softplus(Affine(e, 1, name="sc")))
        m.cost("lq", ppl.log_prob(z))
        m.cost("prior", ppl.gaussian_nll(ppl.param("pm", 1), ppl.softplus(ppl.param("ps", 1)), z))
        m.cost("nll", ppl.bernoulli_nll(Affine(z, 3, name="dec"), target=x))
    base = m.compile(dtype=np.float64, samples=4, objective="iwae")
    base.theta[:] = rng.normal(0.0, 0.3, base.theta.shape)
    ppl.fit(base, {"x": Xb}, ppl.optim.Adam(0.01), steps=3000, batch_size=20, progress=False)
    one = {"x": Xb[:1]}
    snr, var = {}, {}
    for K in (4, 64):
        for est in ("pathwise", "dreg"):
            p = m.compile(dtype=np.float64, samples=K, objective="iwae", estimators=est)
            p.theta[:] = base.theta
            enc = [k for k in p.params if k.split(".")[0] in ("e", "loc", "sc")]
            G = np.array([np.concatenate([np.ravel(g[k]) for k in enc]) for g in
                          (p.grad(one, seed=s)[1] for s in range(4000))])
            snr[est, K] = float(np.median(np.abs(G.mean(0)) / G.std(0)))
            var[est, K] = float(G.var(0).sum())
    print(snr, var)
    for K in (4, 64):
        assert var["dreg", K] < 0.1 * var["pathwise", K], (K, var)
    assert snr["dreg", 64] > 1.3 * snr["dreg", 4], snr


def test_a_closed_form_kl_cannot_form_the_bound_and_the_bundled_vae_samples_it():
    """A closed-form KL is an expectation over q, not a term of one draw's log weight: refused
    under 'iwae' with the fix; the bundled Gaussian VAE's kl="sampled" writes log q - log p per
    draw, trains on the bound and reports the bound beside the ELBO."""
    from ppl.models import gaussian_vae
    with pytest.raises(ppl.ModelError, match=r"cost 'kl_z' is a closed-form KL.*kl='sampled'"):
        gaussian_vae.build().compile(samples=2, objective="iwae")
    d = gaussian_vae.data()
    prog = gaussian_vae.build(kl="sampled").compile(samples=3, objective="iwae")
    assert {ch.estimator for ch, _ in prog.choices.values()} == {"dreg"}
    ppl.fit(prog, d["train"], ppl.optim.Adam(3e-3), steps=20, batch_size=16, progress=False)
    m = gaussian_vae.evaluate(prog, d, samples=3)
    assert set(m) == {"test_elbo", "test_iwae_3"} and m["test_iwae_3"] >= m["test_elbo"] - 0.5
    with pytest.raises(ValueError, match="kl must be"):
        gaussian_vae.build(kl="exact")
