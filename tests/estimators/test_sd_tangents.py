"""Stochastic derivatives weighed along the parameters (ppl/lowering/tangents.py): the jumps'
weights by the tangents of their laws' parameters, the estimate added forward, and in a scan the
kept path banked where it meets the drawn one again.

Oracles: StochasticAD's random walk (up-probability exp(-X / p)), its law and derivative
propagated exactly over the states (the transition matrix, forward mode); the other models
unrolled step by step and enumerated by tests/exact.py (central differences). Statistic:
tests/stats.py's projection ratio of the mean estimate on the exact gradient with its standard
error; `stats.assert_unbiased_tuned` sizes the draws for a ratio SE of about 0.8% and requires the
estimates scaled by 1.05 and 0.95 to fail, so each case detects a 5% bias.
"""
import numpy as np
import pytest

import ppl
from ppl import Model

import exact
import stats
from small_models import last_carry

SD = "stochastic_derivative"
S0 = np.array([[0.5], [-1.0]])


def sad_walk(name, n, p):
    """X_0 = 0, up ~ Bernoulli(exp(-X / p)), X += 2 up - 1; f = X_n^2 (StochasticAD's tutorial)."""
    with Model(name) as m:
        X0 = m.input("X0", 1)
        pp = ppl.param("p", 1, p)

        def step(X, t):
            up = ppl.Bernoulli("up", probs=ppl.exp(-X / pp))
            return X + 2.0 * up - 1.0, None
        X, _ = ppl.scan(step, X0, length=n)
        m.cost("sq", ppl.total(X * X))
    return m


def sad_walk_exact(n, p):
    """d E[X_n^2] / dp: the law of X on 0..n and its derivative in p, step by step."""
    x = np.arange(n + 2, dtype=float)
    P, dP = np.zeros(n + 2), np.zeros(n + 2)
    P[0] = 1.0
    for _ in range(n):
        q, dq = np.exp(-x / p), np.exp(-x / p) * x / p ** 2
        NP, NdP = np.zeros_like(P), np.zeros_like(P)
        NP[1:] += (P * q)[:-1]
        NdP[1:] += (dP * q + P * dq)[:-1]
        NP[:-1] += (P * (1 - q))[1:]
        NdP[:-1] += (dP * (1 - q) - P * dq)[1:]
        P, dP = NP, NdP
    return float(dP @ x ** 2)


def test_stochasticads_walk_is_unbiased_and_weighed_along_p():
    n, p = 30, 60.0
    prog = sad_walk("sad_walk30", n, p).compile(dtype=np.float64, estimators={"up": SD}, seed=1)
    assert "tangent_seed" in prog.source and "sd_bank" in prog.source   # weighed along p, banked
    assert "g_exp_1" not in prog.source   # the estimate is forward: no cotangent of the layers below p
    e = np.array([sad_walk_exact(n, p)])
    data = {"X0": np.zeros((8, 1))}
    r, _ = stats.assert_unbiased_tuned(prog, data, ["p"], e, "StochasticAD's walk, n = 30")
    assert r.detectable < 0.05


def laws(name, T, scanned, counts):
    """Each step a Categorical by logits (a parameter vector of 3) and a Binomial by logits, or
    (counts) a Poisson count and a Geometric by probabilities, all moved by the carry; parameters
    shared by nodes."""
    with Model(name) as m:
        s0 = m.input("s0", 1)
        a, cl = ppl.param("a", 1, 0.2), ppl.param("cl", 3, np.array([0.1, -0.2, 0.3]))

        def body(s, t):
            k = "" if scanned else str(len(m.costs))
            if counts:
                p = ppl.Poisson(f"p{k}", ppl.softplus(a + 0.1 * s))
                g = ppl.Geometric(f"g{k}", probs=ppl.sigmoid(a + 0.5 * p + ppl.rowsum(cl)))
                m.cost(f"cost{k}", ppl.total(0.2 * (s * s) + 0.1 * g * p))
                return 0.5 * s + 0.3 * p - 0.2 * g, None
            c = ppl.Categorical(f"c{k}", logits=cl + 0.2 * ppl.concat([s, s, s]), classes=3)
            n = ppl.Binomial(f"n{k}", 2.0, logits=a * s + ppl.rowsum(c * cl))
            m.cost(f"cost{k}", ppl.total(0.2 * (s * s) + 0.3 * n * ppl.rowsum(c * ppl.const(1.0, 3))))
            return 0.5 * s + n - 1.0 + 0.3 * ppl.rowsum(c * ppl.const(1.0, 3)), None

        last = last_carry(body, s0, T, scanned)
        m.cost("end", ppl.total(last * last))
    return m


@pytest.mark.parametrize("counts, est, paths", [
    (False, SD, 4), (False, "shared", 1), (False, {"c": SD, "n": "score"}, 3), (False, {"c": "mvd", "n": SD}, 4),
    (True, SD, 4), (True, "shared", 1), (True, {"p": SD, "g": "score"}, 1), (True, {"p": "mvd", "g": SD}, 4)])
def test_the_laws_in_a_scan_alone_and_stacked_are_unbiased(counts, est, paths):
    """The parameter entries (a, cl) moving the jumping laws' parameters each get an alternative
    path of their own (`paths` of them), or ("shared": option paths="shared") one path weighed by
    the tangents' norm."""
    T = 2 if not counts else 1   # the unrolled oracle enumerates every step's counts jointly
    tag = "all" if isinstance(est, str) else "_".join(v[:2] for v in est.values())
    if est == "shared":
        est = {k: (SD, {"paths": "shared"}) for k in (("p", "g") if counts else ("c", "n"))}
    prog = laws(f"sdt_laws_{counts}_{tag}_{paths}", T, True, counts).compile(dtype=np.float64, estimators=est,
                                                                              seed=1)
    assert "tangent_seed" in prog.source and "sd_grad" not in prog.source
    if est == SD or "mvd" not in str(est):   # no other estimator's rows
        assert prog.rows_per_data_row == 1 + paths
    P = exact.model_params(prog)
    e = stats.flat(exact.gradient(laws(f"sdt_laws_unrolled_{counts}", T, False, counts), P, {"s0": S0}), list(P))
    r, _ = stats.assert_unbiased_tuned(prog, {"s0": S0}, list(P), e, f"scan of laws, {est}, {paths} paths")
    assert r.detectable < 0.05


def test_many_parameter_entries_or_a_layer_keep_the_per_unit_weights():
    """A layer's own parameters (or more than MAX_DIRECTIONS entries) reach the jumping law:
    the jumps are weighed per unit of its parameter, as before, and the estimate reverse."""
    with Model("layer_sd") as m:
        x = m.input("x", 1)
        b = ppl.Bernoulli("b", logits=ppl.Affine(x, 1, name="enc"))
        m.cost("f", ppl.total((b - 0.3) * (b - 0.3)))
    prog = m.compile(dtype=np.float64, estimators={"b": SD}, lowering="arrays")
    assert "sd_bernoulli_draw" in prog.source and "tangent_seed" not in prog.source and "sd_grad" in prog.source
    said = " ".join(prog.explain().split())   # explain() states the choice and its reason
    assert "('b'): each jump weighed per unit of its law's parameter" in said and "a layer's own parameters" in said
    walk = sad_walk("sdt_said", 5, 10.0)
    said = " ".join(walk.compile(dtype=np.float64, estimators={"up": SD}).explain().split())
    assert "weighed by its derivative along p[0], one alternative path" in said and "learned along the run" in said
    said = " ".join(walk.compile(dtype=np.float64, estimators={"up": (SD, {"importance": "none"})}).explain().split())
    assert "along p[0]" in said and "an importance" not in said


@pytest.mark.parametrize("learned", [False, True])
def test_a_nan_tangent_gives_a_nan_gradient(learned):
    """A NaN tangent of a jump's parameter is not dropped by the reservoir: W turns NaN and the
    gradient it adds is NaN, never a finite number (the kernels, one drawn row and its
    alternative row), with or without a learned importance (h 2 here); the importance's sums
    learn nothing from a NaN difference, so that a later step's weights stay finite."""
    from ppl.kernels.cpu import core
    probs, u, v = np.array([[0.3], [0.3]]), np.array([[0.9], [0.9]]), np.array([[0.5], [0.5]])
    W, sid, D, switched = np.zeros((2, 1)), np.zeros((2, 1)), np.ones((2, 1)), np.zeros((2, 1))
    tag, value, rw = np.zeros((2, 1)), np.zeros((2, 1)), np.array([0.5, 0.5])
    S, acc, gp = np.zeros((2, 1)), np.zeros((2, 1)), np.zeros(1)
    state, kept = np.array([2.0, 2.0, 0.0, 0.0, 0.0, 0.0]), np.zeros((2, 2))
    importance = (state, 0, kept) if learned else (np.zeros(0), -1, np.zeros((0, 0)))
    core.sd_bernoulli_probs_draw(probs, u, v, 1, 1, 2, W, sid, D, switched, tag, value, rw,
                                  np.full((2, 1), np.nan), S, *importance, np.zeros((0, 0)))
    core.sd_tangent_grad(W, D, S, acc, rw, 1, 2, 0, 0, gp)
    assert np.isnan(W[0, 0]) and np.isnan(gp[0])
    if learned:
        D[0, 0] = np.nan
        core.sd_learn_final(W, D, kept, state, 1, 2)
        core.sd_importance(state, 0, 1, 1, 0.99, 0.01, 4.0)
        assert np.array_equal(state, np.zeros(6))   # nothing learned: weight 1 again


def test_a_tangents_direction_and_entry_compile_once_and_address_as_numpy_does():
    """A step passes each tangent's direction and parameter entry as constants; sd_tangent_grad
    takes them as int64 (kernels/_link.PLAIN_PARAMS): one specialisation for every direction, not
    one per (direction, entry). Oracle: NumPy's sum over the drawn rows (the row digit's stride 1,
    span 2: the even rows) of rw (acc + sum_a W D S) per direction."""
    from numba import njit, types

    from ppl.kernels.cpu import core

    @njit
    def caller(W, D, S, acc, rw, gp):
        core.sd_tangent_grad(W, D, S, acc, rw, 1, 2, 0, 2, gp)
        core.sd_tangent_grad(W, D, S, acc, rw, 1, 2, 1, 0, gp)

    rng = np.random.default_rng(4)
    R, A, ND = 6, 2, 2
    W, D, S, acc, rw = (rng.normal(size=s) for s in ((R, A), (R, A), (R, A * ND), (R, ND), (R,)))
    gp = np.zeros(3)
    caller(W, D, S, acc, rw, gp)
    drawn = np.arange(R) % 2 == 0
    want = [(rw * (acc[:, d] + (W * D * S[:, d::ND]).sum(1)))[drawn].sum() for d in range(ND)]
    np.testing.assert_allclose(gp, [want[1], 0.0, want[0]], rtol=1e-13)
    sigs = [sig for sig in core.sd_tangent_grad.signatures if sig[0] == types.float64[:, ::1] and sig[-1].ndim == 1
            and sig[-1].dtype == types.float64]   # the digit's stride and span: int64 as well
    assert len(sigs) == 1 and tuple(sigs[0][5:9]) == (types.int64,) * 4, sigs


def test_a_categorical_by_weights_outside_a_scan_is_unbiased():
    """Outside a loop too: a Categorical given by weights, moved by a parameter vector, and a
    Bernoulli below it by probabilities (no meeting test: nothing follows a step)."""
    with Model("sdt_cat_probs") as m:
        x = m.input("x", 1)
        cl = ppl.param("cl", 3, np.array([0.4, -0.3, 0.2]))
        c = ppl.Categorical("c", probs=ppl.softplus(cl + 0.3 * ppl.concat([x, x, x])), classes=3)
        b = ppl.Bernoulli("b", probs=ppl.sigmoid(ppl.rowsum(c * cl)))
        m.cost("f", ppl.total((ppl.rowsum(c * ppl.const(1.0, 3)) + b - 0.4) * (b + 0.5 * x)))
    prog = m.compile(dtype=np.float64, estimators=SD, seed=1)
    assert "tangent_seed" in prog.source and "sd_bank" not in prog.source
    data = {"x": S0}
    P = exact.model_params(prog)
    e = stats.flat(exact.gradient(m, P, data), list(P))
    r, _ = stats.assert_unbiased_tuned(prog, data, list(P), e, "categorical by weights, outside a scan")
    assert r.detectable < 0.05


def test_more_directions_than_paths_share_one_path_and_a_bad_word_is_named():
    """Six parameter entries move the jump (more than tangents.MAX_PATHS): one path for all,
    weighed by the tangents' norm (2 rows); two entries: a path each (3 rows); an unknown
    `paths` word is an error naming the node, the option and the words it takes."""
    def model(name, k):
        with Model(name) as m:
            x = m.input("x", 1)
            a = ppl.param("a", k, np.linspace(-0.2, 0.3, k))
            b = ppl.Bernoulli("b", probs=ppl.sigmoid(ppl.rowsum(a) * 0.1 + x))
            m.cost("f", ppl.total((b - 0.3) * (b - 0.3)))
        return m
    assert model("sdt_six", 6).compile(dtype=np.float64, estimators=SD).rows_per_data_row == 2
    assert model("sdt_two", 2).compile(dtype=np.float64, estimators=SD).rows_per_data_row == 3
    with pytest.raises(ppl.ModelError, match=r"'b'.*option paths must be one of 'direction'.*'shared'.*"
                                             r"got 'each'"):
        model("sdt_word", 2).compile(dtype=np.float64, estimators={"b": (SD, {"paths": "each"})})


class FixedImportance:
    """A program whose learned importance is replaced before each gradient call by weights drawn
    at random (log-uniform over [1/20, 20] per cell and path, the candidate too), the sums
    zeroed: any weights fixed before a step's draws must keep the estimate unbiased."""

    def __init__(self, prog, seed=0):
        (self.off, self.size), = [(o, s) for name, o, s, _ in prog.layout.state
                                  if name == "stochastic_derivative.importance"]
        self.prog, self.rng, self.used = prog, np.random.default_rng(seed), 0

    def grad(self, data, seed=0, batch=None):
        A = self.prog.rows_per_data_row - 1
        h = np.exp(self.rng.uniform(-3.0, 3.0, size=(self.size // (6 * A), 6, A)))
        h[:, 2:] = 0.0
        self.prog.state[self.off:self.off + self.size] = h.ravel()
        self.used += 1
        return self.prog.grad(data, seed=seed, batch=batch)


@pytest.mark.parametrize("case", ["walk", "laws"])
def test_any_importance_fixed_before_a_step_keeps_the_estimate_unbiased(case):
    """The jumps weighed by arbitrary importances (FixedImportance) in a scan: StochasticAD's walk
    (one path) and the laws stacked with mvd (a Binomial jumping along four paths), each
    against its exact oracle as above."""
    if case == "walk":
        n, p = 20, 40.0
        prog = sad_walk("sdt_imp_walk", n, p).compile(dtype=np.float64, estimators={"up": SD}, seed=1)
        data, names, e = {"X0": np.zeros((8, 1))}, ["p"], np.array([sad_walk_exact(n, p)])
    else:
        prog = laws("sdt_imp_laws", 2, True, False).compile(dtype=np.float64, estimators={"c": "mvd", "n": SD},
                                                              seed=1)
        P = exact.model_params(prog)
        data, names = {"s0": S0}, list(P)
        e = stats.flat(exact.gradient(laws("sdt_imp_laws_unrolled", 2, False, False), P, {"s0": S0}), names)
    assert "sd_importance" in prog.source
    fixed = FixedImportance(prog)
    r, _ = stats.assert_unbiased_tuned(fixed, data, names, e, f"importance fixed at random, {case}")
    assert r.detectable < 0.05 and fixed.used >= 200


def _fold(state, C, A, decay, floor, prior):
    """sd_importance in numpy (the oracle of the test below)."""
    s = state.reshape(C, 6, A).copy()
    for a in range(A):
        ss, nn, m1, mc = (s[:, b, a].sum() for b in (2, 3, 4, 5))
        pooled = ss / nn if nn > 0 else 0.0
        cand = (s[:, 2, a] + prior * pooled) / (s[:, 3, a] + prior)
        top = cand.max()
        h = np.sqrt(np.maximum(cand, floor ** 2 * top)) if top > 0 else np.zeros(C)
        s[:, 1, a], s[:, 0, a] = h, (h if mc < m1 else 0.0)
        s[:, 2:, a] *= decay
    return s.ravel()


def test_the_importance_is_the_shrunk_rms_in_use_where_it_measured_better():
    """sd_importance against its definition: per path the candidate is each cell's root mean
    square of D shrunk towards the path's (a cell with no jump: the path's), floored at 1% of the
    largest; it is used (else 0: weight 1) where its second moment summed below weight 1's; every
    sum decays. Path 0 measured better with the candidate, path 1 worse, path 2 saw nothing."""
    from ppl.kernels.cpu import core
    C, A = 5, 3
    rng = np.random.default_rng(3)
    s = np.zeros((C, 6, A))
    s[:, 2, :2] = rng.uniform(0.0, 50.0, size=(C, 2)) * np.array([[1.0], [1e-6], [1.0], [1.0], [1.0]])
    s[:, 3, :2] = rng.integers(0, 6, size=(C, 2))
    s[2, 3, 0] = 0.0
    s[2, 2, 0] = 0.0
    s[:, 4, 0], s[:, 5, 0] = 2.0, 1.0
    s[:, 4, 1], s[:, 5, 1] = 1.0, 2.0
    state = np.concatenate([[7.0], s.ravel()])
    want = np.concatenate([[7.0], _fold(s.ravel(), C, A, 0.99, 0.01, 4.0)])
    core.sd_importance(state, 1, C, A, 0.99, 0.01, 4.0)
    np.testing.assert_allclose(state, want, rtol=1e-12)
    got = state[1:].reshape(C, 6, A)
    assert (got[:, 0, 0] > 0).all() and (got[:, 0, 1] == 0).all() and (got[:, 1, 1] > 0).all()
    assert (got[:, :2, 2] == 0).all()
    assert got[:, 1, 0].min() >= 0.01 * got[:, 1, 0].max()


def test_an_importance_beyond_float32s_integers_is_refused_by_name():
    """The kept jumps' cells are float32 numbers in a float32 step: a scan long enough that they
    would not be exact is refused at compile time, naming the node and both ways out; float64
    and importance="none" compile."""
    walk = sad_walk("sdt_long", 3_000_000, 10.0)
    with pytest.raises(ppl.ModelError, match=r"'up'.*float32's exact integers.*dtype=np.float64.*importance='none'"):
        walk.compile(dtype=np.float32, estimators={"up": SD})
    assert "sd_importance" in walk.compile(dtype=np.float64, estimators={"up": SD}).source
    assert "sd_importance" not in walk.compile(dtype=np.float32, estimators={"up": (SD, {"importance": "none"})}).source
