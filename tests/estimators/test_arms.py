"""ARMS (`arms`, ppl/estimators/arms.py): n coupled Bernoulli draws per unit, leave-one-out
REINFORCE debiased for their correlation, is unbiased alone and stacked with other estimators,
and at n = 2 is DisARM.

Oracle: tests/exact.py (both layers enumerated; the gradient by central differences).
Check: stats.assert_unbiased_tuned, the projection of the mean estimate on the exact gradient
within 4 SE of 1 (and every entry within 4.5 SE); the tile is sized for an SE of the ratio of
about 0.8%, and the same estimates scaled by 1.05 and 0.95 must fail, so each case detects a 5%
bias. The test of the test: the estimate without the debiasing factor 1 / (1 - rho) (plain
leave-one-out REINFORCE over the coupled draws) is rejected.
DisARM at n = 2: the same noise (stream and columns) gives the same pair of draws, so the two
programs' losses and gradients agree to rounding (float64, rtol 1e-9) on every seed tried.
"""
import numpy as np
import pytest
from numba import njit

import exact
import ppl
import stats
from ppl import Affine, Model
from ppl.estimators import REGISTRY

from small_models import DATA, X, two_layer_sbn as build  # noqa: E402


def _params(prog, seed=7):
    rng = np.random.default_rng(seed)
    return {k: rng.normal(0.0, 0.8, v.shape) for k, v in exact.model_params(prog).items()}


def _setup(prog, seed=7):
    P = _params(prog, seed)
    g = exact.gradient(build("arms_oracle"), P, DATA)
    for k, v in P.items():
        prog.params[k][...] = v
    names = list(P)
    return names, stats.flat(g, names)


CASES = [(("arms", 2), ("arms", 2)), (("arms", 3), ("arms", 3)), (("arms", 4), ("arms", 4)),
         (("arms", 3), "score"), (("arms", 4), "score"), ("disarm", ("arms", 3)), ("disarm", ("arms", 4)),
         (("arms", 3), "enumerate")]


def _spec(s):
    return s if isinstance(s, str) else (s[0], {"n": s[1]})


def _label(s):
    return s if isinstance(s, str) else f"{s[0]}(n={s[1]})"


@pytest.mark.parametrize("h1,h2", CASES, ids=lambda s: _label(s))
def test_arms_is_unbiased(h1, h2):
    label = f"{_label(h1)} over {_label(h2)}"
    prog = build("arms_case").compile(dtype=np.float64, estimators={"h1": _spec(h1), "h2": _spec(h2)})
    names, e = _setup(prog)
    stats.assert_unbiased_tuned(prog, DATA, names, e, label)


@pytest.mark.parametrize("n", [2, 3, 4])
def test_arms_own_parameters_are_unbiased(n):
    """The same check on h1's logit parameters only (a1: what ARMS's estimate reaches), so that the
    stated power is ARMS's own rather than the pooled decoder's."""
    prog = build("arms_own").compile(dtype=np.float64, estimators={"h1": ("arms", {"n": n}), "h2": "arms"})
    names, e = _setup(prog)
    own = [k for k in names if k.startswith("a1.")]
    idx = np.concatenate([np.full(np.size(prog.params[k]), k in own) for k in names])
    stats.assert_unbiased_tuned(prog, DATA, own, e[idx], f"arms(n={n}) on h1's parameters")


def test_arms_is_unbiased_with_samples():
    """K = 2 draws per data row: the configuration digit sits inside each draw's rows."""
    prog = build("arms_k2").compile(dtype=np.float64, samples=2, estimators={"h1": ("arms", {"n": 3}), "h2": "arms"})
    names, e = _setup(prog, seed=11)
    stats.assert_unbiased_tuned(prog, DATA, names, e, "arms(n=3) over arms(n=4), samples=2")


@njit(cache=False)
def _draw_row(r0, i, stride, off):
    return r0 if i == 0 else r0 + (off + i - 1) * stride


@njit(cache=False)
def _grad_without_debiasing(logits, value, cost, row_weights, stride, off, span, size, grad_logits):
    """arms_grad without kappa = 1 / (1 - rho): leave-one-out REINFORCE over the coupled draws
    (each row adds its own weight's share; in a shared digit only the drawn row weighs)."""
    for r in range(value.shape[0]):
        r0 = r - ((r // stride) % span) * stride
        fbar = 0.0
        for i in range(size):
            fbar += cost[_draw_row(r0, i, stride, off)]
        fbar /= size
        for j in range(value.shape[1]):
            s = 0.0
            for i in range(size):
                ri = _draw_row(r0, i, stride, off)
                if value[ri, j] > 0.5:
                    s += cost[ri] - fbar
            grad_logits[r, j] += row_weights[r] * s / (size - 1)


def test_a_variant_without_the_debiasing_factor_is_caught():
    """The test of the test: negatively coupled draws make plain leave-one-out REINFORCE biased
    (its scale is 1 - rho too large); the check rejects it."""
    ARMS = type(REGISTRY["arms"])

    class Biased(ARMS):
        name = "arms_no_debias"

        def estimate(self, ctx):
            (g,) = ctx.param_grads()
            ctx.call(_grad_without_debiasing, *ctx.params(), ctx.value(), ctx.downstream_cost(), ctx.rows.weights,
                     *ctx.rows.slot, ctx.options["n"], g)

    before = dict(REGISTRY)
    try:
        ppl.register_estimator(Biased)
        prog = build("arms_biased").compile(dtype=np.float64, estimators={"h1": "arms_no_debias",
                                                                          "h2": "arms_no_debias"})
        names, e = _setup(prog)
        r = stats.check(stats.draws(prog, DATA, names, 200, 50), e)
        print("arms without debiasing:", r)
        assert not r.ok, r
    finally:
        REGISTRY.clear()
        REGISTRY.update(before)


def test_comparing_rows_above_an_enumerated_node_is_caught():
    """The test of the marginalisation: below ARMS an enumerated node's rows weigh p(c | draw), so
    comparing the draws' costs row by row (arms_grad, without arms_grad_marginal) is biased and the
    check on h1's parameters rejects it; ARMS itself passes the same check (CASES)."""
    from ppl.kernels.cpu.core import arms_grad

    ARMS = type(REGISTRY["arms"])

    class RowByRow(ARMS):
        name = "arms_row_by_row"

        def estimate(self, ctx):
            (g,) = ctx.param_grads()
            ctx.call(arms_grad, *ctx.params(), ctx.value(), ctx.downstream_cost(), ctx.rows.weights, *ctx.rows.slot,
                     ctx.options["n"], g)

    before = dict(REGISTRY)
    try:
        ppl.register_estimator(RowByRow)
        prog = build("arms_row_by_row").compile(dtype=np.float64, estimators={"h1": ("arms_row_by_row", {"n": 3}),
                                                                              "h2": "enumerate"})
        names, e = _setup(prog)
        own = [k for k in names if k.startswith("a1.")]
        idx = np.concatenate([np.full(np.size(prog.params[k]), k in own) for k in names])
        r = stats.check(stats.draws(prog, DATA, own, 200, 50), e[idx])
        print("arms compared row by row over enumerate:", r)
        assert not r.ok, r
    finally:
        REGISTRY.clear()
        REGISTRY.update(before)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_arms_with_two_draws_is_disarm(seed):
    """n = 2: the Dirichlet copula's pair is (u, 1 - u) on DisARM's uniform (the node's first noise
    stream, the same columns), so the rows hold DisARM's pair (in either order) and the estimate
    kappa (f_1 - fbar) b_1 + ... is 1/2 (f(b~) - f(b)) (-1)^b sigma(|a|): equal to rounding.
    Widths 2 and 3 keep both programs on the array lowering (the row-fused one is width 1)."""
    progs = [build(f"arms_vs_{est}").compile(dtype=np.float64, estimators={"h1": spec, "h2": spec})
             for est, spec in (("arms", ("arms", {"n": 2})), ("disarm", "disarm"))]
    P = _params(progs[0], seed=seed)
    for prog in progs:
        for k, v in P.items():
            prog.params[k][...] = v
    data = {"x": np.tile(X, (50, 1))}
    (la, ga), (ld, gd) = (prog.grad(data, seed=seed) for prog in progs)
    assert np.isclose(la, ld, rtol=1e-12)
    for k in gd:
        np.testing.assert_allclose(ga[k], gd[k], rtol=1e-9, atol=1e-12, err_msg=k)
    assert any(np.abs(gd[k]).max() > 1e-3 for k in ("a1.W", "a2.W"))


def test_arms_refuses_other_laws_and_bad_n():
    with Model("arms_normal") as m:
        x = m.input("x", 3)
        z = ppl.Normal("z", Affine(x, 2, name="loc"), 1.0)
        m.cost("c", ppl.total(z * z))
    with pytest.raises(ppl.ModelError, match=r"Normal 'z': estimator 'arms' does not apply \(Normal is not a "
                                             r"logit-link Bernoulli\)"):
        m.compile(estimators={"z": "arms"})
    for bad in (1, 0, 17, 2.5, True):
        with pytest.raises(ppl.ModelError, match=r"Bernoulli 'h1': arms option n \(coupled draws per unit\) must "
                                                 r"be an integer from 2 to 16, got"):
            build("arms_bad_n").compile(estimators={"h1": ("arms", {"n": bad})})
    text = " ".join(build("arms_explain").compile(estimators={"h1": ("arms", {"n": 3}), "h2": "arms"}).explain().split())
    assert "rows per data row: 6 (6 per draw" in text   # the drawn row + 2 + 3 (default n = 4): they add up


@pytest.mark.cuda
@pytest.mark.parametrize("h2", [("arms", {"n": 2}), "enumerate"])
def test_arms_runs_on_the_cuda_target(h2):
    """Its kernels are declared once (kernels/families/arms.py): the CUDA step has them."""
    est = {"h1": ("arms", {"n": 3}), "h2": h2}
    cpu = build("arms_cuda_twin").compile(dtype=np.float64, estimators=est)
    gpu = build("arms_cuda_twin").compile(dtype=np.float64, estimators=est, target="cuda")
    for k, v in cpu.params.items():
        gpu.params[k][...] = v
    lc, gc = cpu.grad(DATA, seed=5)
    lg, gg = gpu.grad(DATA, seed=5)
    assert np.isclose(lc, lg, rtol=1e-9)
    for k in gc:
        np.testing.assert_allclose(gg[k], gc[k], rtol=1e-9, atol=1e-12)
