"""The measured choice (ppl/compiler/autotune.py): one measured program, the same choice on two
runs, the table behind it, what is measured and what is not, and the decision rule on made-up
measurements."""
import math
import os
import sys

import numpy as np
import pytest

import ppl
from ppl import Affine, Bernoulli, Model, ModelError
from ppl.compiler import autotune as A, measure
from ppl.compiler.options import CompileOptions

X = np.array([[1.0, 0.0, 1.0, 1.0], [0.0, 1.0, 0.0, 1.0], [1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]])


def _two_layers(name="tune2"):
    """x -> h1 (8 units: 256 values, too many to enumerate) -> h2 (2 units: 4 values)."""
    with Model(name) as m:
        x = m.input("x", 4)
        h1 = Bernoulli("h1", logits=Affine(x, 8, name="q1"))
        h2 = Bernoulli("h2", logits=Affine(h1, 2, name="q2"))
        m.cost("recon", ppl.bernoulli_nll(Affine(h1, 4, name="p0"), target=x))
        m.cost("prior1", ppl.bernoulli_nll(Affine(h2, 8, name="p1"), target=h1))
        m.cost("logq1", ppl.log_prob(h1))
        m.cost("logq2", ppl.log_prob(h2))
    return m


def mixed(name="mixed_choice"):
    """StochasticAD's mixed program in ppl's terms: 10 Bernoulli units (a Binomial drawn unit by
    unit), one more Bernoulli, a Normal whose loc and scale depend on them; the cost is the Normal's
    draw times the units' sum. mvd's branches are exact in each unit's flip: far less variance
    than the rule table's DisARM at a few more rows."""
    with Model(name) as m:
        x = m.input("x", 2)
        b = Bernoulli("b", logits=Affine(x, 10, name="pb"))
        c = Bernoulli("c", logits=Affine(x, 1, name="pc"))
        s = ppl.rowsum(b)
        n = ppl.Normal("n", loc=2.0 * s + 3.0 * c, scale=ppl.softplus(Affine(c, 1, name="sc")) + 0.1)
        m.cost("f", ppl.total(n * s * 0.1))
    return m


@pytest.fixture
def counted(monkeypatch):
    """Programs of their own measured by their rows, counted (not timed): every choice the same on
    every run, whatever the machine's load."""
    monkeypatch.setattr(measure, "TIME_ROUNDS", 0)


@pytest.fixture(scope="module")
def runs():
    """Two independent measured compiles of the same model, seed and pilot data (programs of their
    own counted, not timed); the compiles each made counted."""
    from ppl.compiler import pipeline
    mp = pytest.MonkeyPatch()
    mp.setattr(measure, "TIME_ROUNDS", 0)
    progs, counts = [], []
    real = pipeline.compile_program
    for _ in range(2):
        n = [0]

        def counting(model, options, **kw):
            n[0] += options.policy != "autotune"
            return real(model, options, **kw)
        A_compile = counting
        progs.append(A.settle(A.autotune(_two_layers(), A_compile, CompileOptions(
            dtype=np.float64, samples=2, policy="autotune", pilot={"x": X}, seed=3))))
        counts.append(n[0])
    mp.undo()
    return progs, counts


def test_one_program_per_estimator_measured_alone_not_per_candidate(runs):
    """The measured program (score, DisARM and mvd side by side at both nodes), one program per
    estimator measured in a program of its own, whatever the nodes it is at (ARMS, whose drawn row
    is its own coupled draw; stochastic derivatives at h1 and h2; enumeration at h2), and the
    program of the choice: five compiles for two nodes of seven candidates (one per candidate per
    node: eleven)."""
    assert runs[1] == [5, 5]


def test_autotune_gives_the_same_choice_on_two_runs(runs):
    progs, _ = runs
    choices = [{n.name: (ch.estimator, ch.options) for n, (ch, _) in p.choices.items()} for p in progs]
    assert choices[0] == choices[1]
    measured = [[(r["node"], r["estimator"], r["variance"], r["se"], r["rows"], r["chosen"])
                 for r in p.autotune_table] for p in progs]
    assert measured[0] == measured[1]   # the variances bit for bit: the same draws


def test_autotune_table_candidates_exclusions_and_choice(runs):
    prog = runs[0][0]
    table = prog.autotune_table
    by = {(r["node"], r["estimator"]): r for r in table}
    # measured side by side: the unbiased estimators that share the drawn row (score, DisARM and, on
    # these narrow nodes, mvd); alone: ARMS (its drawn row is its own coupled draw), stochastic
    # derivatives (at both nodes in one program), enumeration (h2's 4 values; h1's 256 are too many);
    # excluded with the reason: ARM (DisARM applies), REBAR (its control variate is trained)
    alone = "in a program of its own"
    for node in ("h1", "h2"):
        assert {e for n, e in by if n == node and by[n, e]["rows"] and not by[n, e]["why"].startswith(alone)} == \
            {"score", "disarm", "mvd"}
        assert by[node, "arms"]["why"].startswith(alone) and by[node, "stochastic_derivative"]["why"].startswith(alone)
        assert by[node, "arms"]["rows"] and by[node, "stochastic_derivative"]["rows"] == 2 * 2
    assert by["h1", "arms"]["why"] == by["h2", "arms"]["why"] or "(at h1, h2)" in by["h1", "arms"]["why"]
    pair = 2 if prog.choices[prog.model.nodes["h1"]][0].estimator == "disarm" else 1
    assert by["h2", "enumerate"]["rows"] == 2 * pair * 4   # K = 2 draws, h1's pair, h2's 4 values
    assert by["h1", "enumerate"]["why"].startswith("excluded: a support of more than 64 values")
    assert "trained with the model" in by["h1", "rebar"]["why"]
    assert by["h1", "arm"]["why"].startswith("excluded: DisARM applies")
    # rows per data row (K = 2 draws) of each choice's own program, h2 at its rule table's DisARM while h1
    # is measured: score on h1 leaves the pair's digit alone (2); mvd's 8 units add their rows to the
    # pair's in the digit they share (1 + 8 + 1)
    assert by["h1", "score"]["rows"] == 2 * 2
    assert by["h1", "disarm"]["rows"] == 2 * 3
    assert by["h1", "mvd"]["rows"] == 2 * (1 + 8 + 1)
    for node in ("h1", "h2"):
        (pick,) = [r for r in table if r["node"] == node and r["chosen"]]
        assert prog.choices[prog.model.nodes[node]][0].estimator == pick["estimator"]
        rows = [r for r in table if r["node"] == node and r["rows"] and not r["why"].startswith(alone)]
        assert all(r["score"] == r["variance"] * r["rows"] and r["draws"] in range(A.ROUND, A.DRAWS + 1, A.ROUND)
                   and r["draws"] == rows[0]["draws"] for r in rows)   # rounds of draws until one is clearly least
        # nothing beats the pick's score by more than the tie margin
        assert pick["why"].startswith(alone) or min(r["score"] for r in rows) * (1 + A.TIE_MARGIN) >= pick["score"] or \
            "tied" in pick["why"]
    text = prog.explain()
    assert "measured (* chosen)" in text and "excluded: DisARM" in text and " * " in text
    pending = _two_layers().compile(policy="autotune")   # no pilot: measured on the first batch
    assert pending.measure_pending == ("h1", "h2")
    with pytest.raises(ModelError, match="the measured choice needs a batch"):
        pending.choose()


def test_the_measured_program_carries_its_warmed_state():
    """The score function's running baseline, warmed in the measured program, reaches the program of
    the choice under its own name (not reset to its initial value)."""
    prog = _two_layers("tune_state").compile(estimators={"h1": "score"}, policy="autotune", pilot={"x": X},
                                             dtype=np.float64)
    names = [n for n, *_ in prog.layout.state]
    i = names.index("baseline.h1.mean")
    _, off, size, _ = prog.layout.state[i]
    fresh = _two_layers("tune_state").compile(estimators={"h1": "score", "h2": "disarm"}, dtype=np.float64)
    j = [n for n, *_ in fresh.layout.state].index("baseline.h1.mean")
    init = fresh.state[fresh.layout.state[j][1]: fresh.layout.state[j][1] + size]
    assert size == 2 and not np.array_equal(prog.state[off: off + size], init)   # warmed, not its initial value


def test_the_mixed_program_takes_mvd_where_its_branches_pay():
    prog = mixed().compile(policy="autotune", pilot={"x": np.random.default_rng(0).normal(size=(32, 2))},
                           dtype=np.float64)
    ch = {n.name: c.estimator for n, (c, _) in prog.choices.items()}
    assert ch["b"] == "mvd" and ch["n"] == "pathwise"
    by = {(r["node"], r["estimator"]): r for r in prog.autotune_table}
    assert by["b", "disarm"]["score"] > 5 * by["b", "mvd"]["score"]
    assert "not measured" in prog.choices[prog.model.nodes["n"]][0].reason


def test_programs_of_their_own_are_compiled_on_the_helper_while_the_choices_is_here(monkeypatch):
    """Where a new step's compile helper runs (ppl/compiler/ahead.py), the programs of their own that
    are timed against the choice's program have their steps queued on it, with the arguments they
    are timed with, before the choice's step compiles here: the two compile at once."""
    from ppl.compiler import ahead, alone
    queued, timed = [], []
    real = alone._step_timer

    def timer(prog, data, batch):
        timed.append((prog.entry, len(queued)))
        return real(prog, data, batch)
    monkeypatch.setattr(alone, "_step_timer", timer)
    monkeypatch.setattr(ahead, "functions", lambda calls, first=False: queued.extend(calls) or True)
    monkeypatch.setattr(ahead, "start", lambda *args: None)   # no helper process: only what is queued
    monkeypatch.setattr(ahead, "running", lambda: True)
    mixed("mixed_helper").compile(policy="autotune", pilot={"x": np.random.default_rng(0).normal(size=(32, 2))},
                                  dtype=np.float64)
    assert len(timed) > 1 and [e for e, _ in queued] == [e for e, _ in timed[1:]]
    assert timed[0][1] == len(queued)   # queued before the first (the choice's) step compiles
    for entry, args in queued:   # the arguments a timer calls the step with: seed, step, mode 1
        assert len(args) == entry.py_func.__code__.co_argcount and args[-1] == 1


def test_a_node_with_one_candidate_measures_nothing():
    """A Normal node (the rule table's pathwise cannot share a drawn row) and a one-candidate world
    compile the rule table's program, once, with nothing measured."""
    with Model("tune_normal") as m:
        x = m.input("x", 2)
        z = ppl.Normal("z", loc=Affine(x, 2, name="q"), scale=0.5)
        m.cost("f", ppl.gaussian_nll(Affine(z, 2, name="p"), 1.0, x))
    prog = m.compile(policy="autotune", pilot={"x": X[:, :2]}, dtype=np.float64)
    (ch, _), = prog.choices.values()
    assert ch.estimator == "pathwise" and "not measured" in ch.reason
    assert prog.autotune_table == []


def _c(name, var, rows, se=0.0):
    return A.Candidate("h", name, var, se, rows)


def test_decide_least_variance_x_rows_then_ties():
    # a clear winner on variance x rows
    cs = [_c("score", 10.0, 4), _c("disarm", 3.0, 8), _c("mvd", 5.0, 20)]
    assert A.decide(cs, "disarm").estimator == "disarm"
    assert "1.67x the least" in cs[0].verdict
    # within the 10% margin: the rule table's choice stays ...
    cs = [_c("score", 10.0, 4), _c("disarm", 5.2, 8)]
    assert A.decide(cs, "disarm").estimator == "disarm" and "the rule table's choice" in cs[0].verdict
    # ... else the fewest rows, then the name
    cs = [_c("score", 10.0, 4), _c("disarm", 5.2, 8)]
    assert A.decide(cs, "rebar").estimator == "score" and "fewer rows" in cs[1].verdict
    assert A.decide([_c("mvd", 0.0, 2), _c("disarm", 0.0, 2)], "score").estimator == "disarm"


def test_decide_margin_widens_with_the_standard_error():
    # scores 40 and 32, 25% apart: tied when the variances' standard errors are 15% each (2 SE of the
    # ratio: 42%), not when they are 1%
    assert A.decide([_c("score", 10.0, 4, se=1.5), _c("disarm", 4.0, 8, se=0.6)], "x").estimator == "score"
    assert A.decide([_c("score", 10.0, 4, se=0.1), _c("disarm", 4.0, 8, se=0.04)], "x").estimator == "disarm"
    # every variance non-finite: the rule table's choice
    cs = [_c("score", math.inf, 4), _c("disarm", math.nan, 8)]
    assert A.decide(cs, "disarm").estimator == "disarm"


def test_the_default_measures_on_the_first_batch(monkeypatch):
    """With no policy named (and no PPL_POLICY), compile gives the rule table's program, which
    measures on the first batch a gradient is asked for and becomes the program of the choice;
    the parameter arrays stay the same, and fit records the choice in its History."""
    monkeypatch.delenv("PPL_POLICY", raising=False)
    X = np.random.default_rng(0).normal(size=(32, 2))
    prog = mixed("mixed_default").compile(dtype=np.float64)
    assert prog.options.policy == "measured" and prog.measure_pending == ("b", "c")
    assert prog.choices["b"][0].estimator == "disarm" and "then measured" in prog.choices["b"][0].reason
    theta = prog.theta
    prog.params["pb.W"][...] = 0.3
    prog.grad({"x": X})   # from the rule table's program, while the choice is measured on a thread
    assert prog.measure_pending == () and prog.choices["b"][0].estimator == "disarm"
    prog.params["pb.W"][...] = 0.25   # the caller steps its parameters meanwhile: the choice takes them
    prog.grad({"x": X}, step=1)
    assert prog.choices["b"][0].estimator == "mvd"
    assert prog.theta is theta and np.all(prog.params["pb.W"] == 0.25)
    assert "measured (* chosen)" in prog.explain()
    fitted = mixed("mixed_default").compile(dtype=np.float64)
    hist = ppl.fit(fitted, {"x": X}, ppl.optim.Adam(1e-3), steps=3, batch_size=32, progress=False)
    (b, c) = hist.choices
    assert (b["step"], b["node"], b["from"], b["to"]) == (0, "b", "disarm", "mvd") and c["node"] == "c"
    # a 3-step run repays no program of its own (budget_solos): those are not measured, and say why
    assert {e for e, *_ in b["measured"]} == {"score", "disarm", "mvd"}
    by = {r["estimator"]: r for r in fitted.autotune_table if r["node"] == "b"}
    assert "the run's 3 steps" in by["arms"]["why"] and "the run's 3 steps" in by["stochastic_derivative"]["why"]
    # the environment names the default; a bad one is refused by name
    monkeypatch.setenv("PPL_POLICY", "rules")
    assert mixed("mixed_default").compile().measure_pending == ()
    monkeypatch.setenv("PPL_POLICY", "best")
    with pytest.raises(ModelError, match="PPL_POLICY='best'"):
        mixed("mixed_default").compile()


def contrived(name):
    """A choice that changes as training moves: h (40 Bernoulli units) feeds a Normal z whose scale
    softplus(s) training shrinks (the cost holds z^2). While the scale is large, the cost's noise
    from z is shared by DisARM's pair (common random numbers) and cancels in its difference but not
    in the score function's signal: DisARM is measured best. Once it is small, a candidate of less
    work takes over: the score function's one row, or stochastic derivatives' one alternative row for
    all 40 units (measured alone; its jumps' differences are small once z's noise is)."""
    with Model(name) as m:
        x = m.input("x", 2)
        h = Bernoulli("h", logits=Affine(x, 40, name="q"))
        z = ppl.Normal("z", loc=Affine(h, 1, name="w"), scale=ppl.softplus(ppl.param("s", 1, init=3.0)))
        m.cost("f", ppl.total(ppl.softplus(Affine(h, 1, name="v")) + z * z))
    return m


def test_fit_measures_again_and_switches_as_training_moves(counted):
    X = np.random.default_rng(0).normal(size=(16, 2))
    prog = contrived("contrived_switch").compile(policy="measured", dtype=np.float64)
    prog.params["v.W"][...] = 3 * np.random.default_rng(1).normal(size=prog.params["v.W"].shape)
    hist = ppl.fit(prog, {"x": X}, ppl.optim.Adam(0.05), steps=400, batch_size=16, remeasure=100, progress=False)
    seen = [(r["step"], r["from"], r["to"]) for r in hist.choices]
    assert seen[0] == (0, "disarm", "disarm") and [s for s, *_ in seen] == [0, 100, 200, 300]
    switch = next(r for r in hist.choices if r["from"] != r["to"])   # away from DisARM, once measured clearly less
    assert switch["step"] > 0 and switch["from"] == "disarm", seen
    score = {e: sc for e, _, _, _, sc in switch["measured"]}
    assert {"score", "disarm"} <= set(score) and score[switch["to"]] * (1 + A.TIE_MARGIN) < score["disarm"]
    assert prog.choices["h"][0].estimator == seen[-1][2] and float(prog.params["s"][0]) < 0
    assert "measured (* chosen)" in prog.explain()
    # the budget: with remeasure=None the measurements cost at most 5% of the training time
    from ppl.training import fit as F
    assert F.REMEASURE_BUDGET == 0.05


def test_fit_measures_again_within_its_budget(counted):
    """remeasure=None: measured again only as often as that costs at most 5% of the training time
    so far (each time counted from the last measurement's cost, its compile included)."""
    from ppl.training import fit as F
    X = np.random.default_rng(0).normal(size=(16, 2))
    prog = contrived("contrived_budget").compile(policy="measured", dtype=np.float64)
    hist = ppl.fit(prog, {"x": X}, ppl.optim.Adam(0.05), steps=3000, batch_size=16, progress=False)
    again = [r for r in hist.choices if r["step"] > 0]
    assert hist.measure_seconds <= F.REMEASURE_BUDGET * hist.seconds + 1e-9, (hist.measure_seconds, hist.seconds)
    assert len({r["step"] for r in again}) <= 1 + hist.seconds * F.REMEASURE_BUDGET / prog.measurement.seconds


def test_a_run_that_switched_resumes_with_the_estimators_it_saved(tmp_path, counted):
    X = np.random.default_rng(0).normal(size=(16, 2))
    ck = tmp_path / "run.npz"

    def run(steps):
        prog = contrived("contrived_resume").compile(policy="measured", dtype=np.float64)
        prog.params["v.W"][...] = 3 * np.random.default_rng(1).normal(size=prog.params["v.W"].shape)
        hist = ppl.fit(prog, {"x": X}, ppl.optim.Adam(0.05), steps=steps, batch_size=16, remeasure=100,
                       checkpoint=ck, resume=True, progress=False)
        return prog, hist
    first, hist = run(300)
    switched = first.choices["h"][0].estimator
    assert switched != "disarm" and hist.choices[0]["to"] == "disarm"
    second, hist2 = run(400)   # the measured choice starts at DisARM; the checkpoint's program is taken
    assert second.choices["h"][0].estimator == switched and hist2.start_step == 300


def test_a_users_estimator_is_a_candidate_and_a_failing_one_falls_back():
    """A user's unbiased estimator that shares the drawn row is measured beside the built-ins; one
    whose code fails in the candidates' program leaves the node at the rule table's choice, the
    reason said (the user's first gradient does not fail for it)."""
    from ppl.estimators import REGISTRY, register_estimator

    class MyScore(ppl.Estimator):   # the score function without a baseline, by the public protocol
        name = "my_score"

        def draw(self, ctx):
            ctx.sample(reads_noise=False)

        def estimate(self, ctx):
            L, rw = ctx.learning_signal()
            w = ctx.buffer("w")
            ctx.call(ppl.KERNELS.rows.score_weights, rw, L, ctx.rows.zeros, w)
            ctx.log_prob_vjp(w)

    class Broken(MyScore):
        name = "my_broken"

        def estimate(self, ctx):
            raise TypeError("my_broken: a bug of its own")

    before = dict(REGISTRY)
    try:
        register_estimator(MyScore)
        prog = mixed("mixed_user").compile(policy="measured", pilot={"x": np.random.default_rng(0).normal(size=(16, 2))},
                                           dtype=np.float64)
        assert ("b", "my_score") in {(r["node"], r["estimator"]) for r in prog.autotune_table if r["rows"]}
        register_estimator(Broken)
        prog = mixed("mixed_broken").compile(policy="measured", dtype=np.float64)
        X = np.random.default_rng(0).normal(size=(16, 2))
        prog.grad({"x": X})
        prog.grad({"x": X}, step=1)   # the measurement made on a thread meanwhile: its outcome
        assert prog.choices["b"][0].estimator == "disarm"
        assert "not measured: the candidates' program was refused" in prog.choices["b"][0].reason
        assert "my_broken" in prog.choices["b"][0].reason
    finally:
        REGISTRY.clear()
        REGISTRY.update(before)


def _black_box(name, law="bernoulli"):
    """A node behind a gradient-free black box, where the rule table takes stochastic derivatives
    (benchmarks/black_boxes.py): 5 Bernoulli units (32 values: enumeration is exact there), or a
    Poisson count."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "benchmarks"))
    import black_boxes
    return black_boxes.model(name, law)


def test_candidates_of_programs_of_their_own_are_measured_by_the_next_call(monkeypatch):
    """Enumeration and stochastic derivatives cannot share the measured program's drawn row: each is
    measured in a program of its own. After a first gradient (the rule table's program's) all of it
    is compiled and measured on a thread while the caller goes on; the next call decides. Behind a
    black box the rule table's stochastic derivatives lose to enumeration, exact on 5 units."""
    monkeypatch.delenv("PPL_POLICY", raising=False)
    X = np.random.default_rng(0).normal(size=(16, 2))
    prog = _black_box("bb_enum").compile(dtype=np.float64)
    assert prog.choices["b"][0].estimator == "stochastic_derivative" and prog.measure_pending == ("b",)
    prog.grad({"x": X})   # the rule table's program's estimate; measured on a thread meanwhile
    assert prog.choices["b"][0].estimator == "stochastic_derivative" and prog.measure_pending == ()
    _, g1 = prog.grad({"x": X}, seed=1, step=1)
    assert prog.choices["b"][0].estimator == "enumerate"
    _, g2 = prog.grad({"x": X}, seed=2, step=7)
    assert np.allclose(g1["pb.W"], g2["pb.W"]) and np.abs(g1["pb.W"]).max() > 0   # exact: no noise left
    by = {r["estimator"]: r for r in prog.autotune_table if r["node"] == "b"}
    assert by["enumerate"]["chosen"] and by["enumerate"]["why"].startswith("in a program of its own (at b)")
    assert by["stochastic_derivative"]["rows"] == 2 and by["stochastic_derivative"]["score"] > 0
    assert "in a program of its own" in prog.explain()
    # a node whose rule-table estimator is measured alone is measured too (it was not: nothing to
    # compare it with in one program), against its candidates that share the drawn row
    poisson = _black_box("bb_poisson", "poisson").compile(dtype=np.float64)
    assert poisson.choices["k"][0].estimator == "stochastic_derivative"
    poisson.choose({"x": np.random.default_rng(1).normal(size=(32, 2))})
    by = {r["estimator"]: r for r in poisson.autotune_table if r["rows"]}
    assert set(by) == {"score", "mvd", "stochastic_derivative"} and by["stochastic_derivative"]["draws"] == A.SOLO_DRAWS
    assert sum(r["chosen"] for r in by.values()) == 1


def _untouched(prog) -> list:
    """The measurement's programs of their own never compiled (their step has no signature)."""
    return [p for p in prog.measurement._solo_progs.values() if not p.entry.signatures]


def test_a_run_too_short_to_repay_a_program_of_its_own_leaves_it_unmeasured(counted, monkeypatch):
    """choose(steps=N) (fit, `ppl train`): the programs of their own are measured only while their
    draws and timing cost at most SOLO_SHARE of the run's steps (counted in steps of the choice's
    work: with TIME_ROUNDS = 0 the same on every run), the cheapest first; one left out is never
    compiled and says why. A candidate that is the choice in force (the rule table's) is measured
    whatever it costs: the others are compared with it. Without a length, all are measured."""
    X = np.random.default_rng(0).normal(size=(32, 2))
    short = mixed("mixed_short").compile(dtype=np.float64, policy="measured").choose({"x": X}, steps=500)
    by = {r["estimator"]: r for r in short.autotune_table if r["node"] == "b"}
    assert by["mvd"]["chosen"] and by["arms"]["rows"] == 0 and by["stochastic_derivative"]["rows"] == 0
    assert "not measured: measuring it costs about" in by["arms"]["why"] and "500 steps" in by["arms"]["why"]
    assert len(_untouched(short)) == len(short.measurement._solo_progs) >= 2   # none of them compiled
    # the share's arithmetic: the cheapest program of its own fits once the run is long enough for it
    # and the reference (WARMUP + SOLO_DRAWS draws of each, the first in steps of the choice's work)
    m = short.measurement
    draws = measure.WARMUP + measure.SOLO_DRAWS
    ref = m._rows(m.picks)
    need = {e: draws * (1 + max(1.0, m._rows({**m.picks, "b": e, "c": e}) / ref)) for e in ("arms",)}
    monkeypatch.setattr(measure, "SOLO_SHARE", 1.0)
    for steps, measured in ((int(need["arms"]) - 1, False), (int(need["arms"]) + 1, True)):
        p = mixed("mixed_short").compile(dtype=np.float64, policy="measured").choose({"x": X}, steps=steps)
        row = next(r for r in p.autotune_table if r["node"] == "b" and r["estimator"] == "arms")
        assert (row["rows"] > 0) == measured, (steps, need, row)
    long = mixed("mixed_short").compile(dtype=np.float64, policy="measured").choose({"x": X}, steps=10 ** 9)
    by = {r["estimator"]: r for r in long.autotune_table if r["node"] == "b"}
    assert by["arms"]["draws"] == measure.SOLO_DRAWS and by["stochastic_derivative"]["draws"] == measure.SOLO_DRAWS
    # the choice in force is measured in a program of its own even when nothing else fits
    monkeypatch.setattr(measure, "SOLO_SHARE", 0.0)
    bb = _black_box("bb_short").compile(dtype=np.float64, policy="measured").choose({"x": X[:16]}, steps=1)
    by = {r["estimator"]: r for r in bb.autotune_table if r["node"] == "b"}
    assert by["stochastic_derivative"]["draws"] == measure.SOLO_DRAWS and by["enumerate"]["rows"] == 0
    assert "the run's 1 steps" in by["enumerate"]["why"]
    with pytest.raises(ModelError, match="choose: steps"):
        mixed("mixed_short").compile(dtype=np.float64, policy="measured").choose({"x": X}, steps=-1)


def test_draws_that_agree_up_to_rounding_have_no_variance():
    """Two exact estimators tie at zero whatever their rounding (the toy's DisARM and enumeration,
    one unit): draws that differ by a few units in the last place have no variance, in float32 and
    float64, so the rule table's choice stays among them; the test of the test: draws that differ
    by a relative 1024 ulps (16 times the floor's 64, of the largest entry) keep their variance, and
    a rounding-level variance left as it was would be apart from an exact zero."""
    from ppl.compiler.measure import moments
    rng = np.random.default_rng(0)
    for dt in (np.float32, np.float64):
        exact = rng.normal(size=40).astype(dt)
        ulps = rng.integers(-4, 5, size=(32, 40))
        rounded = (exact * (1 + ulps * np.finfo(dt).eps)).astype(dt)
        assert np.any(rounded != exact) and moments(rounded) == (0.0, 0.0)
        noisy = (exact * (1 + 1024 * np.finfo(dt).eps * rng.normal(size=(32, 40)))).astype(dt)
        var, se = moments(noisy)
        assert var > 0 and se > 0
    raw = float(((rounded - rounded.mean(0)) ** 2).sum(1).sum() / 31)
    assert raw > 0 and A.decide([_c("enumerate", 0.0, 2), _c("disarm", raw, 2)], "disarm").estimator == "enumerate"
    assert A.decide([_c("enumerate", 0.0, 2), _c("disarm", moments(rounded)[0], 2)], "disarm").estimator == "disarm"
