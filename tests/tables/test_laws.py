"""Every law is a node, a prior and a likelihood.

Each law of ppl/laws/ gives a DSL constructor (ppl.<Law>) and a spec (ppl.dist.<Law>). A spec
whose law has no -log p head of its own is lowered from the law's log_prob kernels with the
sign changed (ops "law_nll"). Oracles: scipy.stats log-densities (closed forms) for the cost
values, central differences of the loss in float64 for the gradients (these heads are
deterministic given the data: no sampling, so the check is exact up to rounding). Every law
and estimator pair either lowers or is refused with an error that names the node and the
estimators that apply.
"""
import numpy as np
import pytest
from scipy import stats as sps

import ppl
from ppl import Model
from ppl.compiler.pipeline import generate_source
from ppl.distributions import DISTRIBUTIONS
from ppl.estimators import REGISTRY

LAWS = sorted(e.constructor for e in DISTRIBUTIONS.values() if e.constructor)
Y_REAL = np.array([[0.3, -1.2, 2.0], [1.5, 0.1, -0.4]])
Y_COUNT = np.array([[0.0, 3.0, 1.0], [7.0, 2.0, 0.0]])
Y_UNIT = np.array([[0.3, 0.05, 0.9], [0.6, 0.99, 0.2]])


def test_every_law_has_a_node_and_a_spec_constructor():
    for name in LAWS:
        assert callable(getattr(ppl, name)) and callable(getattr(ppl.dist, name)), name
        assert name in ppl.__all__
        assert getattr(ppl, name).__doc__ and getattr(ppl.dist, name).__doc__


def _likelihood_model(law, **params):
    with Model(f"lik_{law.lower()}") as m:
        y = m.input("y", 3)
        a = ppl.param("a", 3, init=np.array([0.2, -0.3, 0.5]))
        b = ppl.param("b", 3, init=np.array([0.1, 0.4, -0.2]))
        args = {k: (a if v == "a" else ppl.softplus(b) if v == "b+" else ppl.exp(a) if v == "a+"
                    else ppl.sigmoid(a) if v == "a01" else v) for k, v in params.items()}
        m.observe("y", getattr(ppl.dist, law)(**args), y)
    return m


CASES = [
    ("Laplace", dict(loc="a", scale="b+"), Y_REAL,
     lambda P, y: -sps.laplace.logpdf(y, P["a"], np.logaddexp(0, P["b"])).sum()),
    ("Normal", dict(loc="a", scale="b+"), Y_REAL,
     lambda P, y: -sps.norm.logpdf(y, P["a"], np.logaddexp(0, P["b"])).sum()),
    ("Poisson", dict(rate="a+"), Y_COUNT,
     lambda P, y: -sps.poisson.logpmf(y, np.exp(P["a"])).sum()),
    ("Beta", dict(concentration1="a+", concentration0="b+"), Y_UNIT,
     lambda P, y: -sps.beta.logpdf(y, np.exp(P["a"]), np.logaddexp(0, P["b"])).sum()),
    ("Bernoulli", dict(logits="a", link="probit"), (Y_REAL > 0).astype(float),
     lambda P, y: -(y * sps.norm.logcdf(P["a"]) + (1 - y) * sps.norm.logcdf(-P["a"])).sum()),
    ("Bernoulli", dict(probs="a01"), (Y_REAL > 0).astype(float),
     lambda P, y: -sps.bernoulli.logpmf(y, 1 / (1 + np.exp(-P["a"]))).sum()),
    ("Categorical", dict(probs="a+", classes=3), np.eye(3)[[0, 2]],
     lambda P, y: -sps.multinomial.logpmf(y, 1, np.exp(P["a"]) / np.exp(P["a"]).sum()).sum()),
    ("Binomial", dict(total_count=7.0, probs="a01"), Y_COUNT,
     lambda P, y: -sps.binom.logpmf(y, 7, 1 / (1 + np.exp(-P["a"]))).sum()),
    ("Geometric", dict(logits="a"), Y_COUNT,
     lambda P, y: -sps.geom.logpmf(y + 1, 1 / (1 + np.exp(-P["a"]))).sum()),
]
IDS = [c[0] + ("_probit" if "link" in c[1] else "_probs" if c[1].get("probs") in ("a01", "a+") else "") for c in CASES]


@pytest.mark.parametrize("law,params,y,oracle", CASES, ids=IDS)
def test_a_law_as_likelihood_matches_scipy_and_central_differences(law, params, y, oracle):
    prog = _likelihood_model(law, **params).compile(dtype=np.float64)
    P = {k: np.array(v, np.float64) for k, v in prog.params.items()}
    loss, grads = prog.grad({"y": y}, seed=0)
    # the loss is the mean over data rows of the summed cost
    assert np.isclose(loss, oracle(P, y) / len(y), rtol=1e-10), (loss, oracle(P, y) / len(y))
    for k in ("a", "b"):
        if k not in grads:
            continue
        num = np.zeros(3)
        for j in range(3):
            for s in (1, -1):
                Q = {kk: vv.copy() for kk, vv in P.items()}
                Q[k][j] += s * 1e-6
                num[j] += s * oracle(Q, y) / len(y) / 2e-6
        np.testing.assert_allclose(grads[k], num, rtol=1e-6, atol=1e-8)


def test_the_generic_head_is_the_one_law_nll_op_and_its_check_raises_in_the_step():
    prog = _likelihood_model("Laplace", loc="a", scale="a").compile(dtype=np.float64)
    assert "negate1" in prog.source and "laplace_log_prob" in prog.source
    with pytest.raises(ppl.ModelError, match=r"Laplace .*scale 'a' has values <= 0 or NaN"):
        prog.loss({"y": Y_REAL}, seed=0)   # a = (0.2, -0.3, 0.5): a non-positive scale


def test_laplace_and_poisson_priors():
    """Latents with priors of their own law (and a Laplace prior on a Normal node: the same support)."""
    with Model("priors") as m:
        x = m.input("x", 2)
        z = ppl.Normal("z", ppl.Affine(x, 3, name="loc"), ppl.softplus(ppl.Affine(x, 3, name="sc")))
        m.latent(z, ppl.dist.Laplace(0.0, 1.0))
        k = ppl.Poisson("k", ppl.exp(ppl.Affine(x, 2, name="rate")))
        m.latent(k, ppl.dist.Poisson(rate=2.0))
        m.observe("x", ppl.dist.Normal(ppl.Affine(z, 2, name="dec"), 1.0), x)
    prog = m.compile(dtype=np.float64)
    data = {"x": np.array([[0.5, -1.0]])}
    s = prog.sample(data, seed=3)
    loss = prog.loss(data, seed=3)
    z, k = s["z"][0], s["k"][0]
    P = {kk: np.asarray(v, np.float64) for kk, v in prog.params.items()}
    xv = data["x"][0]
    loc = xv @ P["loc.W"] + P["loc.b"]
    sc = np.logaddexp(0, xv @ P["sc.W"] + P["sc.b"])
    rate = np.exp(xv @ P["rate.W"] + P["rate.b"])
    dec = z @ P["dec.W"] + P["dec.b"]
    want = (sps.norm.logpdf(z, loc, sc).sum() - sps.laplace.logpdf(z).sum()
            + sps.poisson.logpmf(k, rate).sum() - sps.poisson.logpmf(k, 2.0).sum()
            - sps.norm.logpdf(xv, dec, 1.0).sum())
    assert np.isclose(loss, want, rtol=1e-9), (loss, want)
    prior = prog.sample_prior(5, seed=1)
    assert prior["k"].shape == (5, 2) and np.all(prior["k"] == np.floor(prior["k"])) and np.all(prior["k"] >= 0)


def test_a_prior_of_another_support_is_refused_by_name():
    with Model("wrong_support") as m:
        x = m.input("x", 2)
        k = ppl.Poisson("k", ppl.exp(ppl.Affine(x, 2, name="rate")))
        with pytest.raises(ppl.ModelError, match=r"does not describe the values of poisson node 'k'.*ppl\.dist\.Poisson"):
            m.latent(k, ppl.dist.Bernoulli(logits=0.0))


def _reach(law):
    """(the entry whose constructor makes a node of kind `law`, the keywords that choose it): a
    variant is reached by a keyword's value (link=) or by which parameter is given (probs=)."""
    e = DISTRIBUTIONS[law]
    if e.constructor:
        return e, {}
    for o in DISTRIBUTIONS.values():
        for key, choices in o.variants.items():
            if law in choices.values():
                return o, {key: next(v for v, k in choices.items() if k == law)}
        if law in o.by_param.values():
            return o, {}
    raise AssertionError(f"no constructor reaches {law}")


def _argument(e, p, a):
    """A node (or number) within the domain of parameter p of the entry e."""
    kind = e.constraints.get(p)
    if p in e.positive or kind == "weights":
        return ppl.exp(a)
    if kind in ("unit", "unit_positive"):
        return ppl.sigmoid(a)
    return 3 if kind == "count" else a


def _node(law, x):
    e = DISTRIBUTIONS[law]
    owner, kw = _reach(law)
    a = ppl.Affine(x, 4, name="a")
    kw.update({p: _argument(e, p, a) for p in e.params})
    return getattr(ppl, owner.constructor)("h", classes=2, **kw) if e.grouped else \
        getattr(ppl, owner.constructor)("h", **kw)


@pytest.mark.parametrize("law", sorted(DISTRIBUTIONS))
def test_every_law_and_estimator_pair_lowers_or_is_refused_by_name(law):
    """Each law as a latent with a prior of its own support under each estimator: the step's source
    is generated, or compile names the node and the estimators that apply (never a bare error)."""
    lowered = 0
    # ppl's own estimators: a user's, registered by another test module of the same process, is
    # held to its own check (tests/estimators/test_user_estimator.py, tests/lowering/...)
    built_in = sorted(n for n, e in REGISTRY.items() if type(e).__module__.startswith("ppl.estimators."))
    for est in built_in:
        with Model(f"walk_{law}") as m:
            x = m.input("x", 3)
            h = _node(law, x)
            e = DISTRIBUTIONS[law]
            owner, kw = _reach(law)
            kw.update({p: 1.0 for p in e.params})   # 1.0 is within every law's domain
            spec = getattr(ppl.dist, owner.constructor)(classes=2, **kw) if e.grouped else \
                getattr(ppl.dist, owner.constructor)(**kw)
            m.latent(h, spec)
            m.observe("x", ppl.dist.Normal(ppl.Affine(h, 3, name="dec"), 1.0), x)
        objective = "iwae" if est in ("vimco", "dreg") else "elbo"
        try:
            generate_source(m, estimators={"h": est}, samples=2 if objective == "iwae" else 1, objective=objective)
            lowered += 1
        except ppl.ModelError as e:
            msg = str(e)
            assert "'h'" in msg and ("use " in msg or "choose" in msg), (law, est, msg)
    assert lowered >= 1, law
