"""prog.predict(..., num_samples=S) and prog.sample_prior(n, num_samples=S): S draws per row
with a leading sample axis (Pyro's Predictive), from ONE step call over the rows tiled S times.

The oracle is a model whose predictive law is known in closed form: z | x ~ N(w x + b, 1) (the
prior), y | z ~ N(z, 0.5), so y | x ~ N(w x + b, sqrt(1.25)). For each of N held-out points the
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


def test_predictive_intervals_cover_at_the_nominal_rate():
    prog = latent_regression()
    rng = np.random.default_rng(11)
    x = rng.uniform(-2, 2, (N, 1))
    calls = count_calls(prog._generator(["y"]))
    draws = prog.predict({"x": x}, nodes="y", num_samples=S, seed=5)["y"]
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
    many = prog.predict({"x": x}, nodes=["y", "z"], num_samples=3, seed=9)
    one = prog.predict({"x": x}, nodes=["y", "z"], seed=9)
    assert many["y"].shape == many["z"].shape == (3, 7, 1)
    np.testing.assert_array_equal(many["y"][0], one["y"])
    assert len({tuple(many["y"][s, :, 0]) for s in range(3)}) == 3            # different noise per draw
    # the prior's draws of z: standardised, N(0, 1) by KS; the test of the test: not N(0, 1.05^2)
    z = prog.predict({"x": x[:1]}, nodes="z", num_samples=100_000, seed=1)["z"][:, 0, 0]
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
