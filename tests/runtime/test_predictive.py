"""prog.predict(..., num_samples=S) and prog.sample_prior(n, num_samples=S): S draws per row
with a leading sample axis (Pyro's Predictive), from ONE step call over the rows tiled S times
(per stage: the posterior predictive draws the latents from the guide, then the nodes).

The prior predictive's oracle is a model whose predictive law is known in closed form: z | x ~
N(w x + b, 1) (the prior), y | z ~ N(z, 0.5), so y | x ~ N(w x + b, sqrt(1.25)). For each of N held-out points the
interval between the order statistics X_(J) and X_(K) of its S predictive draws covers an
independent draw of y | x with probability exactly (K - J) / (S + 1) (S + 1 exchangeable draws of
a continuous law), so the number of covered points is Binomial(N, p): the check requires the
coverage within 4 binomial standard errors of p. The test of the test: the same check applied to
held-out points whose law is 5% (relatively) less covered by the intervals (the scale widened
until the coverage is 0.95 p) must fail, and its power there, computed from the binomial's
normal approximation, is >= 0.99 (printed).
"""
import numpy as np
import pytest
from scipy import stats

import ppl
from ppl import Affine, Model, Normal
from ppl.language import dist
from oracles import SIG_BLR, blr_design

S, N, J, K = 400, 5000, 20, 381            # draws per point, held-out points, order statistics
P = (K - J) / (S + 1)                       # exact coverage of [X_(J), X_(K)]: 0.9002
Z = 4.0
W, B, SD = 1.5, -0.3, np.sqrt(1.25)


def latent_regression():
    with Model("pred_cov") as m:
        x = m.input("x", 1)
        y = m.input("y", 1)
        z = Normal("z", loc=Affine(ppl.concat([x, y]), 1, name="q_loc"), scale=0.5)   # the guide
        m.latent(z, dist.Normal(Affine(x, 1, name="p_loc"), 1.0))
        m.observe("lik", dist.Normal(z, 0.5), y)
    prog = m.compile(dtype=np.float64)
    prog.params["p_loc.W"][...] = W
    prog.params["p_loc.b"][...] = B
    return prog


def coverage_check(draws, y):
    """(coverage, band, ok): the fraction of points whose [X_(J), X_(K)] holds y, and the check
    |coverage - P| <= Z sqrt(P (1 - P) / N)."""
    s = np.sort(draws, axis=0)
    cov = float(np.mean((s[J - 1] < y) & (y < s[K - 1])))
    band = Z * np.sqrt(P * (1 - P) / len(y))
    return cov, band, abs(cov - P) <= band


def count_calls(prog):
    """Wrap prog.entry to count the step calls made from Python."""
    calls = []
    step = prog.entry

    def counted(*a):
        calls.append(1)
        return step(*a)
    prog.entry = counted
    return calls


def test_prior_predictive_intervals_cover_at_the_nominal_rate():
    prog = latent_regression()
    rng = np.random.default_rng(11)
    x = rng.uniform(-2, 2, (N, 1))
    calls = count_calls(prog._generator(["y"]))
    draws = prog.predict({"x": x}, nodes="y", num_samples=S, seed=5, prior=True)["y"]
    assert draws.shape == (S, N, 1) and len(calls) == 1                     # one step call, not S
    mu = W * x[:, 0] + B
    y = mu + SD * rng.standard_normal(N)                                     # held-out truth
    cov, band, ok = coverage_check(draws[:, :, 0], y)
    # the test of the test: a law the intervals cover 5% (relatively) less often
    c = stats.norm.ppf(0.5 + P / 2) / stats.norm.ppf(0.5 + 0.95 * P / 2)    # scale giving coverage 0.95 P
    y_wide = mu + c * SD * rng.standard_normal(N)
    cov_bad, _, ok_bad = coverage_check(draws[:, :, 0], y_wide)
    p1 = 0.95 * P
    power = stats.norm.cdf((P - band - p1) / np.sqrt(p1 * (1 - p1) / N))
    print(f"coverage {cov:.4f} (exact {P:.4f} +- {band:.4f}); miscalibrated: {cov_bad:.4f}, power {power:.4f}")
    assert ok, (cov, P, band)
    assert power >= 0.99 and not ok_bad, (cov_bad, power)


def test_draw_zero_is_the_single_draw_and_draws_are_independent():
    prog = latent_regression()
    x = np.linspace(-1, 1, 7)[:, None]
    many = prog.predict({"x": x}, nodes=["y", "z"], num_samples=3, seed=9, prior=True)
    one = prog.predict({"x": x}, nodes=["y", "z"], seed=9, prior=True)
    assert many["y"].shape == many["z"].shape == (3, 7, 1)
    np.testing.assert_array_equal(many["y"][0], one["y"])
    assert len({tuple(many["y"][s, :, 0]) for s in range(3)}) == 3            # different noise per draw
    # the prior's draws of z: standardised, N(0, 1) by KS; the test of the test: not N(0, 1.05^2)
    z = prog.predict({"x": x[:1]}, nodes="z", num_samples=100_000, seed=1, prior=True)["z"][:, 0, 0]
    r = z - (W * x[0, 0] + B)
    assert stats.kstest(r, "norm").pvalue > 1e-3
    assert stats.kstest(r, "norm", args=(0.0, 1.05)).pvalue < 1e-3


def test_sample_prior_num_samples_and_argument_checks():
    with Model("pred_prior") as m:
        x = m.input("x", 2)
        z = Normal("z", loc=Affine(x, 3, name="q"), scale=1.0)
        m.latent(z, dist.Normal(0.0, 1.0))
        m.observe("lik", dist.Normal(Affine(z, 2, name="dec"), 0.5), x)
    prog = m.compile(dtype=np.float64)
    calls = count_calls(prog._generator(["x", "z"]))
    s = prog.sample_prior(50, num_samples=4, seed=2)
    assert s["z"].shape == (4, 50, 3) and s["x"].shape == (4, 50, 2) and len(calls) == 1
    np.testing.assert_array_equal(s["z"][0], prog.sample_prior(50, seed=2)["z"])
    for bad, msg in ((3.0, r"sample_prior: n must be an integer >= 1, got 3.0 \(float\)"),
                     (-1, r"sample_prior: n must be >= 1, got -1"), (True, r"n must be an integer"),
                     ("3", r"n must be an integer")):
        with pytest.raises(ppl.ModelError, match=msg):
            prog.sample_prior(bad)
    for bad in (0, 2.0, "4"):
        with pytest.raises(ppl.ModelError, match=r"predict: num_samples must be"):
            prog.sample_prior(5, num_samples=bad)


# --------------------------------------------------------------------------- posterior predictive
# Oracle: a Bayesian linear regression with known noise SIG_BLR and prior w ~ N(0, I), whose
# posterior is N(mu, Sigma), Sigma = (I + X'X / SIG^2)^-1, mu = Sigma X'y / SIG^2, and whose
# posterior predictive at x is N(x mu, SIG^2 + x' Sigma x). The design's columns are orthogonal, so
# Sigma is diagonal and the mean-field Normal guide can be exact: trained, it is checked against
# (mu, sqrt(diag Sigma)) first. Held-out rows are draws of the exact posterior predictive (w_i from
# the posterior, then y_i), so [X_(J), X_(K)] of a row's S draws covers y_i with probability P
# exactly when the draws are the exact predictive's. Checks: the coverage within Z binomial SEs of
# P (band < 0.02), and the mean ratio of the intervals' width to the exact one within 3% of 1 (a
# 5% narrower or wider interval fails: the ratio's SE over the rows is ~0.002). Test of the test:
# the prior predictive (prior=True) fails both.
N_HELD = 4000


def trained_blr(X, y):
    with Model("blr_pp") as m:
        x, t = m.input("x", 2), m.input("y", 1)
        w = Normal("w", ppl.param("w_loc", 2), ppl.softplus(ppl.param("w_s", 2, init=-2.0)))
        m.latent(w, dist.Normal(0.0, 1.0))
        with m.plate("data", size=len(X)):
            m.observe("lik", dist.Normal(ppl.rowdot(x, w), SIG_BLR), t)
    prog = m.compile(dtype=np.float64, samples=32)
    for lr, seed in ((0.05, 1), (0.005, 2), (0.0005, 3)):   # a decreasing step size, in phases
        ppl.fit(prog, {"x": X, "y": y}, ppl.optim.Adam(lr), steps=1500, batch_size=len(X), progress=False, seed=seed)
    return prog


def interval_check(draws, y, sd):
    """(coverage, its band, width ratio, ok) of the rows' [X_(J), X_(K)] against the exact law."""
    cov, band, ok = coverage_check(draws, y)
    s = np.sort(draws, axis=0)
    exact = (stats.norm.ppf(K / (S + 1)) - stats.norm.ppf(J / (S + 1))) * sd
    ratio = float(np.mean((s[K - 1] - s[J - 1]) / exact))
    return cov, band, ratio, ok and abs(ratio - 1) <= 0.03


def test_posterior_predictive_matches_the_exact_one():
    X, y, mu, sigma = blr_design()
    prog = trained_blr(X, y)
    np.testing.assert_allclose(prog.params["w_loc"], mu, atol=0.1 * np.sqrt(np.diag(sigma)).min())
    np.testing.assert_allclose(np.logaddexp(0, prog.params["w_s"]), np.sqrt(np.diag(sigma)), rtol=0.03)
    rng = np.random.default_rng(8)
    xh = rng.uniform(-2, 2, (N_HELD, 2))
    w = rng.multivariate_normal(mu, sigma, N_HELD)
    yh = np.sum(xh * w, 1) + SIG_BLR * rng.standard_normal(N_HELD)
    sd = np.sqrt(SIG_BLR ** 2 + np.einsum("ij,jk,ik->i", xh, sigma, xh))
    post = prog.predict({"x": xh}, "y", num_samples=S, seed=4)["y"][:, :, 0]
    prior = prog.predict({"x": xh}, "y", num_samples=S, seed=4, prior=True)["y"][:, :, 0]
    cov, band, ratio, ok = interval_check(post, yh, sd)
    cov_p, _, ratio_p, ok_p = interval_check(prior, yh, sd)
    print(f"posterior: coverage {cov:.4f} (exact {P:.4f} +- {band:.4f}), width ratio {ratio:.4f}; "
          f"prior: {cov_p:.4f}, {ratio_p:.3f}")
    assert band < 0.02 and ok, (cov, ratio)
    assert not ok_p, (cov_p, ratio_p)
    # the check's power against intervals 5% too narrow or too wide (the same draws rescaled)
    centre = np.median(post, 0)
    for f in (0.95, 1.05):
        assert not interval_check(centre + f * (post - centre), yh, sd)[3], f


def test_a_global_latent_is_drawn_once_per_draw_and_given_latents_are_conditioned_on():
    X, y, mu, sigma = blr_design()
    prog = trained_blr(X, y)
    out = prog.predict({"x": X[:5]}, ["w", "y"], num_samples=4, seed=2)
    assert out["w"].shape == (4, 5, 2) and np.all(out["w"] == out["w"][:, :1])           # shared by the rows
    assert len({tuple(v) for v in out["w"][:, 0]}) == 4                                    # one per draw
    one = prog.predict({"x": X[:5]}, ["w", "y"], seed=2)
    np.testing.assert_array_equal(one["y"], out["y"][0])                                   # draw 0 = the draw
    # a latent in data: y | w exactly, N(x w, SIG): KS at 1e-3, and the test of the test (1.05 SIG)
    w = np.array([2.0, -1.0])
    xs = np.tile(X[:1], (100_000, 1))
    draws = prog.predict({"x": xs, "w": np.tile(w, (100_000, 1))}, "y", seed=3)["y"][:, 0]
    r = (draws - xs @ w) / SIG_BLR
    assert stats.kstest(r, "norm").pvalue > 1e-3
    assert stats.kstest(r, "norm", args=(0.0, 1.05)).pvalue < 1e-3


def test_a_guide_that_reads_the_target_gives_replicates_and_needs_it():
    """q(z | x, y) reads y: predict draws z from q given (x, y), then y_rep ~ N(z, 0.5); with
    q_loc = a x + c y + b and scale 0.5, y_rep ~ N(a x + c y + b, sqrt(0.5)) (KS, and 1.05 fails)."""
    prog = latent_regression()
    prog.params["q_loc.W"][...] = [[0.8], [0.5]]
    prog.params["q_loc.b"][...] = 0.1
    rng = np.random.default_rng(2)
    x, y = rng.uniform(-1, 1, (50_000, 1)), rng.normal(size=(50_000, 1))
    rep = prog.predict({"x": x, "y": y}, "y", seed=1)["y"][:, 0]
    r = (rep - (0.8 * x[:, 0] + 0.5 * y[:, 0] + 0.1)) / np.sqrt(0.5)
    assert stats.kstest(r, "norm").pvalue > 1e-3
    assert stats.kstest(r, "norm", args=(0.0, 1.05)).pvalue < 1e-3
    with pytest.raises(ppl.ModelError, match=r"\['y'\] are read by the guide of \['z'\].*prior=True"):
        prog.predict({"x": x}, "y")
