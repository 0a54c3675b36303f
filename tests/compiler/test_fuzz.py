"""Property-based fuzzing of the DSL and the compiler with hypothesis.

1. Random valid graphs (1-3 stochastic layers of Bernoulli / Normal / Categorical units, widths
   1-5, affine and activation layers, sums and products, costs incl. log_prob and @njit black
   boxes with and without a gradient, a random estimator per node, samples 1-3, float32 and
   float64, both lowerings) compile, and their loss and every gradient are finite. An estimator
   the compiler refuses for a node must be refused with a ppl.ModelError (the program then
   compiles with the automatic choice).
2. Deterministic parts: for graphs whose stochastic nodes are all Normal with `pathwise`, in
   float64, the loss at a fixed seed is a smooth function of every parameter (the noise is
   fixed): the gradient must match its central difference at the same seed.
3. Tiny graphs (1-2 stochastic layers, at most 4 discrete configurations or one Normal unit per
   layer) with a random *unbiased* estimator per node: the mean estimate matches the exact
   gradient of tests/exact.py (enumeration, Gauss-Hermite, central differences) by
   stats.assert_unbiased_tuned: projection ratio within 4 SE of 1 (SE about 0.8%) and every
   entry within 4.5 SE, and the same estimates scaled by 1.05 and 0.95 must fail, so each
   example detects a 5% bias.
4. Random invalid arguments to every DSL constructor and to compile/grad raise ppl.ModelError,
   never a raw TypeError/KeyError/IndexError, a numba error or silence.

Reproducible: derandomized, no example database. Each valid example compiles one program
(numba: 2-6 s), so the example counts are small; PPL_FUZZ_EXAMPLES=N runs N graphs of each kind.
"""
import os

import numba
import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings, strategies as st

import ppl
from ppl import Affine, Bernoulli, Categorical, Model, ModelError, Normal

import exact
import stats

N_VALID = int(os.environ.get("PPL_FUZZ_EXAMPLES", "4"))
N_TINY = int(os.environ.get("PPL_FUZZ_EXAMPLES", "4"))
# no shrinking: each step of it compiles a program (seconds); a failure prints its whole spec
SETTINGS = dict(derandomize=True, deadline=None, database=None, phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck))

ESTIMATORS = sorted(ppl.estimators)
UNBIASED = sorted(k for k, v in ppl.estimators.items() if v.unbiased)


@numba.njit
def bb_sq(r):
    return np.sum(r * r)


@numba.njit
def bb_sq_grad(r, g):
    g[:] = 2.0 * r


@numba.njit
def bb_sin(r):
    return np.sin(np.sum(r))


@numba.njit
def bb_array(r):
    return r * 2.0


ACTS = ["sigmoid", "tanh", "relu", "softplus", "exp", "sqrt1p"]


# --------------------------------------------------------------------------- valid graphs
@st.composite
def specs(draw):
    layers = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["bernoulli", "normal", "categorical"]))
        width = draw(st.integers(1, 5))
        classes = draw(st.integers(2, 3)) if kind == "categorical" else None
        act = draw(st.sampled_from(ACTS + [None]))
        arith = draw(st.sampled_from([None, "add", "mul", "scale_shift"]))
        costs = draw(st.lists(st.sampled_from(["log_prob", "total_tanh", "bb", "bb_grad", "nll"]),
                              min_size=1, max_size=3, unique=True))
        est = draw(st.sampled_from(ESTIMATORS + ["auto"]))
        layers.append(dict(kind=kind, width=width, classes=classes, act=act, arith=arith, costs=costs,
                           est=est))
    return dict(layers=layers, xw=draw(st.integers(1, 3)), samples=draw(st.integers(1, 3)),
                dtype=draw(st.sampled_from([np.float32, np.float64])),
                lowering=draw(st.sampled_from(["auto", "arrays"])))


def build(spec, name="fuzz"):
    with Model(name) as m:
        x = m.input("x", spec["xw"])
        h = x
        for i, L in enumerate(spec["layers"]):
            out = L["width"] * (L["classes"] or 1)
            a = Affine(h, out, name=f"a{i}")
            if L["act"]:
                a = getattr(ppl, L["act"])(a)
            if L["arith"] == "add":
                a = a + Affine(h, out, name=f"b{i}")
            elif L["arith"] == "mul":
                a = a * ppl.tanh(Affine(h, out, name=f"b{i}"))
            elif L["arith"] == "scale_shift":
                a = 0.5 * a - 0.25
            n = f"h{i}"
            if L["kind"] == "bernoulli":
                z = Bernoulli(n, logits=a)
            elif L["kind"] == "categorical":
                z = Categorical(n, logits=a, classes=L["classes"])
            else:
                z = Normal(n, loc=a, scale=ppl.softplus(Affine(h, out, name=f"s{i}")))
            for c in L["costs"]:
                if c == "log_prob":
                    m.cost(f"lp{i}", ppl.log_prob(z))
                elif c == "total_tanh":
                    m.cost(f"tt{i}", ppl.total(ppl.tanh(z)))
                elif c == "bb":
                    m.cost(f"bb{i}", ppl.blackbox(bb_sin, [z]))
                elif c == "bb_grad":
                    m.cost(f"bg{i}", ppl.blackbox(bb_sq, [z], grad=bb_sq_grad))
                elif c == "nll":
                    m.cost(f"nl{i}", ppl.bernoulli_nll(Affine(z, spec["xw"], name=f"d{i}"), target=x))
            h = z
    return m


def compile_spec(m, spec):
    ests = {f"h{i}": L["est"] for i, L in enumerate(spec["layers"]) if L["est"] != "auto"}
    kw = dict(dtype=spec["dtype"], samples=spec["samples"], lowering=spec["lowering"])
    try:
        return m.compile(estimators=ests, **kw), ests
    except ModelError as e:
        assert "does not apply" in str(e) or "refuse" in str(e) or "use " in str(e), str(e)
    return m.compile(**kw), {}


def _set_params(prog, rng):
    for k in prog.params:
        v = prog.params[k]
        v[...] = rng.normal(0, 0.5, size=np.shape(v))


X = np.array([[1., 0., 1.], [0., 1., 1.], [1., 1., 0.]])


@pytest.mark.slow
@settings(max_examples=N_VALID, **SETTINGS)
@given(specs())
def test_random_valid_graph_compiles_and_gives_finite_gradients(spec):
    m = build(spec)
    prog, _ = compile_spec(m, spec)
    _set_params(prog, np.random.default_rng(0))
    data = {"x": X[:, :spec["xw"]].astype(spec["dtype"])}
    for seed in (0, 1):
        loss, g = prog.grad(data, seed=seed)
        assert np.isfinite(loss), spec
        for k, v in g.items():
            assert np.all(np.isfinite(v)), (k, spec)


@st.composite
def pathwise_specs(draw):
    layers = []
    for _ in range(draw(st.integers(1, 2))):
        layers.append(dict(kind="normal", width=draw(st.integers(1, 2)), classes=None,
                           act=draw(st.sampled_from(["tanh", "softplus", "sigmoid", "sqrt1p", None])),
                           arith=draw(st.sampled_from([None, "add", "mul", "scale_shift"])),
                           costs=draw(st.lists(st.sampled_from(["log_prob", "total_tanh", "bb_grad", "nll"]),
                                               min_size=1, max_size=3, unique=True)),
                           est="pathwise"))
    return dict(layers=layers, xw=draw(st.integers(1, 3)), samples=draw(st.integers(1, 2)),
                dtype=np.float64, lowering=draw(st.sampled_from(["auto", "arrays"])))


@pytest.mark.slow
@settings(max_examples=max(2, N_VALID // 2), **SETTINGS)
@given(pathwise_specs())
def test_pathwise_gradient_matches_central_difference_at_a_fixed_seed(spec):
    """With every stochastic node Normal and pathwise, the loss at a fixed seed is a smooth
    function of the parameters (the noise is fixed): its gradient is the exact derivative."""
    m = build(spec, name="fuzz_pw")
    prog, ests = compile_spec(m, spec)
    assert len(ests) == len(spec["layers"])       # pathwise applies to every Normal node
    _set_params(prog, np.random.default_rng(1))
    data = {"x": X[:, :spec["xw"]]}
    _, g = prog.grad(data, seed=3)
    eps = 1e-6
    for k in prog.params:
        v = prog.params[k]
        flat = v.reshape(-1)
        for j in range(flat.size):
            old = flat[j]
            flat[j] = old + eps
            up = prog.loss(data, seed=3)
            flat[j] = old - eps
            dn = prog.loss(data, seed=3)
            flat[j] = old
            fd = (up - dn) / (2 * eps)
            an = g[k].reshape(-1)[j]
            assert abs(fd - an) <= 1e-5 * (1 + abs(fd)), (k, j, fd, an, spec)


@st.composite
def tiny_specs(draw):
    layers = []
    for _ in range(draw(st.integers(1, 2))):
        kind = draw(st.sampled_from(["bernoulli", "normal", "categorical"]))
        width = draw(st.integers(1, 2)) if kind == "bernoulli" else 1
        classes = draw(st.integers(2, 4)) if kind == "categorical" else None
        layers.append(dict(kind=kind, width=width, classes=classes,
                           act=draw(st.sampled_from(["tanh", "sigmoid", "softplus", None])),
                           arith=draw(st.sampled_from([None, "add", "scale_shift"])),
                           costs=draw(st.lists(st.sampled_from(["log_prob", "total_tanh", "bb", "bb_grad", "nll"]),
                                               min_size=1, max_size=3, unique=True)),
                           est=draw(st.sampled_from(UNBIASED + ["auto"]))))
    return dict(layers=layers, xw=draw(st.integers(1, 2)), samples=draw(st.integers(1, 3)),
                dtype=np.float64, lowering=draw(st.sampled_from(["auto", "arrays"])))


@pytest.mark.slow
@settings(max_examples=N_TINY, **SETTINGS)
@given(tiny_specs())
def test_tiny_graph_mean_estimate_matches_enumeration(spec):
    """Oracle: tests/exact.py on the same model and parameters. Detects a 5% bias (projection
    ratio, SE about 0.8%, with the test of the test at 1.05 / 0.95)."""
    m = build(spec, name="fuzz_tiny")
    prog, _ = compile_spec(m, spec)
    _set_params(prog, np.random.default_rng(2))
    data = {"x": X[:2, :spec["xw"]]}
    P = exact.model_params(prog)
    e = exact.gradient(m, P, data)
    names = list(e)
    ef = stats.flat(e, names)
    scale = np.abs(ef).max()
    if scale < 1e-8:   # the objective does not depend on the parameters (a cost constant over the support)
        G = stats.draws(prog, data, names, 50, 20)
        se = G.std(0, ddof=1) / np.sqrt(len(G))
        assert np.all(np.abs(G.mean(0)) <= stats.Z_ENTRY * se + 1e-8), (G.mean(0), se, spec)
        return
    G = stats.draws(prog, data, names, 3, 1)
    if np.all(G.std(0) <= 1e-12 * scale):   # every node enumerated: no noise at all
        np.testing.assert_allclose(G[0], ef, rtol=1e-6, atol=1e-8 * scale)
        return
    stats.assert_unbiased_tuned(prog, data, names, ef, f"{spec} {prog.explain()}")


# --------------------------------------------------------------------------- invalid input
BAD_VALUES = [None, "x", 1.5, -1, 0, [1, 2], {"a": 1}, object(), np.nan, True]


def _small():
    m = Model("fuzz_bad")
    m.__enter__()
    x = m.input("x", 2)
    return m, x


def _raises_model_error(fn):
    try:
        fn()
    except ModelError:
        return
    except Exception as e:  # noqa: BLE001 - the property is: nothing but ModelError
        raise AssertionError(f"raised {type(e).__name__}: {e}") from e
    raise AssertionError("accepted silently")


DSL_CALLS = {
    "Affine.x": lambda x, v: Affine(v, 2),
    "Affine.out": lambda x, v: Affine(x, v),
    "Affine.name": lambda x, v: Affine(x, 2, name=v if v is not None else "1bad"),
    "Bernoulli.name": lambda x, v: Bernoulli(v if v is not None else "bad name", logits=Affine(x, 2)),
    "Bernoulli.logits": lambda x, v: Bernoulli("h", logits=v),
    "Bernoulli.link": lambda x, v: Bernoulli("h", logits=Affine(x, 2), link=v),
    "Normal.loc": lambda x, v: Normal("h", loc=v, scale=ppl.softplus(Affine(x, 2))),
    "Normal.scale": lambda x, v: Normal("h", loc=Affine(x, 2), scale=v),
    "Categorical.logits": lambda x, v: Categorical("h", logits=v, classes=2),
    "Categorical.classes": lambda x, v: Categorical("h", logits=Affine(x, 4), classes=v),
    "act.x": lambda x, v: ppl.tanh(v),
    "rowsum.x": lambda x, v: ppl.rowsum(v),
    "log_prob.node": lambda x, v: ppl.log_prob(v),
    "total.x": lambda x, v: ppl.total(v),
    "bernoulli_nll.target": lambda x, v: ppl.bernoulli_nll(Affine(x, 2), target=v),
    "softmax_xent.classes": lambda x, v: ppl.softmax_xent(Affine(x, 2), x, classes=v),
    "blackbox.fn": lambda x, v: ppl.blackbox(v, [x]),
    "blackbox.inputs": lambda x, v: ppl.blackbox(bb_sq, v),
    "blackbox.grad": lambda x, v: ppl.blackbox(bb_sq, [x], grad=v),
    "input.width": lambda x, v: x.model.input("y", v),
    "input.name": lambda x, v: x.model.input(v if v is not None else "x", 2),
    "param.width": lambda x, v: ppl.param("p", v),
    "param.init": lambda x, v: ppl.param("p", 2, init=v),
    "cost.expr": lambda x, v: x.model.cost("c", v),
    "cost.name": lambda x, v: x.model.cost(v if v is not None else "", ppl.total(x)),
}

# (argument, value) pairs that are valid, so not errors
VALID_COMBOS = {("cost.name", "'x'"), ("softmax_xent.classes", "None"), ("blackbox.grad", "None"), ("param.init", "1.5"),
                ("Categorical.classes", "None"),   # the default: one group of the logits' width
                ("param.init", "-1"), ("param.init", "0"), ("param.init", "True"), ("param.init", "[1, 2]"),
                # numbers where a node is expected are constants (a scale > 0, a Bernoulli target in [0, 1])
                ("Normal.loc", "1.5"), ("Normal.loc", "-1"), ("Normal.loc", "0"), ("Normal.scale", "1.5"),
                ("bernoulli_nll.target", "0")}


@settings(max_examples=120, **SETTINGS)
@given(st.sampled_from(sorted(DSL_CALLS)), st.sampled_from(range(len(BAD_VALUES))))
def test_bad_dsl_arguments_raise_model_error(where, i):
    v = BAD_VALUES[i]
    if (where, repr(v)) in VALID_COMBOS:
        return
    m, x = _small()
    try:
        _raises_model_error(lambda: DSL_CALLS[where](x, v))
    finally:
        m.__exit__(None, None, None)


# --------------------------------------------------------------------------- invalid compile / call arguments
def _model(name="fuzz_c"):
    with Model(name) as m:
        x = m.input("x", 2)
        h = Bernoulli("h", logits=Affine(x, 2, name="enc"))
        m.cost("rec", ppl.bernoulli_nll(Affine(h, 2, name="dec"), target=x))
        m.cost("lp", ppl.log_prob(h))
    return m


COMPILE_BAD = {
    "estimators": [7, "nope", {"nope": "score"}, {"h": "nope"}, {"h": ("score", {"nope": 1})},
                   {"h": ("score", {"baseline": "nope"})}, {"h": "pathwise"}, {"h": 3}],
    "policy": ["nope", 3, "auto"],   # None: the default (PPL_POLICY, else "measured")
    "dtype": [np.int32, "float16", None, 3],
    "samples": [0, -1, 1.5, "2", None, True],
    "lowering": ["nope", None, 3, "row-fused"],
    "target": ["nope", None, 3],
    "baseline": ["nope", 3],
}


@settings(max_examples=40, **SETTINGS)
@given(st.sampled_from([(k, i) for k, vs in COMPILE_BAD.items() for i in range(len(vs))]))
def test_bad_compile_arguments_raise_model_error(case):
    """Every refusal happens before any code is generated, so these examples are cheap."""
    k, i = case
    _raises_model_error(lambda: _model().compile(**{k: COMPILE_BAD[k][i]}))


@pytest.fixture(scope="module")
def prog():
    return _model("fuzz_p").compile(dtype=np.float64)


DATA_BAD = [None, {}, {"y": np.ones((2, 2))}, {"x": np.ones((2, 3))}, {"x": np.ones(3)},
            {"x": np.ones((2, 2, 1))}, {"x": np.array([["a", "b"]])}, {"x": np.full((2, 2), np.nan)},
            {"x": [[1, 2], [3]]}, {"x": "x"}, {"x": np.ones((0, 2))}, 3]


@settings(max_examples=30, **SETTINGS)
@given(st.sampled_from(range(len(DATA_BAD))), st.sampled_from(["loss", "grad"]))
def test_bad_data_raises_model_error(prog, i, method):
    _raises_model_error(lambda: getattr(prog, method)(DATA_BAD[i], seed=0))


BATCH_BAD = [0, -1, 1.5, "2", 10 ** 12]


@settings(max_examples=10, **SETTINGS)
@given(st.sampled_from(range(len(BATCH_BAD))))
def test_bad_batch_raises_model_error(prog, i):
    _raises_model_error(lambda: prog.grad({"x": np.ones((2, 2))}, seed=0, batch=BATCH_BAD[i]))
