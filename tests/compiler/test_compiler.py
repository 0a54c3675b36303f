"""The compiler: the policy rule table, clear errors, exact deterministic backward passes
(central finite differences, float64), reproducibility across thread counts."""
import numba
import numpy as np
import pytest

import ppl
from ppl import Affine, Bernoulli, Categorical, Model, ModelError, Normal
from ppl.compiler import pipeline as C
from ppl.analysis import graph as G
from ppl.lowering import named_source


@numba.njit
def _sim(z):
    return abs(np.floor(3 * z[0]) / 3 - 1.0)


@numba.njit
def _smooth(z):
    return z[0] ** 2


@numba.njit
def _smooth_grad(z, g):
    g[0] = 2 * z[0]


def _graph(kind):
    with Model(kind) as m:
        x = m.input("x", 4)
        if kind == "normal":
            h = Affine(x, 2, name="enc")
            z = Normal("z", loc=h, scale=ppl.softplus(Affine(x, 2, name="s")))
            m.cost("f", ppl.total(z * z))
        elif kind == "bernoulli":
            z = Bernoulli("z", logits=Affine(x, 3, name="enc"))
            m.cost("f", ppl.bernoulli_nll(Affine(z, 4, name="dec"), target=x))
        elif kind == "probit":
            z = Bernoulli("z", logits=Affine(x, 3, name="enc"), link="probit")
            m.cost("f", ppl.bernoulli_nll(Affine(z, 4, name="dec"), target=x))
        elif kind == "categorical":
            z = Categorical("z", logits=Affine(x, 6, name="enc"), classes=3)
            m.cost("f", ppl.total(ppl.tanh(Affine(z, 2, name="dec"))))
        elif kind == "normal_blackbox":
            z = Normal("z", loc=Affine(x, 1, name="enc"), scale=ppl.param("s", 1, init=1.0))
            m.cost("f", ppl.blackbox(_sim, [z]))
        elif kind == "normal_blackbox_grad":
            z = Normal("z", loc=Affine(x, 1, name="enc"), scale=ppl.param("s", 1, init=1.0))
            m.cost("f", ppl.blackbox(_smooth, [z], grad=_smooth_grad))
        elif kind == "bernoulli_blackbox":
            z = Bernoulli("z", logits=Affine(x, 1, name="enc"))
            m.cost("f", ppl.blackbox(_sim, [z]))
        elif kind == "layered":
            h1 = Bernoulli("h1", logits=Affine(x, 3, name="e1"))
            z = Normal("z", loc=Affine(h1, 2, name="e2"), scale=ppl.param("s", 2, init=1.0))
            m.cost("f", ppl.blackbox(_sim, [z]))
    return m


# graph -> {policy: {node: estimator}}
POLICY_TABLE = [
    ("normal", {"unbiased": {"z": "pathwise"}, "fast": {"z": "pathwise"}}),
    ("bernoulli", {"unbiased": {"z": "disarm"}, "fast": {"z": "reinmax"}}),
    ("bernoulli_blackbox", {"unbiased": {"z": "stochastic_derivative"}, "fast": {"z": "stochastic_derivative"}}),
    ("probit", {"unbiased": {"z": "score"}, "fast": {"z": "straight_through"}}),
    ("categorical", {"unbiased": {"z": "score"}, "fast": {"z": "reinmax"}}),
    ("normal_blackbox", {"unbiased": {"z": "score"}, "fast": {"z": "score"}}),
    ("normal_blackbox_grad", {"unbiased": {"z": "pathwise"}, "fast": {"z": "pathwise"}}),
    ("layered", {"unbiased": {"h1": "disarm", "z": "score"}, "fast": {"h1": "reinmax", "z": "score"}}),
]


@pytest.mark.parametrize("kind,expected", POLICY_TABLE, ids=[p[0] for p in POLICY_TABLE])
def test_policy_table(kind, expected):
    m = _graph(kind)
    an = G.analyse(m)
    for policy, want in expected.items():
        got = {n.name: ch.estimator for n, (ch, _) in C.select(m, an, "auto", policy, 1, None).items()}
        assert got == want, (kind, policy)


def test_blackbox_reason_is_explained():
    m = _graph("normal_blackbox")
    an = G.analyse(m)
    (ch, _), = C.select(m, an, "auto", "unbiased", 1, None).values()
    assert "black box 'blackbox_1'" in ch.reason


def test_override_that_cannot_apply_names_the_node():
    m = _graph("bernoulli")
    with pytest.raises(ModelError, match=r"Bernoulli 'z': estimator 'pathwise' does not apply .*'score'"):
        m.compile(dtype=np.float64, estimators={"z": "pathwise"})
    m = _graph("normal")
    with pytest.raises(ModelError, match=r"Normal 'z'.*'arm' does not apply"):
        m.compile(dtype=np.float64, estimators={"z": "arm"})
    with pytest.raises(ModelError, match=r"unknown stochastic nodes: nope"):
        m.compile(dtype=np.float64, estimators={"nope": "score"})
    with pytest.raises(ModelError, match=r"unknown estimator 'magic'"):
        m.compile(dtype=np.float64, estimators={"z": "magic"})
    with pytest.raises(ModelError, match=r"'loo' needs samples >= 2"):
        m.compile(dtype=np.float64, estimators={"z": ("score", {"baseline": "loo"})})
    with pytest.raises(ModelError, match=r"no option\(s\) tau"):
        m.compile(dtype=np.float64, estimators={"z": ("score", {"tau": 1})})


def test_enumerate_support_limit():
    with Model("big") as m:
        x = m.input("x", 2)
        z = Bernoulli("z", logits=Affine(x, 20, name="enc"))
        m.cost("f", ppl.log_prob(z))
    with pytest.raises(ModelError, match=r"'z': estimator 'enumerate' does not apply \(its support has 1048576"):
        m.compile(dtype=np.float64, estimators="enumerate")


def test_model_validation_errors():
    with pytest.raises(ModelError, match="inside `with ppl.Model"):
        ppl.param("p", 2)
    with Model("v") as m:
        x = m.input("x", 3)
        with pytest.raises(ModelError, match="widths must agree"):
            ppl.bernoulli_nll(Affine(x, 2), target=x)
        z = Bernoulli("z", logits=Affine(x, 3, name="enc"))
        with pytest.raises(ModelError, match="name 'z' is used twice"):
            Bernoulli("z", logits=x)
        with pytest.raises(ModelError, match="not a multiple of classes=2"):
            Categorical("c", logits=x, classes=2)
        del z
    with pytest.raises(ModelError, match="has no cost"):
        m.compile(dtype=np.float64)
    with Model("dangling") as m2:
        x = m2.input("x", 3)
        Bernoulli("z", logits=Affine(x, 3))
        m2.cost("f", ppl.total(x))
    with pytest.raises(ModelError, match="'z' reaches no cost"):
        m2.compile(dtype=np.float64)


def test_input_errors():
    prog = _graph("bernoulli").compile(dtype=np.float64)
    with pytest.raises(ModelError, match=r"input 'x' must have shape \(batch, 4\)"):
        prog.grad({"x": np.zeros((2, 5))})
    with pytest.raises(ModelError, match="input 'x' has non-finite values"):
        prog.grad({"x": np.full((2, 4), np.nan)})
    with pytest.raises(ModelError, match=r"missing \['x'\]"):
        prog.grad({"y": np.zeros((2, 4))})
    with pytest.raises(ModelError, match=r"parameter 'enc.W' has shape \(4, 3\)"):
        prog.params["enc.W"] = np.zeros(3)


def test_blackbox_without_grad_on_a_differentiable_path_is_an_error():
    with Model("bad") as m:
        x = m.input("x", 2)
        m.cost("f", ppl.blackbox(_sim, [Affine(x, 1, name="a")]))
    with pytest.raises(ModelError, match="black box 'blackbox_1' has no gradient but its input 'a'"):
        m.compile(dtype=np.float64)


# ----------------------------------------------------------------------------- finite differences
def _fd_check(prog, data, names=None, seed=7, batch=None, eps=1e-6, tol=1e-6):
    _, g = prog.grad(data, seed=seed, batch=batch)
    for k in names or list(prog.params):
        p = prog.params[k]
        for idx in np.ndindex(p.shape):
            old = p[idx]
            p[idx] = old + eps
            fp = prog.loss(data, seed=seed, batch=batch)
            p[idx] = old - eps
            fm = prog.loss(data, seed=seed, batch=batch)
            p[idx] = old
            fd = (fp - fm) / (2 * eps)
            assert abs(fd - g[k][idx]) <= tol * max(1.0, abs(fd)), (k, idx, fd, g[k][idx])


X = np.array([[1.0, 0.0, 1.0, 1.0], [0.0, 1.0, 0.0, 1.0], [1.0, 1.0, 0.0, 0.0]])


@pytest.mark.parametrize("samples", [1, 3])
def test_fd_pathwise_vae_like_graph(samples):
    """A Gaussian VAE-shaped graph with every layer kind: a fixed seed makes the loss a smooth
    function of the parameters, so the fused backward must equal its finite differences. With
    3 samples the data-row sub-graph (encoder, the relu * param branch) runs on B rows and its
    cotangents are folded back from the 3 B sample rows."""
    with Model("vae_fd") as m:
        x = m.input("x", 4)
        h = ppl.tanh(Affine(x, 5, name="e1"))
        loc = Affine(h, 2, name="loc")
        scale = ppl.sqrt1p(Affine(h, 2, name="sc"))
        z = Normal("z", loc=loc, scale=scale)
        d = ppl.softplus(Affine(ppl.sigmoid(Affine(z, 3, name="d1")), 4, name="d2"))
        m.cost("recon", ppl.gaussian_nll(Affine(z, 4, name="mu"), ppl.exp(0.1 * d), target=x))
        m.cost("kl", ppl.gaussian_kl(loc, scale))
        m.cost("ent", ppl.log_prob(z))
        m.cost("reg", ppl.total(ppl.relu(Affine(x, 2, name="r")) * ppl.param("pw", 2, init=0.3) + (-1.0) * z))
        m.cost("dot", ppl.total(ppl.rowdot(z, Affine(x, 2, name="q")) * ppl.rowsum(ppl.tanh(z))))
    prog = m.compile(dtype=np.float64, samples=samples)
    _fd_check(prog, {"x": X})
    vals = prog.sample({"x": X})
    assert all(v.shape[0] == 3 * samples for v in vals.values())
    assert np.array_equal(vals["x"], np.repeat(X, samples, axis=0))
    if samples > 1:
        src = named_source(prog.source)
        assert "vB_e1" in src and "rows.fold_rows(g_loc, 3, gB_loc)" in src


def test_fd_enumerated_two_layer_net():
    with Model("enum_fd") as m:
        x = m.input("x", 4)
        h1 = Bernoulli("h1", logits=Affine(x, 2, name="e1"))
        h2 = Categorical("h2", logits=Affine(h1, 4, name="e2"), classes=2)
        m.cost("ent", ppl.log_prob(h1))
        m.cost("c2", ppl.softmax_xent(Affine(h2, 4, name="d2"), target=x, classes=2))
        m.cost("prior", ppl.bernoulli_nll(ppl.param("prior", 2), target=h1))
    _fd_check(m.compile(dtype=np.float64, estimators="enumerate"), {"x": X})


@pytest.mark.parametrize("est", ["score", "straight_through", "concrete"])
def test_fd_deterministic_part_of_a_discrete_graph(est):
    """Decoder parameters do not move the samples, so their gradient is exact given the draw."""
    prog = _graph("bernoulli").compile(dtype=np.float64, estimators=est)
    _fd_check(prog, {"x": X}, names=["dec.W", "dec.b"])


def test_fd_relaxed_graph_is_exact_given_the_noise():
    with Model("relaxed") as m:
        x = m.input("x", 4)
        h = Bernoulli("h", logits=Affine(x, 3, name="e"))
        c = Categorical("c", logits=Affine(h, 4, name="e2"), classes=2)
        m.cost("f", ppl.bernoulli_nll(Affine(c, 4, name="d"), target=x))
        m.cost("lp", ppl.log_prob(h))
    _fd_check(m.compile(dtype=np.float64, estimators={"h": "concrete", "c": ("gumbel_softmax", {"temperature": 0.7})}), {"x": X})


def test_fd_blackbox_with_gradient():
    prog = _graph("normal_blackbox_grad").compile(dtype=np.float64)
    _fd_check(prog, {"x": X})


# ----------------------------------------------------------------------------- reproducibility
def test_same_seed_bit_identical_with_1_and_2_threads():
    with Model("repro") as m:
        x = m.input("x", 8)
        h1 = Bernoulli("h1", logits=Affine(x, 16, name="e1"))
        z = Normal("z", loc=Affine(h1, 8, name="loc"), scale=ppl.softplus(Affine(h1, 8, name="s")))
        c = Categorical("c", logits=Affine(z, 12, name="e3"), classes=3)
        m.cost("f", ppl.bernoulli_nll(Affine(c, 8, name="d"), target=x))
        m.cost("e", ppl.log_prob(h1))
    prog = m.compile(dtype=np.float64, samples=2)
    data = {"x": (np.random.default_rng(0).random((300, 8)) > 0.5).astype(float)}
    before = numba.get_num_threads()
    try:
        out = []
        for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(threads)
            prog.state[:] = 0
            loss, g = prog.grad(data, seed=11, step=3)
            out.append((loss, g))
    finally:
        numba.set_num_threads(before)
    assert out[0][0] == out[1][0]
    for k in out[0][1]:
        assert np.array_equal(out[0][1][k], out[1][1][k]), k
    prog.state[:] = 0
    l2, _ = prog.grad(data, seed=12, step=3)
    assert l2 != out[0][0]


def test_explain_table_lists_every_stochastic_node():
    prog = _graph("layered").compile(dtype=np.float64, policy="fast")
    text = prog.explain()
    assert "h1" in text and "reinmax" in text and "score" in text
    why = " ".join(line.split(" | ")[-1].strip() for line in text.splitlines() if " | " in line)   # the wrapped column
    assert "docs/benchmarks/estimators.md, the estimator study" in why   # the reason cites the measurement behind the rule
    assert text.splitlines()[0].split("|")[0].strip() == "node"
    assert max(map(len, text.splitlines())) <= 100 < len(prog.choices[prog.model.nodes["h1"]][0].reason)   # wrapped


# ----------------------------------------------------------------------------- estimator context
def _estimator_context(lw, node):
    from ppl.estimators import EstimatorContext
    ch, _ = lw.choices[node]
    from ppl.estimators import REGISTRY
    return EstimatorContext(REGISTRY[ch.estimator], lw, node, ch.options)


def _public_context_members(ctx) -> set:
    """EstimatorContext's members: its public methods and the attributes an instance holds."""
    methods = {k for k, v in vars(type(ctx)).items()
               if (callable(v) or isinstance(v, property)) and not k.startswith("_")}
    return methods | {k for k in vars(ctx) if not k.startswith("_")}


def test_estimators_use_only_their_documented_context():
    """Every `ctx.<name>` an estimator uses is a documented member of estimators.context.
    EstimatorContext (a method with a docstring, an attribute named in the class docstring), also
    in REBAR and Price, which evaluate the graph below their node again; none names a row-fused
    lowering of its own (`sl.`: the row-fused step runs `draw` and `estimate` on a context whose
    members are the same context's, lowering/rowcontext.py); an estimator assigns no attribute of
    the context and uses no handle on the lowering."""
    import ast
    import pathlib
    import re
    from ppl.estimators import EstimatorContext, protocol
    from ppl.lowering import ArrayLowering, lower
    from ppl.lowering.rowfused import RowFusedLowering
    with Model("ctx_arrays") as m:
        x = m.input("x", 2)
        z = Bernoulli("z", logits=Affine(x, 2, name="enc"))
        m.cost("f", ppl.bernoulli_nll(Affine(z, 2, name="dec"), target=x))
    with Model("ctx_rows") as m1:
        x = m1.input("x", 1)
        z = Bernoulli("z", logits=Affine(x, 1, name="enc"))
        m1.cost("f", ppl.bernoulli_nll(Affine(z, 1, name="dec"), target=x))
    from ppl.analysis import graph as G
    from ppl.compiler.selection import select
    lowerings = {}
    for model, cls in ((m, ArrayLowering), (m1, RowFusedLowering)):
        an = G.analyse(model)
        choices = select(model, an, "auto", "unbiased", 1, None)
        lowerings[cls] = lower(cls, model, an, choices, 1, np.random.default_rng(0))
    # the public context: every member documented, and few of them (its six groups in the docstring)
    ctx = _estimator_context(lowerings[ArrayLowering], m.nodes["z"])
    public = _public_context_members(ctx)
    doc = EstimatorContext.__doc__
    for k in public:
        member = getattr(EstimatorContext, k, None)
        documented = member.__doc__ if callable(member) else re.search(rf"\b{k}\b(?!\()", doc)
        assert documented, f"EstimatorContext.{k} is not documented"
    assert len(public) <= 25, sorted(public)
    allowed = {"ctx": public, "sl": set()}
    used = {"ctx": set(), "sl": set()}
    root = pathlib.Path(protocol.__file__).parent
    for path in sorted(root.glob("*.py")):
        if path.stem in ("protocol", "context", "__init__"):
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Name):
                # (autotune's `lowering` is the compile option of that name, a string)
                assert node.id != "lowering" or path.stem == "autotune", \
                    f"{path.name}:{node.lineno} names the lowering"
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in used:
                used[node.value.id].add(node.attr)
                assert "lowering" not in node.attr, f"{path.name}:{node.lineno} reaches the lowering"
                assert not isinstance(node.ctx, ast.Store), f"{path.name}:{node.lineno} assigns {node.value.id}.{node.attr}"
            if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store):
                v = node.value
                assert not (isinstance(v, ast.Attribute) and isinstance(v.value, ast.Name) and v.value.id in used), \
                    f"{path.name}:{node.lineno} writes {v.value.id}.{v.attr}[...]"
    for name in used:
        assert used[name] <= allowed[name], f"{name}. uses undocumented members {sorted(used[name] - allowed[name])}"
    assert used["ctx"]
    # the lowerings implement the whole context (attributes exist once the passes ran); the row
    # context answers a part of it, by the same names
    assert all(hasattr(ctx, k) for k in public)
    from ppl.lowering.rowcontext import RowEstimatorContext
    row_public = {k for k, v in vars(RowEstimatorContext).items() if callable(v) and not k.startswith("_")}
    assert row_public <= public, sorted(row_public - public)
    assert {"learning_signal", "state", "log_prob_vjp", "call"} <= row_public


def test_no_grad_is_a_marker_not_a_string():
    """NO_GRAD is one object compared with `is` (not a str); a statement holds it as its name and
    only the printer writes the step's empty 2D buffer in its place, which every kernel skips."""
    import copy
    import pickle
    from ppl.lowering import ir
    from ppl.estimators import NO_GRAD_1D
    assert not isinstance(ppl.NO_GRAD, str) and repr(ppl.NO_GRAD) == "NO_GRAD" and ppl.NO_GRAD != "empty2"
    assert copy.deepcopy(ppl.NO_GRAD) is ppl.NO_GRAD and pickle.loads(pickle.dumps(ppl.NO_GRAD)) is ppl.NO_GRAD
    st = ir.Stmt(f"core.f(g_x, {ppl.NO_GRAD}, {NO_GRAD_1D})")
    assert "NO_GRAD" in [n for n, _, _ in st.names]
    assert ir.inline(st, ir.SPELLING) == "core.f(g_x, empty2, empty1)"
    with Model("no_grad") as m:   # the printed step names the empty buffer, never the marker
        x = m.input("x", 2)
        z = Bernoulli("z", logits=Affine(x, 2, name="enc"))
        m.cost("f", ppl.bernoulli_nll(Affine(z, 2, name="dec"), target=x))
    src = m.compile(estimators={"z": "score"}).source
    assert "empty2" in src and "NO_GRAD" not in src


def test_the_compiler_is_its_named_passes():
    """compile_model runs compiler.PASSES in the documented order, each once (Program.compile_times)."""
    names = [n for n, _ in C.PASSES]
    assert names == ["analyse", "select", "fuse", "plan rows", "requires grad", "lower forward",
                     "lower backward", "narrow cells", "check target", "render"]
    with Model("passes") as m:
        x = m.input("x", 2)
        z = Bernoulli("z", logits=Affine(x, 2, name="enc"))
        m.cost("f", ppl.bernoulli_nll(Affine(z, 2, name="dec"), target=x))
    prog = m.compile()
    assert list(prog.compile_times) == names and all(t >= 0 for t in prog.compile_times.values())


def test_estimator_parameters_carry_their_declared_prefixes():
    """The parameters an estimator declares are named with its own `param_prefixes` (the registry
    derives estimator_params from them): Program.model_param_names leaves exactly those out."""
    from ppl.estimators import REGISTRY, estimator_params
    assert estimator_params() == tuple(sorted({p for e in REGISTRY.values() for p in e.param_prefixes}))
    seen = set()
    for kind in ("bernoulli", "normal", "categorical"):
        model = _graph(kind)
        base = set(model.compile(estimators=("score", {"baseline": "none"})).params)
        for name, est in REGISTRY.items():
            for spec in ((name, {"baseline": "learned"}),) if name == "score" else (name,):
                try:
                    prog = model.compile(estimators=spec, samples=2, objective="iwae" if "iwae" in est.objectives
                                         and "elbo" not in est.objectives else "elbo")
                except ModelError:
                    continue
                own = set(prog.params) - base
                assert all(k.startswith(est.param_prefixes) for k in own), (name, kind, sorted(own))
                assert set(prog.model_param_names()) == base, (name, kind)
                seen |= {name for k in own}
    assert seen >= {"score", "relax", "rebar", "double_cv", "lax"}, seen
