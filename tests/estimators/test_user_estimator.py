"""An estimator written outside ppl (examples/user_estimator.py, the stochastic derivative of a
Bernoulli node) on the public protocol (ppl.Estimator, ppl.register_estimator).

Oracle: tests/exact.py (both layers enumerated, the gradient by central differences). Check:
stats.assert_unbiased_tuned (projection ratio within 4 SE of 1, every entry within 4.5 SE; the
estimates scaled by 1.05 and 0.95 must fail, so each case detects a 5% bias; the tile is sized for
an SE of the ratio of about 0.8%, a 3.2% bias). Alone, and stacked over and under DisARM and the
score function.
"""
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from numba import njit

import exact
import ppl
import stats
from ppl.estimators import REGISTRY
from ppl import KERNELS, Affine, Model

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "user_estimator.py"


def _example():
    spec = importlib.util.spec_from_file_location("user_estimator_example", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)   # registers "every_jump"
    return mod


@pytest.fixture(autouse=True)
def registry():
    """Each test registers what it needs and leaves ppl's registry as it found it: another test in
    the same process (the README's estimator list, autotune's candidates) sees ppl's own only."""
    before = dict(REGISTRY)
    yield
    REGISTRY.clear()
    REGISTRY.update(before)


@pytest.fixture
def EX():
    return _example()
from small_models import DATA, two_layer_sbn as build  # noqa: E402


def _oracle():
    m = build("ue_oracle")
    prog = m.compile(dtype=np.float64, estimators="score")
    rng = np.random.default_rng(7)
    P = {k: rng.normal(0.0, 0.8, v.shape) for k, v in exact.model_params(prog).items()}
    return P, exact.gradient(m, P, DATA)


@pytest.mark.parametrize("h1,h2", [("every_jump", "every_jump"),
                                   ("disarm", "every_jump"),
                                   ("every_jump", "score")])
def test_user_estimator_is_unbiased(h1, h2, EX):
    P, g = _oracle()
    prog = build(f"ue_{h1}_{h2}").compile(dtype=np.float64, estimators={"h1": h1, "h2": h2})
    for k, v in P.items():
        prog.params[k][...] = v
    names = list(P)
    stats.assert_unbiased_tuned(prog, DATA, names, stats.flat(g, names), f"{h1} over {h2}")


@njit(cache=False)
def _grad_without_p(logits, value, cost, row_weights, stride, size, grad_logits):
    """The estimate with the alternative's weight p left out: biased (by 1 / p per unit)."""
    for r in range(value.shape[0]):
        if (r // stride) % size != 0:
            continue
        for j in range(value.shape[1]):
            if value[r, j] == 0.0:
                grad_logits[r, j] += row_weights[r] * 0.25 * (cost[r + (j + 1) * stride] - cost[r])


def test_a_biased_variant_is_caught(EX):
    """The test of the test: the same estimator with the weight p replaced by 1/4 (the right weight
    only where p = 1/4) is biased, and the check rejects it."""
    @ppl.register_estimator
    class Unweighted(EX.EveryJump):
        name = "every_jump_unweighted"

        def estimate(self, ctx):
            (logits,) = ctx.params()
            (grad_logits,) = ctx.param_grads()
            stride, size = ctx.rows.digit
            ctx.call(_grad_without_p, logits, ctx.value(), ctx.downstream_cost(), ctx.rows.weights, stride, size,
                     grad_logits)

    P, g = _oracle()
    prog = build("ue_unweighted").compile(dtype=np.float64, estimators={"h1": Unweighted.name, "h2": "score"})
    for k, v in P.items():
        prog.params[k][...] = v
    names = list(P)
    G = stats.draws(prog, DATA, names, 200, 200)
    r = stats.check(G, stats.flat(g, names))
    assert not r.ok, r


def test_refused_where_it_does_not_apply_and_on_cuda(EX):
    with Model("ue_normal") as m:
        x = m.input("x", 3)
        z = ppl.Normal("z", Affine(x, 2, name="loc"), 1.0)
        m.cost("c", ppl.total(z * z))
    with pytest.raises(ppl.ModelError, match=r"Normal 'z': estimator 'every_jump' does not apply "
                                             r"\(Normal is not a logit-link Bernoulli\)"):
        m.compile(estimators={"z": "every_jump"})
    with pytest.raises(ppl.ModelError, match=r"target 'cuda': estimator 'every_jump' of node 'h1' calls "
                                             r"the kernel 'every_jump_draw', which has no CUDA"):
        build("ue_cuda").compile(estimators={"h1": "every_jump"}, target="cuda")


def test_register_estimator_errors():
    class Bad(ppl.Estimator):
        name = "score"

        def estimate(self, ctx):
            pass

    with pytest.raises(ppl.ModelError, match="estimator name 'score' is built in"):
        ppl.register_estimator(Bad)

    class NoEstimate(ppl.Estimator):
        name = "no_estimate"

    with pytest.raises(ppl.ModelError, match=r"'no_estimate': define estimate\(self, ctx\)"):
        ppl.register_estimator(NoEstimate)
    with pytest.raises(ppl.ModelError, match="takes a subclass of ppl.Estimator"):
        ppl.register_estimator(object)

    class BadRows(ppl.Estimator):
        name = "bad_rows"

        def rows(self, info, options):
            return 0

        def estimate(self, ctx):
            pass

    ppl.register_estimator(BadRows)
    with pytest.raises(ppl.ModelError, match=r"'bad_rows': rows\(\) must return an int >= 1 for node 'h1'"):
        build("ue_badrows").compile(estimators={"h1": "bad_rows", "h2": "score"})


@pytest.mark.slow
def test_example_runs_and_trains(tmp_path):
    """The example as a user runs it, in a fresh process: it trains (the test ELBO rises)."""
    env = {**os.environ, "PYTHONPATH": ""}
    out = subprocess.run([sys.executable, str(EXAMPLE), "--steps", "400"], capture_output=True, text=True,
                         env=env, cwd=tmp_path, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("test ELBO")][-1]
    before, after = (float(v) for v in re.findall(r"-?\d+\.\d+", line)[:2])
    assert after > before + 5.0, line


def test_noise_buffers_are_separate_streams(EX):
    """Each ctx.noise() call is a buffer and a Philox stream of its own; a kind the fills lack is refused."""
    from ppl.compiler.pipeline import generate_source

    class TwoNoises(EX.EveryJump):
        name = "two_noises"

        def draw(self, ctx):
            ctx.noise("uniform")
            super().draw(ctx)

    ppl.register_estimator(TwoNoises)
    src = generate_source(build("ue_two_noises"), estimators={"h1": "two_noises", "h2": "score"})
    # h1's 2 float32 columns are narrower than a philox block: the narrow fill
    assert "noise.fill_uniform_narrow(n0_h1[" in src and "noise.fill_uniform_narrow(n1_h1[" in src

    class BadKind(EX.EveryJump):
        name = "bad_noise_kind"

        def draw(self, ctx):
            ctx.noise("poisson")

    ppl.register_estimator(BadKind)
    with pytest.raises(ppl.ModelError, match=r"node 'h1': noise kind 'poisson' is not one of 'uniform'"):
        build("ue_bad_kind").compile(estimators={"h1": "bad_noise_kind", "h2": "score"})


def test_a_users_score_function_renders_the_built_in_step():
    """The built-in estimators speak the public context: a user's score function with a
    moving-average baseline, written on its signals (learning_signal, a state of two numbers,
    emit, log_prob_vjp taking the log_prob costs' weights), renders the very step the built-in
    `score` does, under the ELBO and the importance-weighted bound."""
    from ppl.compiler.pipeline import generate_source

    @ppl.register_estimator
    class UserScore(ppl.Estimator):
        name = "user_score"
        fuses_log_prob = True
        objectives = ("elbo", "iwae")
        options = {"decay": 0.9}

        def draw(self, ctx):
            ctx.sample(reads_noise=False)

        def estimate(self, ctx):
            if all(g is ppl.NO_GRAD for g in ctx.param_grads()):
                return
            L, rw = ctx.learning_signal()
            b, w = ctx.buffer("b"), ctx.buffer("w")
            slot = ctx.state("mean", size=2, name=f"baseline.{ctx.node.name}.mean")
            ctx.call(KERNELS.rows.moving_average_baseline, L, rw, "state", slot, repr(ctx.options['decay']), b, True)
            ctx.call(KERNELS.rows.score_weights, rw, L, b, w)
            ctx.log_prob_vjp(w)

    for objective, samples in (("elbo", 1), ("elbo", 2), ("iwae", 3)):
        ours = generate_source(build("ue_same"), estimators={"h1": "user_score", "h2": "user_score"},
                               samples=samples, objective=objective, lowering="arrays")
        score = ("score", {"baseline": "moving_average"})
        theirs = generate_source(build("ue_same"), estimators={"h1": score, "h2": score}, samples=samples,
                                 objective=objective, lowering="arrays")
        assert ours == theirs and "rows.moving_average_baseline" in ours, objective


def test_a_users_vimco_renders_the_built_in_step():
    """The importance-weighted bound's signals are public: a user's VIMCO on ctx.rows.totals, a
    buffer shared by the nodes (buffer(shared=True)) filled once (emit(once=True)) renders the very
    step the built-in `vimco` does, its leave-one-out baselines computed once for both layers."""
    from ppl.compiler.pipeline import generate_source

    @ppl.register_estimator
    class UserVimco(ppl.Estimator):
        name = "user_vimco"
        fuses_log_prob = True
        objectives = ("iwae",)

        def draw(self, ctx):
            ctx.sample(reads_noise=False)

        def estimate(self, ctx):
            if all(g is ppl.NO_GRAD for g in ctx.param_grads()):
                return
            L, uw = ctx.learning_signal()
            w = ctx.buffer("w")
            b = ctx.buffer("bvimco", shared=True)
            rows = ctx.rows
            ctx.call(KERNELS.rows.vimco_baseline, rows.totals, rows.samples, rows.configs, b, once=True)
            ctx.call(KERNELS.rows.score_weights, uw, L, b, w)
            ctx.log_prob_vjp(w)

    ours = generate_source(build("ue_vimco"), estimators={"h1": "user_vimco", "h2": "user_vimco"},
                           samples=3, objective="iwae", lowering="arrays")
    theirs = generate_source(build("ue_vimco"), estimators={"h1": "vimco", "h2": "vimco"}, samples=3,
                             objective="iwae", lowering="arrays")
    # once per rendered step function, as the bound
    assert ours == theirs and ours.count("rows.vimco_baseline(") == ours.count("rows.iwae_bound(") >= 1


def test_rows_say_what_is_below_and_the_bound():
    """ctx.rows as an estimate reads it: the configuration digits below the node (an antithetic
    pair's), the zero row, and the bound's terms under 'iwae' only."""
    seen = {}

    @ppl.register_estimator
    class Reader(ppl.Estimator):
        name = "rows_reader"
        objectives = ("elbo", "iwae")

        def estimate(self, ctx):
            seen[ctx.node.name] = ctx.rows

    from ppl.compiler.pipeline import generate_source
    generate_source(build("ue_rows"), estimators={"h1": "rows_reader", "h2": "disarm"}, samples=2)
    h1 = seen["h1"]
    assert tuple(map(str, h1.digits_below)) == ("(1, )", "(2, )") and h1.enumerated_below is None
    assert h1.zeros and h1.totals is None
    generate_source(build("ue_rows_iwae"), estimators={"h1": "rows_reader", "h2": "rows_reader"}, samples=2,
                    objective="iwae")
    assert seen["h1"].totals and seen["h1"].totals == seen["h2"].totals
    assert tuple(map(str, seen["h2"].digits_below)) == ("(1, )", "(1, )")


def test_estimators_that_evaluate_the_graph_below_are_users_too():
    """REBAR (extra rows that evaluate the graph below with relaxed values, a row digit shared by
    every such node, the nodes below relaxed in those rows) and Price (a second-order pass over the
    graph below) use the public context alone: registered from outside ppl as ppl.Estimator
    subclasses built of their methods, they render the built-in steps up to names (and the check
    of a user's own draw for NaN), on two REBAR
    layers, REBAR over and under DisARM, and Price on a Normal node under four costs."""
    import golden
    from ppl.compiler.pipeline import generate_source

    def user_copy(builtin, name):
        members = {k: v for k, v in vars(type(builtin)).items()
                   if not k.startswith("__") and k not in ("name", "param_prefixes")}
        return ppl.register_estimator(type(f"User_{name}", (ppl.Estimator,), {**members, "name": name}))

    def unchecked(src):   # a user's own draw is checked for NaN in the step (the built-in's is not): those lines out
        lines = src.splitlines()
        drop = {i for i, line in enumerate(lines) if "drew NaN or inf values" in line}
        return "\n".join(line for i, line in enumerate(lines) if i not in drop and i + 1 not in drop)

    user_copy(REGISTRY["rebar"], "user_rebar")
    user_copy(REGISTRY["price"], "user_price")
    assert type(REGISTRY["user_rebar"]).__bases__ == (ppl.Estimator,) and isinstance(REGISTRY["rebar"], ppl.Estimator)
    sbn2 = ppl.models.get("sbn")
    for over in ({"h1": "rebar", "h2": "rebar"}, {"h1": "rebar", "h2": "disarm"}, {"h1": "disarm", "h2": "rebar"}):
        ours = {k: v.replace("rebar", "user_rebar") for k, v in over.items()}
        a = unchecked(generate_source(sbn2.build(latent=(8, 8), nonlinear=True), estimators=ours))
        b = generate_source(sbn2.build(latent=(8, 8), nonlinear=True), estimators=over)
        assert golden.canonical(a) == golden.canonical(b), over
        assert ("rebar.cv_flags(" in a) == (over["h1"] == "rebar"), over   # a node below relaxed in its rows
    a = generate_source(golden._graph("price"), estimators="user_price", dtype=np.float64)
    b = generate_source(golden._graph("price"), estimators="price", dtype=np.float64)
    assert golden.canonical(a) == golden.canonical(b) and "price.hess_gaussian_nll_mean(" in a


def test_an_estimator_declares_its_rows_by_a_row_shape():
    """An estimator may give its rows as one record (Estimator.row_shape -> RowShape) instead of
    rows() and flags: DisARM's pair declared as RowShape(2, "branches") with its flag off renders
    DisARM's step up to names on two layers (the pairs sharing one digit); the test of the test:
    the same pair declared as a "product" (a digit of its own per layer) renders another step."""
    import golden
    from ppl.compiler.pipeline import generate_source
    from ppl.estimators import RowShape

    def declared(name, joins):   # DisARM's methods on ppl.Estimator, its pair given as a RowShape
        members = {}
        for cls in reversed(type(REGISTRY["disarm"]).__mro__[:-2]):   # up to ppl.Estimator and object
            members.update({k: v for k, v in vars(cls).items() if not k.startswith("__")})
        members = {k: v for k, v in members.items() if k not in ("name", "rules", "expansion")}
        return ppl.register_estimator(type(f"Shape_{name}", (ppl.Estimator,), {
            **members, "name": name, "branch_rows": False,
            "row_shape": lambda self, info, opts, joins=joins: RowShape(2, joins, merges=True)}))

    def unchecked(src):   # a user's own draw is checked for NaN in the step (the built-in's is not): those lines out
        lines = src.splitlines()
        drop = {i for i, line in enumerate(lines) if "drew NaN or inf values" in line}
        return "\n".join(line for i, line in enumerate(lines) if i not in drop and i + 1 not in drop)

    declared("pair_shape", "branches")
    declared("pair_product", "product")
    sbn = ppl.models.get("sbn")
    builtin = generate_source(sbn.build(latent=(8, 8)), estimators="disarm")
    ours = unchecked(generate_source(sbn.build(latent=(8, 8)), estimators="pair_shape"))
    assert golden.canonical(ours) == golden.canonical(builtin)
    product = unchecked(generate_source(sbn.build(latent=(8, 8)), estimators="pair_product"))
    assert golden.canonical(product) != golden.canonical(builtin)


def test_a_row_shape_that_breaks_its_contract_is_refused_by_name():
    """A row_shape that is no RowShape, or rows "relaxed" without evaluates_below (the hooks that
    act on them), is refused naming the estimator, the node and the fix; a RowShape's joins is one
    of its four kinds."""
    from ppl.compiler.pipeline import generate_source
    from ppl.estimators import RowShape

    def shaped(name, shape):
        return ppl.register_estimator(type(f"Bad_{name}", (ppl.Estimator,), {
            "name": name, "estimate": lambda self, ctx: None, "row_shape": lambda self, info, opts: shape}))

    shaped("shape_int", 2)
    shaped("shape_relaxed", RowShape(2, "relaxed"))
    shaped("shape_branches", RowShape(2, "branches"))
    sbn = ppl.models.get("sbn")
    with pytest.raises(ppl.ModelError, match="estimator 'shape_int': row_shape.. must return a ppl.estimators.RowShape "
                                             "for node 'h"):
        generate_source(sbn.build(latent=(8,)), estimators="shape_int")
    with pytest.raises(ppl.ModelError, match="'shape_relaxed'.*joins by 'relaxed' but evaluates_below is False"):
        generate_source(sbn.build(latent=(8,)), estimators="shape_relaxed")
    generate_source(sbn.build(latent=(8,)), estimators="shape_branches")   # the test of the test: a sound shape
    with pytest.raises(ValueError, match="joins by one of product, branches, relaxed, alternative"):
        RowShape(2, "pairs")
