"""The score control variates of stochastic derivatives weighed along the parameters
(ppl/lowering/tangents.py, kernels/families/sd_control.py): each jumping node's draws' score
along the parameters, at each step, added to the estimate with a coefficient learned along the run.

Oracles: StochasticAD's random walk by its exact law (tests/estimators/test_sd_tangents.py); the
other models unrolled and enumerated by tests/exact.py. Statistic: tests/stats.py's projection ratio
of the mean estimate on the exact gradient with its standard error; `assert_unbiased_tuned` sizes
the draws for a ratio SE of about 0.8% and requires the estimates scaled by 1.05 and 0.95 to fail, so
each case detects a 5% bias.
"""
import numpy as np
import pytest

import ppl
from ppl import Model

import exact
import stats
from small_models import last_carry
from test_sd_tangents import S0, SD, laws, sad_walk, sad_walk_exact

from ppl.kernels.families.sd_control import CELL as K   # a cell's numbers per direction

CELL = "stochastic_derivative.score_cv"


def other_laws(name, T, scanned):
    """Each step a Bernoulli by logits, a Binomial by probabilities and a Geometric by logits, moved
    by the carry and two parameter entries (the laws `laws` leaves out)."""
    with Model(name) as m:
        s0 = m.input("s0", 1)
        a, b = ppl.param("a", 1, 0.3), ppl.param("b", 1, -0.2)

        def body(s, t):
            k = "" if scanned else str(len(m.costs))
            x = ppl.Bernoulli(f"x{k}", logits=a + 0.4 * s)
            n = ppl.Binomial(f"n{k}", 2.0, probs=ppl.sigmoid(b - 0.3 * x + 0.2 * s))
            g = ppl.Geometric(f"g{k}", logits=a + b + 0.5 * n)
            m.cost(f"cost{k}", ppl.total(0.3 * (s * s) + 0.4 * n * x - 0.2 * g))
            return 0.5 * s + x + 0.3 * n - 0.1 * g, None

        last = last_carry(body, s0, T, scanned)
        m.cost("end", ppl.total(last * last))
    return m


class FixedCoefficients:
    """A program whose control variates' coefficients are replaced before each gradient call by
    numbers drawn at random (log-uniform over [1/20, 2] in size, either sign, per cell and
    direction), the sums zeroed: any coefficients fixed before a step's draws keep the estimate
    unbiased where every score has mean zero, so a law's score off by a constant fails."""

    def __init__(self, prog, seed=0):
        (self.off, self.size), = [(o, s) for name, o, s, _ in prog.layout.state if name == CELL]
        self.nd = prog.theta.size   # every parameter entry moves a jumping law here: a direction each
        assert self.size % (K * self.nd) == 0
        self.prog, self.rng, self.used = prog, np.random.default_rng(seed), 0

    def grad(self, data, seed=0, batch=None):
        cells = self.size // (K * self.nd)
        block = np.zeros((cells, K, self.nd))
        block[:, 0] = (np.exp(self.rng.uniform(-3.0, 0.7, size=(cells, self.nd)))
                       * self.rng.choice([-1.0, 1.0], size=(cells, self.nd)))
        self.prog.state[self.off:self.off + self.size] = block.ravel()
        self.used += 1
        return self.prog.grad(data, seed=seed, batch=batch)


CASES = {
    "walk": (lambda: sad_walk("sdc_walk", 20, 40.0), {"X0": np.zeros((8, 1))}, None),
    "laws": (lambda: laws("sdc_laws", 2, True, False), {"s0": S0}, lambda: laws("sdc_laws_unrolled", 2, False, False)),
    "counts": (lambda: laws("sdc_counts", 1, True, True), {"s0": S0},
               lambda: laws("sdc_counts_unrolled", 1, False, True)),
    "other_laws": (lambda: other_laws("sdc_other", 1, True), {"s0": S0},
                   lambda: other_laws("sdc_other_unrolled", 1, False)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_any_coefficients_fixed_before_a_step_keep_the_estimate_unbiased(case):
    """Every law's score along the parameters has mean zero: the estimates with coefficients drawn
    at random before each call (FixedCoefficients) stay unbiased against the exact oracle, on
    StochasticAD's walk (Bernoulli by probabilities), the laws of test_sd_tangents (Categorical and
    Binomial by logits; Poisson and Geometric by probabilities) and `other_laws` (Bernoulli by
    logits, Binomial by probabilities, Geometric by logits), each on its alternative paths."""
    build, data, unrolled = CASES[case]
    prog = build().compile(dtype=np.float64, estimators=SD, seed=1)
    assert "sd_score_learn" in prog.source and "sd_score_apply" in prog.source
    if unrolled is None:
        names, e = ["p"], np.array([sad_walk_exact(20, 40.0)])
    else:
        P = exact.model_params(prog)
        names = list(P)
        e = stats.flat(exact.gradient(unrolled(), P, data), names)
    fixed = FixedCoefficients(prog)
    r, _ = stats.assert_unbiased_tuned(fixed, data, names, e, f"control variates' coefficients at random, {case}")
    assert r.detectable < 0.05 and fixed.used >= 200


def test_the_learned_coefficients_lower_the_walks_variance():
    """StochasticAD's walk (n = 10, p = 20), one program with the control variates and one without
    (option control="none"), on the same seeds after 100 calls of learning: the same draws, so the
    estimates differ by the control variates alone. Their variance over 300 calls of 16 rows falls
    by more than a fifth (the by-hand optimum is 41%: std 0.985 -> 0.747 per sample), and the mean
    moves by less than 4 standard errors of the difference."""
    walk = sad_walk("sdc_var", 10, 20.0)
    on = walk.compile(dtype=np.float64, estimators={"up": SD}, seed=1)
    off = walk.compile(dtype=np.float64, estimators={"up": (SD, {"control": "none"})}, seed=1)
    assert "sd_score" not in off.source
    data = {"X0": np.zeros((16, 1))}
    for s in range(100):
        on.grad(data, seed=50_000 + s)
    (o, c), = [(o, s) for name, o, s, _ in on.layout.state if name == CELL]
    learned = on.state[o:o + c].reshape(10, K)[:, 0]
    assert learned[0] == 0.0 and np.count_nonzero(learned) >= 5   # step 0 has no score (X = 0); a few cells
    # of 1,600 rows may still be shrunk to 0 (z^2 < 1)
    g_on = stats.draws(on, data, ["p"], 300)[:, 0]
    g_off = stats.draws(off, data, ["p"], 300)[:, 0]
    assert g_on.var() < 0.8 * g_off.var()
    diff = g_on - g_off
    assert abs(diff.mean()) < 4 * diff.std(ddof=1) / np.sqrt(diff.size)


def test_the_kernels_against_their_definition():
    """sd_estimate, sd_score_learn, sd_score_apply and sd_cv_update against numpy: over two steps of
    a scored node (4 rows a step, drawn rows 0 and 2, two directions, two paths), each cell's sums
    add the drawn rows' E s, s^2 and (E s)^2 (a row whose E is NaN adds nothing), the control
    variates add c s to the drawn rows only, and the coefficients become -sum(E s) / sum(s^2)
    shrunk by max(0, 1 - sum((E s)^2) / sum(E s)^2) before the sums decay."""
    from ppl.kernels.cpu import core
    rng = np.random.default_rng(5)
    R, A, ND, T = 4, 2, 2, 2
    W, D, S, acc = rng.uniform(0.5, 2, (R, A)), rng.normal(size=(R, A)), rng.normal(size=(R, A * ND)), rng.normal(
        size=(R, ND))
    acc[2, 1] = np.nan
    sc = rng.normal(size=(T * R, ND))
    sc.reshape(T, R, ND)[:, 1::2] = np.nan   # written on the drawn rows only: the others are not read
    off = 3
    state = np.concatenate([[9.0, 9.0, 9.0], rng.normal(size=K * ND * T)])
    before = state.copy()
    E = np.zeros((R, ND))
    core.sd_estimate(W, D, S, acc, E, 1, 2)
    core.sd_score_learn(E, sc, T, state, off)
    cv = acc.copy()
    core.sd_score_apply(sc, T, state, off, cv, 1, 2)
    want_E = acc + np.einsum("ra,rad->rd", W * D, S.reshape(R, A, ND))
    want_E[1::2] = np.nan   # off the drawn rows: added nowhere
    np.testing.assert_allclose(E, want_E, rtol=1e-12)
    cells = before[off:].reshape(T, K, ND)
    want_cv = acc.copy()
    for t in range(T):
        s = sc[t * R:(t + 1) * R]
        ok = np.isfinite(E) & (np.arange(R) % 2 == 0)[:, None]
        cells[t, 1] += np.where(ok, E * s, 0).sum(0)
        cells[t, 2] += np.where(ok, s * s, 0).sum(0)
        cells[t, 3] += np.where(ok, (E * s) ** 2, 0).sum(0)
        want_cv[::2] += cells[t, 0] * s[::2]
    np.testing.assert_allclose(state[off:].reshape(T, K, ND), cells, rtol=1e-12)
    np.testing.assert_allclose(cv, want_cv, rtol=1e-12)
    assert np.array_equal(state[:off], before[:off])
    cells[0, 3, 0] = 0.25 * cells[0, 1, 0] ** 2   # z^2 = 4: shrunk by 3/4
    cells[1, 3, 1] = 2.0 * cells[1, 1, 1] ** 2    # z^2 = 1/2: shrunk to 0
    state[off:] = cells.ravel()
    core.sd_cv_update(state, off, T, ND, 0.99)
    got = state[off:].reshape(T, K, ND)
    shrink = np.maximum(0.0, 1.0 - cells[:, 3] / cells[:, 1] ** 2)
    np.testing.assert_allclose(got[:, 0], -cells[:, 1] / cells[:, 2] * shrink, rtol=1e-12)
    assert got[0, 0, 0] == pytest.approx(-0.75 * cells[0, 1, 0] / cells[0, 2, 0]) and got[1, 0, 1] == 0.0
    np.testing.assert_allclose(got[:, 1:], 0.99 * cells[:, 1:], rtol=1e-12)
    state[off + 2 * ND:off + 3 * ND] = 0.0   # no score seen: coefficient 0
    core.sd_cv_update(state, off, 1, ND, 1.0)
    assert np.array_equal(state[off:off + ND], np.zeros(ND))


def test_explain_states_the_control_variates_and_the_option_turns_them_off():
    walk = sad_walk("sdc_said", 5, 10.0)
    said = " ".join(walk.compile(dtype=np.float64, estimators={"up": SD}).explain().split())
    assert "scores along them ('up') added as control variates" in said
    said = " ".join(walk.compile(dtype=np.float64, estimators={"up": (SD, {"control": "none"})}).explain().split())
    assert "control variates" not in said
    with pytest.raises(ppl.ModelError, match=r"'up'.*option control must be one of 'score'.*'none'.*got 'baseline'"):
        walk.compile(dtype=np.float64, estimators={"up": (SD, {"control": "baseline"})})
