"""The golden step sources: every bundled model under every estimator that applies to all its
stochastic nodes (and each policy's automatic choice), rendered by the compiler's passes without
loading them. A refactoring of the compiler keeps every one the same up to names
(tests/lowering/test_golden.py); `python tests/golden.py --write` records them anew after a deliberate change.

"Up to names" (`canonical`): the import header and the kernels-version line are dropped, a kernel
call keeps its function name but not its module alias (`R_.fill2(` and `rows.fill2(` read alike),
and every other identifier (buffers, views, locals) is numbered by first appearance. Calls,
arguments, their order, constants, strings and the lines' structure must all be equal.
"""
from __future__ import annotations

import builtins
import gzip
import io
import json
import keyword
import os
import re
import sys
import tokenize
from pathlib import Path

if __name__ == "__main__":   # the CUDA target's sources are rendered in the simulator too
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

import numpy as np

import ppl
from ppl.calls import MODULES
from ppl.compiler.options import CompileOptions
from ppl.compiler.pipeline import Compilation, run_passes
from ppl.lowering.ir import flatten
from ppl.estimators import REGISTRY
from ppl.models import get

GOLDEN = Path(__file__).parent / "golden" / "steps.json.gz"
# ppl's own estimators, those on the public protocol too (mvd, arms); a user's, registered by
# another test module of the same process, is not a case
BUILT_IN = sorted(name for name, est in REGISTRY.items() if type(est).__module__.startswith("ppl.estimators."))

# (case name, model module, build options, compile options shared by the case's estimators)
MODELS = [
    ("sbn", "sbn", {}, {}),
    ("sbn2_nl", "sbn", {"latent": (32, 32), "nonlinear": True}, {}),
    ("sbn_k2", "sbn", {}, {"samples": 2}),
    ("sbn_iwae", "sbn", {}, {"samples": 3, "objective": "iwae"}),
    ("gaussian_vae", "gaussian_vae", {}, {}),
    ("gaussian_vae_iwae", "gaussian_vae", {"kl": "sampled"}, {"samples": 3, "objective": "iwae"}),
    ("categorical_vae", "categorical_vae", {"groups": 2, "classes": 3, "hidden": 8, "pixels": 8}, {}),
    ("toy_bernoulli", "toy_bernoulli", {}, {}),
    ("toy_bernoulli_f64", "toy_bernoulli", {}, {"dtype": np.float64}),
    ("prob_regression", "prob_regression", {}, {"dtype": np.float64}),
    ("stochastic_classifier", "stochastic_classifier", {"layers": (16, 8)}, {}),
    ("stochastic_classifier_probit", "stochastic_classifier", {"layers": (8,), "link": "probit"}, {}),
    ("nce_embeddings", "nce_embeddings", {}, {}),
    ("gbrbm", "gbrbm", {}, {"dtype": np.float64}),
    ("sbn_tiny", "sbn", {"latent": (3,), "hidden": 4, "pixels": 8}, {"dtype": np.float64}),
    ("laplace", "laplace", {}, {"dtype": np.float64}),
    ("mixed_laws", "mixed_laws", {}, {"samples": 2}),
    ("blackbox", "blackbox", {}, {}),
    ("blackbox_row", "blackbox_row", {}, {"dtype": np.float64}),
    ("blackbox_row_grad", "blackbox_row_grad", {}, {}),
    ("new_laws", "new_laws", {}, {"dtype": np.float64}),
    ("plates", "plates", {}, {"dtype": np.float64}),
    ("poisson_factor", "poisson_factor", {"words": 6, "factors": 2, "hidden": 4}, {}),
    ("price", "price", {}, {"dtype": np.float64}),
    ("count_laws", "count_laws", {}, {"dtype": np.float64}),
    ("scan", "scan", {}, {"dtype": np.float64}),
]
CUDA = [("sbn", "disarm"), ("sbn2_nl", "rebar"), ("gaussian_vae", "pathwise"), ("categorical_vae", "score"),
        ("scan", "auto")]   # the scan: its loop blocks as one kernel each where they may be (rows.stepped)
# (case, model, overrides) where the nodes of one graph take different estimators
MIXED = [
    ("sbn2_nl", {"h1": "rebar", "h2": "disarm"}), ("sbn2_nl", {"h1": "disarm", "h2": "rebar"}),
    ("sbn2_nl", {"h1": "straight_through", "h2": "score"}), ("sbn2_nl", {"h1": ("rebar", {"train": False}), "h2": ("rebar", {"train": True})}),
    ("sbn2_nl", {"h1": "relax_blackbox", "h2": "concrete"}), ("sbn2_nl", {"h1": "relax", "h2": "disarm"}),
    ("sbn_tiny", {"h1": "enumerate"}),
    ("laplace", {"z": "score"}), ("mixed_laws", {"b": "disarm", "z": "pathwise", "k": "score", "c": "unordered_set"}),
    ("mixed_laws", {"b": "disarm", "z": "lax", "k": "score", "c": "rebar"}),
    ("mixed_laws", {"b": "reinmax", "z": "score", "k": "score", "c": "gumbel_rao"}),
    ("mixed_laws", {"b": "double_cv", "z": "pathwise", "k": "score", "c": "cat_disarm"}),
    ("mixed_laws", {"b": "mvd", "z": "mvd", "k": "mvd", "c": "mvd"}),
    ("mixed_laws", {"b": "rodeo", "z": "pathwise", "k": "score", "c": "unordered_set"}),
    ("sbn2_nl", {"h1": "arms", "h2": ("arms", {"n": 2})}), ("sbn2_nl", {"h1": "disarm", "h2": "mvd"}),
    ("new_laws", {"g": "score", "b": "pathwise", "d": "score"}),
    ("count_laws", {"b": "mvd", "c": "enumerate", "n": "score", "g": "mvd"}),
    ("count_laws", {"b": "enumerate", "c": "straight_through", "n": "mvd", "g": "score"}),
    ("scan", {"z": "pathwise", "b": "disarm"}), ("scan", {"z": "pathwise", "b": "stochastic_derivative"}),
]


def _sq(row):   # the black box of the "blackbox" case: a row's sum of squares
    s = 0.0
    for v in row:
        s += v * v
    return s


def _sq_grad(row, g):
    for j in range(row.shape[0]):
        g[j] = 2.0 * row[j]


def _sq_at(row, x):   # the black box of the "blackbox_row" case: a row's sum of squares, plus x
    s = x[0]
    for v in row:
        s += v * v
    return s


def _double(row, out):   # the user layer of the "blackbox" case: out = 2 row
    for j in range(row.shape[0]):
        out[j] = 2.0 * row[j]


def _double_vjp(row, out, gout, g):
    for j in range(row.shape[0]):
        g[j] = 2.0 * gout[j]


def _graph(name):
    """The golden graphs that are not bundled models: every law, and user functions."""
    from numba import njit

    from ppl import Affine, Bernoulli, Categorical, Laplace, Model, Normal, Poisson
    with Model(name) as m:
        x = m.input("x", 1 if name.startswith("blackbox_row") else 4)
        if name == "laplace":
            z = Laplace("z", Affine(x, 3, name="loc"), ppl.softplus(Affine(x, 3, name="sc")))
            m.cost("sq", ppl.total(z * z + 3.0 * z))
            m.cost("lp", ppl.log_prob(z))
        elif name == "mixed_laws":
            b = Bernoulli("b", logits=Affine(x, 3, name="eb"))
            z = Normal("z", Affine(b, 2, name="loc"), ppl.softplus(Affine(b, 2, name="sc")))
            k = Poisson("k", ppl.softplus(Affine(ppl.concat([b, z]), 2, name="rate")))
            c = Categorical("c", logits=Affine(x, 3, name="ec"), classes=3)
            m.cost("sq", ppl.total(0.1 * (k * k) + z * z))
            m.cost("nll", ppl.bernoulli_nll(Affine(ppl.concat([c, b[:, :2]]), 4, name="dec"), x))
            m.cost("lp", ppl.log_prob(c))
        elif name == "new_laws":   # Gamma, Beta, Dirichlet nodes, priors (an analytic KL) and likelihoods
            g = ppl.Gamma("g", ppl.softplus(Affine(x, 2, name="ga")) + 0.5, 2.0)
            m.latent(g, ppl.dist.Gamma(1.5, 1.0), kl="analytic")
            b = ppl.Beta("b", ppl.softplus(Affine(x, 2, name="ba")) + 0.5, ppl.exp(Affine(x, 2, name="bb")))
            m.latent(b, ppl.dist.Beta(2.0, 2.0))
            d = ppl.Dirichlet("d", ppl.softplus(Affine(x, 4, name="da")) + 0.5, classes=2)
            m.latent(d, ppl.dist.Dirichlet(1.0, classes=2))
            h = ppl.concat([ppl.log(g + 1.0), b, d])
            m.observe("x", ppl.dist.Poisson(ppl.softplus(Affine(h, 4, name="dec"))), x)
        elif name == "plates":   # a global Normal and a global Bernoulli over a plate of rows
            w = Normal("w", ppl.param("wl", 4), ppl.softplus(ppl.param("ws", 4)))
            m.latent(w, ppl.dist.Normal(0.0, 1.0))
            s = Bernoulli("s", logits=ppl.param("sl", 1))
            m.latent(s, ppl.dist.Bernoulli(logits=0.0))
            with m.plate("data", size=100):
                m.observe("y", ppl.dist.Laplace(ppl.rowsum(x * w) + s, 1.0), ppl.rowsum(x))
        elif name == "price":   # a Normal node whose costs are elementwise in it: Price's exact Hessian
            z = Normal("z", Affine(x, 3, name="loc"), ppl.softplus(Affine(x, 3, name="sc")))
            h = ppl.tanh(z) * z + 0.5 * z
            m.cost("sq", ppl.total(h))
            m.cost("bn", ppl.bernoulli_nll(h, x[:, :3]))
            m.cost("nll", ppl.gaussian_nll(z, ppl.softplus(ppl.param("s", 3)), x[:, 1:]))
            m.cost("lp", ppl.log_prob(z))
        elif name == "count_laws":   # Bernoulli and Categorical by probabilities, Binomial, Geometric: nodes,
            # priors and a likelihood
            b = Bernoulli("b", probs=ppl.sigmoid(Affine(x, 2, name="eb")))
            m.latent(b, ppl.dist.Bernoulli(probs=0.5))
            c = Categorical("c", probs=ppl.exp(Affine(x, 3, name="ec")), classes=3)
            m.latent(c, ppl.dist.Categorical(probs=1.0, classes=3))
            n = ppl.Binomial("n", 4, probs=ppl.sigmoid(Affine(ppl.concat([b, c]), 2, name="en")))
            m.latent(n, ppl.dist.Binomial(4, logits=0.0))
            g = ppl.Geometric("g", logits=Affine(b, 2, name="eg"))
            m.latent(g, ppl.dist.Geometric(probs=0.5))
            m.observe("x", ppl.dist.Binomial(3, probs=ppl.sigmoid(Affine(ppl.concat([n, g]), 4, name="dec"))), x)
        elif name == "scan":   # a loop block: a Normal and a Bernoulli carried, each step's x read, outputs after it
            a, c, w = ppl.param("a", 1, 0.8), ppl.param("c", 1, 0.5), ppl.param("w", 1, 1.2)

            def body(carry, xt):
                z, b = carry
                z = Normal("z", a * z + c * b + 0.1 * xt, 0.5)
                b = Bernoulli("b", logits=w * z)
                m.cost("c", ppl.total(0.5 * ((z - 1.0) * (z - 1.0))))
                return (z, b), b
            z0 = Affine(x, 1, name="z0")
            (zl, bl), bs = ppl.scan(body, (z0, 0.0 * z0), xs=x)
            m.cost("flags", ppl.total(0.3 * ppl.rowsum(bs)))
            m.cost("end", ppl.total(zl * bl))
        elif name == "blackbox":
            h = Bernoulli("h", logits=Affine(x, 3, name="enc"))
            u = ppl.layer(njit(_double), [Affine(h, 3, name="mid")], 3, vjp=njit(_double_vjp))
            m.cost("sim", ppl.blackbox(njit(_sq), [u], grad=njit(_sq_grad)))
        elif name == "blackbox_row":   # width 1, no gradients: row-fused under score, ARM, DisARM
            b = Bernoulli("b", logits=Affine(x, 1, name="enc"))
            u = ppl.layer(njit(_double), [b], 1)
            m.cost("sim", ppl.blackbox(njit(_sq_at), [u, x]))
            m.cost("lp", ppl.log_prob(b))
        elif name == "blackbox_row_grad":   # width 1 with the user's gradients: row-fused pathwise
            z = Normal("z", Affine(x, 1, name="loc"), ppl.softplus(Affine(x, 1, name="sc")))
            u = ppl.layer(njit(_double), [z], 1, vjp=njit(_double_vjp))
            m.cost("sim", ppl.blackbox(njit(_sq), [u], grad=njit(_sq_grad)))
    return m


GRAPHS = [("laplace", {}), ("mixed_laws", {}), ("blackbox", {}), ("blackbox_row", {}), ("blackbox_row_grad", {}),
          ("new_laws", {}), ("plates", {}), ("price", {}), ("count_laws", {}), ("scan", {})]


# the array kernels' modules: a statement of the array lowering that names `alias.kernel(` calls a kernel
_KERNEL_CALL = re.compile(r"(?<![\w.])(%s)\.\w+\(" % "|".join(a for a in MODULES if a not in ("rng", "scalar")))


def unrecorded_calls(statements) -> list:
    """The statements that call an array kernel by their text (anywhere in the line: `loss +=
    rows.weighted_total(...)` too) but hold no call record (calls.Call): what the CUDA target
    check and the row-fused lowering would not see."""
    return [str(st) for st in flatten(statements) if st.call is None and _KERNEL_CALL.search(str(st))]


def untyped_args(statements) -> list:
    """The arguments of call statements given as plain text (a `str`, not a record): every buffer,
    view, step argument, marker, constant and expression a call passes is a typed record
    (calls.Buf, View, StepArg, NoGrad, Const, Code, ...) or a number."""
    return [a for st in flatten(statements) if st.call is not None for a in st.call.args if type(a) is str]


def text_statements(statements) -> list:
    """The statements whose names the tokenizer read from their text, no record giving them (a
    kernel call's calls.Call, a check's ir.Raise, a line of calls.code, a row statement's RowLine):
    only a user's own lines may be text."""
    return [str(st) for st in flatten(statements) if not st.recorded]


def misread_names(statements) -> list:
    """The statements whose identifiers, taken from their record (calls.Call.names, ir.Raise:
    what the printer inlines views by), differ from those Python's tokenizer reads in their text
    (row code, whose names have no place, aside)."""
    from ppl.calls import text_names
    return [str(st) for st in flatten(statements)
            if not any(a < 0 for _, a, _ in st.names) and st.names != text_names(str(st))]


def generate_source(model, **options) -> str:
    """The step's source (compiler.generate_source), with every kernel call the array lowering
    emitted checked to be a record."""
    c = run_passes(Compilation(model, CompileOptions(**options)))
    text = text_statements(c.step.emitted)
    assert not text, f"{model.name}: statements written as text, not as records: {text[:3]}"
    if c.step.rows is None:   # the row-fused step's lines are row code
        bad = unrecorded_calls(c.step.emitted)
        assert not bad, f"{model.name}: kernel calls emitted as text, not as call records: {bad[:5]}"
        plain = untyped_args(c.step.emitted)
        assert not plain, f"{model.name}: call arguments given as text, not as typed records: {plain[:5]}"
        wrong = misread_names(c.step.emitted)
        assert not wrong, f"{model.name}: a call's names from its record differ from its text's: {wrong[:3]}"
    return c.source


def _model(mod, opts):
    if mod in dict(GRAPHS):
        return _graph(mod)
    return get(mod).build(**opts)


def cases():
    """Yield (case id, thunk -> source) for every golden case."""
    for case, mod, bopts, copts in MODELS:
        for policy in ("unbiased", "fast"):
            yield f"{case}/auto-{policy}", (lambda mod=mod, b=bopts, c=copts, p=policy:
                                            generate_source(_model(mod, b), policy=p, **c))
        if not any(n.is_stochastic for n in _model(mod, bopts).order):
            continue
        for est in BUILT_IN:
            yield f"{case}/{est}", (lambda mod=mod, b=bopts, c=copts, e=est:
                                    generate_source(_model(mod, b), estimators=e, **c))
    for case, over in MIXED:
        mod, bopts, copts = next((m, b, c) for n, m, b, c in MODELS if n == case)
        tag = ",".join(f"{k}={v if isinstance(v, str) else v[0] + str(sorted(v[1].items()))}" for k, v in over.items())
        yield f"{case}/{tag}", (lambda mod=mod, b=bopts, c=copts, o=over:
                                generate_source(_model(mod, b), estimators=o, **c))
    for case, est in CUDA:
        mod, bopts, copts = next((m, b, c) for n, m, b, c in MODELS if n == case)
        yield f"{case}/{est}/cuda", (lambda mod=mod, b=bopts, c=copts, e=est:
                                     generate_source(_model(mod, b), estimators=e, target="cuda", **c))


def render_all() -> dict:
    """case id -> generated source, or "refused: <error>" where the estimator does not apply."""
    out = {}
    for cid, thunk in cases():
        try:
            out[cid] = thunk()
        except ppl.ModelError as e:
            out[cid] = f"refused: {str(e).splitlines()[0][:200]}"
    return out


_KEEP = set(keyword.kwlist) | set(dir(builtins)) | {"np", "njit", "step", "step_rows"}


def canonical(source: str) -> str:
    """The source up to names (see the module's docstring)."""
    if source.startswith("refused: "):
        return source
    lines = [ln for ln in source.splitlines()
             if not ln.startswith(("from ", "import ", "# kernels version"))]
    toks = list(tokenize.generate_tokens(io.StringIO("\n".join(lines) + "\n").readline))
    names: dict = {}
    out = []
    for i, t in enumerate(toks):
        s = t.string
        if t.type == tokenize.NAME:
            prev = toks[i - 1].string if i else ""
            nxt = toks[i + 1].string if i + 1 < len(toks) else ""
            if nxt == "." and i + 3 < len(toks) and toks[i + 3].string == "(" and prev != ".":
                out.append("<m>")   # a module alias before a kernel call
                continue
            if prev != "." and s not in _KEEP and not (nxt == "(" and prev == "."):
                s = names.setdefault(s, f"n{len(names)}")
        if t.type == tokenize.NL:
            continue   # a line broken inside brackets (a longer name wraps an unpacking) is one line
        if t.type == tokenize.NEWLINE:
            s = "\n"
        elif t.type == tokenize.INDENT:
            s = "<in>"
        elif t.type == tokenize.DEDENT:
            s = "<de>"
        elif t.type == tokenize.COMMENT:
            continue
        out.append(s)
    return " ".join(out)


def load() -> dict:
    with gzip.open(GOLDEN, "rt") as f:
        return json.load(f)


def write():
    GOLDEN.parent.mkdir(exist_ok=True)
    data = render_all()
    with gzip.open(GOLDEN, "wt", compresslevel=9) as f:
        json.dump(data, f, indent=0, sort_keys=True)
    n_ok = sum(not v.startswith("refused: ") for v in data.values())
    print(f"wrote {GOLDEN.name}: {len(data)} cases, {n_ok} sources")


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        write()
    else:
        sys.exit("usage: python tests/golden.py --write")
