"""A model declared as a generative model p and a guide q; the ELBO's terms derived from it.

    with ppl.Model("sbn") as m:
        x = m.input("x", 64)
        h = ppl.Bernoulli("h", logits=ppl.Affine(x, 32, name="enc"))              # the guide: q(h | x)
        m.latent(h, ppl.dist.Bernoulli(logits=ppl.param("prior", 32)))            # p(h)
        m.observe("recon", ppl.dist.Bernoulli(logits=ppl.Affine(h, 64, name="dec")), x)   # p(x | h)

The guide's stochastic nodes are q. `m.latent(h, prior)` adds the costs +log q(h) (`logq_h`,
ppl.log_prob) and -log p(h) (`logp_h`, the prior's likelihood head at h), or the closed-form
KL(q || p) (`kl_h`) with kl="analytic"; `m.observe(name, spec, value)` adds -log p(value) (`name`).
Their sum is -log p(x, h) + log q(h | x): the step's loss is -ELBO. A model with declarations
must declare a prior for every stochastic node (graph validation says which one lacks it).

From the same declaration (Program.sample_prior / predict / evaluate):
- generative(model, nodes): the graph that draws the requested nodes ancestrally, every latent
  from its prior and every observed input from its likelihood, the other inputs (covariates)
  kept as inputs, only what the requested nodes depend on (the latents it is given as inputs);
- guide(model, latents): the guide's graph that draws the latents from q, the posterior
  predictive's first stage (its draws are generative's given latents);
- evaluation(model): the model with every closed-form KL replaced by the per-draw terms, whose
  per-row cost totals are -log w = -log p(x, h) + log q(h | x) of hard draws.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .dist import Dist, constructor_for, describes
from .nodes import Graph, Node, _const, _head, _make, _size, gaussian_kl, log_prob
from ..errors import ModelError


@dataclass(eq=False)
class Latent:
    node: Node          # the guide's stochastic node (an automatic guide's: the latent's value f(u))
    prior: Dist         # p(node | its parents), bound to the node's width
    kl: str             # "sampled", "analytic" or "summed" (guide="enumerate": language/markov.py)
    auto: tuple = ()    # an automatic guide's (unconstrained node u, "normal" | "delta"): declare_auto


@dataclass(eq=False)
class Observed:
    name: str           # the cost's name
    spec: Dist          # p(value | its parents), bound to the value's width
    value: Node


def _kl_head(q: Node, prior: Dist):
    """The closed-form KL(q || prior) head, or None where ppl has none: Normal || Normal, and a law
    whose entry has kl kernels against a prior of the same law (Gamma, Beta, Dirichlet,
    Exponential, HalfNormal, HalfCauchy, LogNormal)."""
    if q.kind == prior.kind and "kl" in prior.entry.kernels:
        attrs = {"K": prior.K} if prior.K is not None else {}
        return _head("law_kl", (*q.inputs, *prior.args), law=q.kind, **attrs)
    if q.kind != "normal" or prior.kind != "normal":
        return None
    loc, scale = prior.args
    if loc.kind == "const" and scale.kind == "const" and loc.attrs["value"] == 0.0 and scale.attrs["value"] == 1.0:
        return gaussian_kl(*q.inputs)
    return gaussian_kl(*q.inputs, loc, scale)


def declare_latent(m: Graph, h, prior, kl: str = "sampled") -> None:
    """m.latent: checks, then the derived costs of h (see the module docstring)."""
    owner = f"m.latent({getattr(h, 'name', h)!r}, ...)"
    if not isinstance(h, Node):
        raise ModelError(f"{owner}: the first argument must be a stochastic node of the guide (e.g. "
                         f"h = ppl.Bernoulli('h', logits=...)), got {type(h).__name__}")
    if h.model is not m:
        raise ModelError(f"{owner}: '{h.name}' belongs to model '{h.model.name}', not '{m.name}'")
    if not h.is_stochastic:
        raise ModelError(f"{owner}: '{h.name}' is a {h.kind} node, not a stochastic unit; a latent is a node the "
                         f"guide draws, e.g. h = ppl.Bernoulli('h', logits=...), then m.latent(h, prior)")
    if not isinstance(prior, Dist):
        raise ModelError(f"{owner}: the prior must be a distribution spec such as ppl.dist.Bernoulli(logits=...) "
                         f"or ppl.dist.Normal(0.0, 1.0), got {type(prior).__name__}")
    if kl not in ("sampled", "analytic"):
        raise ModelError(f"{owner}: kl must be 'sampled' (log q(h) - log p(h) of each draw) or 'analytic' (the "
                         f"closed-form KL), got {kl!r}")
    if h.name in m.latents:
        raise ModelError(f"{owner}: '{h.name}' already has a prior; declare each latent once")
    if not describes(prior, h.kind):
        raise ModelError(f"{owner}: a {prior.entry.name} prior does not describe the values of {h.kind} node "
                         f"'{h.name}'; give a prior of the same support (e.g. ppl.dist."
                         f"{prior_name_for(h.kind)}(...))")
    if prior.K is not None and prior.K != h.attrs.get("K"):
        raise ModelError(f"{owner}: the prior has classes={prior.K} but '{h.name}' has classes={h.attrs.get('K')}")
    prior = prior.bind(m, h.width, owner)
    lat = Latent(h, prior, kl)
    if kl == "analytic":
        head = _kl_head(h, prior)
        if head is None:
            raise ModelError(f"{owner}: no closed-form KL between {h.kind} '{h.name}' and a {prior.entry.name} "
                             f"prior (ppl has Normal, Gamma, Beta, Dirichlet, Exponential, HalfNormal, HalfCauchy and "
                             f"LogNormal against a prior of the same law); use kl='sampled'")
        _term(m, f"kl_{h.name}", head, "+", f"KL(q({h.name}) || p({h.name})), p = {prior.describe()}")
    else:
        _latent_terms(m, lat)
    m.latents[h.name] = lat


# the automatic guide's transform per prior support: z = f(u) of an unconstrained Normal u, and the
# cost -log |dz/du| summed over the units (exp: -u; sigmoid: softplus(u) + softplus(-u); identity: none)
AUTO_SUPPORTS = ("real", "positive", "unit", "simplex")


def declare_auto(m: Graph, name, prior, width, guide: str) -> Node:
    """m.latent(name, prior, width=...): the latent's guide made for it (an automatic guide, as
    Pyro's AutoNormal / AutoDelta), then its terms; returns the latent's node `name`.
    guide="normal": u ~ Normal(name_loc, softplus(name_scale)) in the unconstrained space, z =
    f(u) with f the prior's support's transform (identity, exp, sigmoid; on the simplex of K classes
    the softmax of (u, 0), u of width K - 1: one group), and log q(z) = log q(u)
    - log |f'(u)| (the cost logdet_<name> holds -log |f'(u)|); guide="delta": z = f(name_loc), a
    point (MAP: only -log p(z) is a term)."""
    from .groups import Embed
    from .nodes import LAW_NODES, OP_NODES, param, total
    owner = f"m.latent({name!r}, ...)"
    if not isinstance(prior, Dist):
        raise ModelError(f"{owner}: the prior must be a distribution spec such as ppl.dist.Gamma(2.0, 1.0), got "
                         f"{type(prior).__name__}")
    if guide not in ("normal", "delta", "enumerate"):
        raise ModelError(f"{owner}: guide must be 'normal' (a mean-field Normal in the unconstrained space), 'delta' "
                         f"(a point: MAP) or 'enumerate' (a finite support summed out exactly), got {guide!r}")
    if guide == "enumerate":   # a finite support summed out (language/markov.py)
        from .markov import declare_summed
        z, prior = declare_summed(m, name, prior, width, owner)
        m.latents[name] = Latent(z, prior, "summed")
        return z
    if prior.entry.support not in AUTO_SUPPORTS:
        raise ModelError(f"{owner}: an automatic guide covers priors on the reals, the positive reals, (0, 1) and "
                         f"the simplex; a "
                         f"{prior.entry.name} prior ({prior.entry.support} values) needs its guide written: "
                         f"h = ppl.{prior_name_for(prior.kind)}('{name}', ...), then m.latent(h, prior)")
    group = getattr(m, "groups", {}).get(getattr(m, "plate_open", None))   # a plate of groups: a table row per group
    if getattr(m, "plate_open", None) is not None and group is None:
        raise ModelError(f"{owner}: an automatic guide is global or per group (its parameters a table of a plate of "
                         f"groups); a per-row latent inside the data plate {m.plate_open!r} needs a guide of each row "
                         f"(amortised: e.g. ppl.Normal('{name}', ppl.Affine(x, ...), ...)): write it and declare "
                         f"m.latent(node, prior); or give each row its own group (m.plate('rows', size=N, "
                         f"index=row_id)) for a table of a row each")
    if not isinstance(name, str) or name in m.latents or name in m.nodes:
        raise ModelError(f"{owner}: model '{m.name}' has a node {name!r} already; name the latent anew")
    support = prior.entry.support
    if support == "simplex":   # one group of K classes: u has K - 1 columns
        if width is not None and width != prior.K:
            raise ModelError(f"{owner}: an automatic guide on the simplex is one group of classes={prior.K}; got "
                             f"width={width} (declare one latent per group)")
        width, free = prior.K, prior.K - 1
    else:
        width = free = _size(1 if width is None else width, f"{owner}: width")
    real = support == "real"   # on the reals u is the latent, named as it
    def table(pname, init=0.0):   # the guide's parameters: global, or a row per group (Embed)
        if group is None:
            return param(pname, free, init=init)
        return Embed(m.nodes[group.index], group.size, free, name=pname, init=init)
    if guide == "delta":
        u = table(name if real else f"{name}_loc")
    else:
        u = LAW_NODES["Normal"](name if real else f"{name}_unconstrained", table(f"{name}_loc"),
                                OP_NODES["softplus"](table(f"{name}_scale", init=-2.25)))
    z, logdet = _to_support(support, name, u, prior.K)
    prior = prior.bind(m, width, owner)
    lat = Latent(z, prior, "sampled", (u, guide))
    if guide == "normal":
        _term(m, f"logq_{name}", log_prob(u), "+", f"log q({name}_unconstrained): the automatic guide's Normal")
        if logdet is not None:
            _term(m, f"logdet_{name}", total(logdet()), "+", f"-log |d{name}/du|: the transform to the prior's support")
    _term(m, f"logp_{name}", prior.nll(z), "-", f"log p({name}) under {prior.describe()}")
    m.latents[name] = lat
    return z


def _to_support(support: str, name: str, u: Node, K):
    """(z = f(u) named `name`, a maker of -log |f'(u)| per row, or None for the identity): exp onto
    the positive reals, sigmoid onto (0, 1), the softmax of (u, 0) onto the simplex of K classes,
    whose log-Jacobian is sum_k log z_k = sum_k v_k - K log sum_k e^v_k, v = (u, 0)."""
    from .nodes import OP_NODES, concat, const, rowsum
    if support == "real":
        return u, None
    if support == "positive":
        return OP_NODES["exp"](u, name=name), lambda: -1.0 * u
    if support == "unit":
        return OP_NODES["sigmoid"](u, name=name), lambda: OP_NODES["softplus"](u) + OP_NODES["softplus"](-1.0 * u)
    v = concat([u, const(0.0, 1)])
    log_s = OP_NODES["log"](rowsum(OP_NODES["exp"](v)))
    z = OP_NODES["exp"](v - log_s, name=name)
    z.attrs["K"] = K
    return z, lambda: float(K) * log_s - rowsum(v)


def prior_name_for(kind: str) -> str:
    return constructor_for(kind)


def _latent_terms(m: Graph, lat: Latent) -> None:
    h = lat.node
    _term(m, f"logq_{h.name}", log_prob(h), "+", f"log q({h.name}): the guide's {h.kind} node")
    _term(m, f"logp_{h.name}", lat.prior.nll(h), "-", f"log p({h.name}) under {lat.prior.describe()}")


def declare_observed(m: Graph, name, spec, value) -> None:
    """m.observe: checks, then the cost `name` = -log p(value)."""
    owner = f"m.observe({name!r}, ...)"
    if not isinstance(spec, Dist):
        raise ModelError(f"{owner}: the second argument must be a distribution spec such as "
                         f"ppl.dist.Bernoulli(logits=...), got {type(spec).__name__}")
    if not isinstance(value, Node):
        raise ModelError(f"{owner}: the value must be a node (e.g. x = m.input('x', 64)), got {type(value).__name__}")
    if value.model is not m:
        raise ModelError(f"{owner}: '{value.name}' belongs to model '{value.model.name}', not '{m.name}'")
    if value.is_stochastic:
        raise ModelError(f"{owner}: '{value.name}' is a stochastic node drawn by the guide, not data; declare its "
                         f"prior with m.latent({value.name}, ...) instead")
    if value.attrs.get("is_head"):
        raise ModelError(f"{owner}: '{value.name}' is a cost head; observe a data node")
    if any(o.value is value for o in m.observed.values()):
        raise ModelError(f"{owner}: '{value.name}' is already observed; observe each value once")
    spec = spec.bind(m, value.width, owner)
    obs = Observed(name, spec, value)
    _term(m, name, spec.nll(value), "-", f"log p({value.name}) under {spec.describe()}")
    m.observed[name] = obs


def _term(m: Graph, name: str, head: Node, sign: str, what: str) -> None:
    m.cost(name, head)
    head.attrs["term"] = (sign, what)


def is_declared(model: Graph) -> bool:
    return bool(getattr(model, "latents", None) or getattr(model, "observed", None))


def check(model: Graph) -> None:
    """A declared model: every stochastic node has a prior (graph validation calls this)."""
    if not is_declared(model):
        return
    auto = {lat.auto[0].name for lat in model.latents.values() if lat.auto}
    for n in model.order:
        if n.is_stochastic and n.name not in model.latents and n.name not in auto:
            raise ModelError(f"{n.kind} node '{n.name}' is drawn by the guide but has no prior: declare "
                             f"m.latent({n.name}, ppl.dist.{prior_name_for(n.kind)}(...)), or build the model's "
                             f"costs by hand with m.cost")


def terms(model: Graph) -> list:
    """(cost name, sign in the -ELBO, what) of every derived cost; user costs as ('?', ...)."""
    out = []
    for c in model.costs:
        sign, what = c.attrs.get("term", ("?", f"m.cost: a {c.kind} head (not part of the declared model)"))
        out.append((c.attrs["cost_name"], sign, what))
    return out


# --------------------------------------------------------------------------- copies of the graph
def _clone(g: Graph, n: Node, inputs) -> Node:
    attrs = {k: v for k, v in n.attrs.items() if k not in ("is_cost", "cost_name", "term")}
    return _make(g, n.kind, n.name, inputs, n.width, **attrs)


def evaluation(model: Graph, given=(), drop=()) -> Graph:
    """The model itself when every term is a per-draw term; else a copy whose closed-form KL
    terms are replaced by log q(h) - log p(h) of the draw (what a log weight needs). given:
    latents that are data inputs instead (a plated model's global latents, drawn apart), their
    terms left out and the plate with them: the per-row terms given those draws (a model with
    plates of groups keeps its plates, sized 1: a group's terms are shared by its rows). drop:
    latents drawn from their guides whose terms are left out (the plates of groups' latents of a
    predictive density, drawn as the global ones are)."""
    analytic = [lat for lat in model.latents.values() if lat.kl == "analytic" and lat.node.name not in given]
    if not analytic and not given and not drop:
        return model
    terms_of = {f"{k}_{name}" for name in (*given, *drop) for k in ("kl", "logq", "logp", "logdet")}
    skip = {c for c in model.costs if c.attrs.get("cost_name") in {f"kl_{lat.node.name}" for lat in analytic}
            | terms_of}
    if given:   # only what the kept costs read (not the given latents' guides), and the dropped latents' priors
        need = set().union(*(_upstream(c, given) for c in model.costs if c not in skip),
                           *(_upstream(a, given) for k in drop for a in model.latents[k].prior.args if isinstance(a, Node)))
        skip |= {n for n in model.order if n not in need}
    g = type(model)(model.name + ("_given" if given else "_persample"))   # a ppl.Model for a ppl.Model
    g.plates = ({k: 1 for k in model.plates} if getattr(model, "groups", None) else {}) if given else _plates(model)
    g.config = getattr(model, "config", None)
    new = {}
    for n in model.order:
        if n.name in given:
            new[n.name] = _given(g, n, shared=True)
            continue
        if n in skip:
            continue
        new[n.name] = c = _clone(g, n, [new[i.name] for i in n.inputs])
        if n.is_cost:
            g.cost(n.attrs["cost_name"], c)
            if "term" in n.attrs:
                c.attrs["term"] = n.attrs["term"]
    g._counter = dict(model._counter)
    for lat in model.latents.values():
        if lat.node.name in given:
            continue
        kl = "summed" if lat.kl == "summed" else "sampled"
        copy = Latent(new[lat.node.name], lat.prior.mapped(lambda v: new[v.name]), kl,
                      (new[lat.auto[0].name], lat.auto[1]) if lat.auto else ())
        g.latents[lat.node.name] = copy
        if lat.kl == "analytic":
            _latent_terms(g, copy)
    for o in model.observed.values():
        g.observed[o.name] = Observed(o.name, o.spec.mapped(lambda v: new[v.name]), new[o.value.name])
    _groups(g, model)
    return g


def _groups(g: Graph, model: Graph) -> None:
    """A derived graph's plates of groups: the model's that its nodes are drawn in, each with its
    index input (made when the graph does not read it: its nodes' noise is addressed by it)."""
    used = {n.attrs.get("plate") for n in g.order}
    g.groups = {k: v for k, v in getattr(model, "groups", {}).items() if g.plates and k in used}
    for grp in list(g.groups.values()):
        while grp is not None:
            g.groups[grp.name] = grp
            if grp.index not in g.nodes:
                _make(g, "input", grp.index, (), 1)
            grp = model.groups.get(grp.parent)


def _plates(model: Graph) -> dict:
    """The model's plates for a derived graph that samples or evaluates per row: an unsized
    plate (m.plate(name) before fit sets N) as size 1 (N scales only the training loss)."""
    return {k: (1 if v is None else v) for k, v in getattr(model, "plates", {}).items()}


def _given(g: Graph, n: Node, shared: bool = False) -> Node:
    """A data input standing for node n's values (a latent conditioned on); shared: a global
    latent's, the same on every row of a call (graph.scopes reads it as global)."""
    out = _make(g, "input", n.name, (), n.width, **({"shared": True} if shared else {}))
    if g.plates:
        out.attrs["plate"] = next(iter(g.plates))
    return out


def generative(model: Graph, nodes, given=()) -> Graph:
    """The generative graph of the requested nodes (see the module docstring); each drawn node
    carries its cost -log p(value | parents), named nll_<node>. The latents named in `given` are
    data inputs instead (conditioned on: the posterior predictive's guide draws, or the user's)."""
    observed = {o.value.name: o for o in model.observed.values()}
    g = type(model)(model.name + "_gen")
    g.plates = _plates(model)
    new, busy = {}, set()

    def gen(n: Node) -> Node:
        if n.name in new:
            return new[n.name]
        if n.name in given:
            new[n.name] = out = _given(g, n)
            return out
        if n.name in busy:
            raise ModelError(f"model '{model.name}': the generative model of '{n.name}' depends on '{n.name}' itself "
                             f"(a prior or likelihood reads a guide node computed from the data it generates); "
                             f"p may read latents, parameters and unobserved inputs only")
        busy.add(n.name)
        spec = model.latents[n.name].prior if n.name in model.latents else (
            observed[n.name].spec if n.name in observed and n.kind == "input" else None)
        if spec is not None:
            spec = spec.mapped(gen)
            out = spec.draw(n.name)
            if g.plates and (n.attrs.get("plate") or n.kind == "input"):   # drawn per data row or group, as in the model
                out.attrs["plate"] = n.attrs["plate"] if n.attrs.get("plate") in model.groups else next(iter(g.plates))
            g.cost(f"nll_{n.name}", spec.nll(out))
        elif n.is_stochastic:
            raise ModelError(f"{n.kind} node '{n.name}' has no prior: declare m.latent({n.name}, ...) to sample the "
                             f"generative model")
        elif n.attrs.get("is_head"):
            raise ModelError(f"'{n.name}' is a cost head, not a node of the generative model")
        elif n.name in observed:
            raise ModelError(f"'{n.name}' is observed but is not a data input ({n.kind} node); the generative model "
                             f"draws observed inputs only")
        else:
            out = _clone(g, n, [gen(i) for i in n.inputs])
        busy.discard(n.name)
        new[n.name] = out
        return out

    for name in nodes:
        if name not in model.nodes:
            raise ModelError(f"model '{model.name}' has no node {name!r}; nodes: "
                             f"{', '.join(k for k, v in model.nodes.items() if not v.attrs.get('is_head'))}")
        gen(model.nodes[name])
    g._counter = dict(model._counter)
    if not g.costs:   # only deterministic nodes requested: the step needs one cost
        g.cost("none", _const(g, 0.0, 1, "generative model"))
    _groups(g, model)
    return g


def guide(model: Graph, latents, given=(), plates: bool = True, priors: bool = False) -> Graph:
    """The guide's graph of the named latents: each drawn by its guide node (q) from what the
    guide reads (data inputs, parameters, other latents' draws; those in `given` as data inputs),
    with its cost log q named logq_<node>. plates=False drops the plate: every node is then
    drawn per row (only for global latents, whose guide reads no data row: a row is a draw).
    priors=True adds each latent's -log p (logp_<node>): the costs sum to log q - log p of the draw."""
    g = type(model)(model.name + "_guide")
    g.plates = _plates(model) if plates else {}
    new = {}

    def copy(n: Node) -> Node:
        if n.name not in new:
            if n.name in given:
                new[n.name] = _given(g, n)
            else:
                new[n.name] = out = _clone(g, n, [copy(i) for i in n.inputs])
                if not plates:
                    out.attrs.pop("plate", None)
                if n.is_stochastic:
                    g.cost(f"logq_{n.name}", log_prob(out))
        return new[n.name]

    for name in latents:
        copy(model.latents[name].node)
    if priors:
        for name in latents:
            lat = model.latents[name]
            g.cost(f"logp_{name}", lat.prior.mapped(copy).nll(new[name]))
            logdet = next((c for c in model.costs if c.attrs["cost_name"] == f"logdet_{name}"), None)
            if logdet is not None:   # an automatic guide's -log |dz/du|
                g.cost(f"logdet_{name}", copy(logdet))
    g._counter = dict(model._counter)
    _groups(g, model)
    return g


def group_latents(model: Graph, group_of) -> list:
    """The names of the latents drawn in a plate of groups (analysis' group_of)."""
    return [name for name, lat in model.latents.items() if (lat.auto[0] if lat.auto else lat.node) in group_of]


def global_latents(model: Graph, global_nodes) -> list:
    """The names of a plated model's global latents: those drawn by a global stochastic node
    (analysis' global_nodes), and the points of automatic delta guides (always global)."""
    out = []
    for name, lat in model.latents.items():
        node = lat.auto[0] if lat.auto else lat.node
        if node in global_nodes or (lat.auto and lat.auto[1] == "delta"):
            out.append(name)
    return out


def _upstream(node: Node, given) -> set:
    """The node and what it reads, stopping at the nodes named in `given`."""
    out, stack = set(), [node]
    while stack:
        n = stack.pop()
        if n not in out:
            out.add(n)
            if n.name not in given:
                stack.extend(n.inputs)
    return out


# each support's test of observed data (a row is outside when any of its values is) and its words
DATA_SUPPORT = {
    "binary": ("0 or 1", lambda a, K: (a != 0) & (a != 1)),
    "count": ("non-negative integers", lambda a, K: (a < 0) | (a != np.floor(a))),
    "positive": ("> 0", lambda a, K: ~(a > 0)),
    "unit": ("in (0, 1)", lambda a, K: ~((a > 0) & (a < 1))),
    "simplex": ("groups of K non-negative values summing to 1",
                lambda a, K: np.repeat((np.abs(a.reshape(a.shape[0], -1, K).sum(2) - 1)
                                        > (1e-6 if a.dtype == np.float64 else 1e-4)), K, axis=1) | (a < 0)),
    "onehot": ("one-hot groups of K (a single 1 per group)",
               lambda a, K: np.repeat(a.reshape(a.shape[0], -1, K).sum(2) != 1, K, axis=1) | ((a != 0) & (a != 1))),
}


def check_data(model: Graph, name: str, a: np.ndarray) -> None:
    """An observed input's values (m.observe(cost, spec, input)) against its likelihood's support,
    where data enters a step (Program._inputs: grad, loss, fit, the CLI): a ModelError naming the
    input, the law and the first offending rows."""
    for o in getattr(model, "observed", {}).values():
        if o.value.name != name or o.spec.entry.support not in DATA_SUPPORT:
            continue
        what, outside = DATA_SUPPORT[o.spec.entry.support]
        bad = np.flatnonzero(outside(a, o.spec.K or 1).any(axis=1))
        if bad.size:
            rows = ", ".join(f"{int(r)} {np.array2string(a[r], precision=4, threshold=8)}" for r in bad[:3])
            raise ModelError(f"input '{name}' is observed under {o.spec.entry.name} (m.observe({o.name!r}, ...)), "
                             f"whose values are {what}; {bad.size} row(s) are not, e.g. row {rows}: fix the data, or "
                             f"observe it under a law of its values")


def check_bounds(model: Graph, arrays: dict) -> None:
    """Observed counts against their law's bound (`count_bound`: a Binomial's total_count) where
    the bound is a number or a data input of the same call, else a ModelError naming the input,
    the law and the first offending rows (a count over its total has probability 0: an inf loss)."""
    for o in getattr(model, "observed", {}).values():
        bound = getattr(o.spec.entry, "count_bound", None)
        if bound is None or o.value.name not in arrays:
            continue
        n = o.spec.args[o.spec.entry.params.index(bound)]
        total = n.attrs["value"] if n.kind == "const" else arrays.get(n.name) if n.kind == "input" else None
        if total is None:
            continue
        a = arrays[o.value.name]
        bad = np.flatnonzero((a > total).any(axis=1))
        if bad.size:
            r = int(bad[0])
            over = total if np.ndim(total) == 0 else np.array2string(np.asarray(total)[r], precision=4, threshold=8)
            raise ModelError(f"input '{o.value.name}' is observed under {o.spec.entry.name} (m.observe({o.name!r}, "
                             f"...)), whose counts are at most {bound} "
                             f"{total if n.kind == 'const' else repr(n.name)}; {bad.size} row(s) are over it, e.g. "
                             f"row {r}: {np.array2string(a[r], precision=4, threshold=8)} > {over}: fix the data")


def default_nodes(model: Graph) -> list:
    """What sample_prior draws by default: every latent and every observed input."""
    return list(model.latents) + [o.value.name for o in model.observed.values() if o.value.kind == "input"]


def require(model: Graph, what: str) -> None:
    if not is_declared(model):
        raise ModelError(f"{what} needs a model declared with m.latent / m.observe (a generative model and a "
                         f"guide); model '{model.name}' has hand-written costs only")


def compile_hard(model, **options):
    """`model` (a ppl.Model) compiled with every stochastic node drawn hard by its ordinary sampler
    (the score estimator's forward, no baseline): the derived programs that sample or evaluate."""
    est = {n.name: ("score", {"baseline": "none"}) for n in model.order if n.is_stochastic}
    return model.compile(estimators=est, **options)


def extra_costs(model: Graph) -> list:
    """The names of the costs added with m.cost, not by the declaration."""
    return [c.attrs["cost_name"] for c in model.costs if "term" not in c.attrs]


def is_pure(model: Graph) -> bool:
    """Declared, and its costs are exactly the declaration's terms (their sum is -log w)."""
    return is_declared(model) and not extra_costs(model)


def check_pure(model: Graph, what: str, plates: bool = False) -> None:
    """The costs are exactly the declaration's terms (else a bound would include other costs), and
    the model has no plate (its rows share global latents and weigh N: no per-row bound) unless
    plates=True (a plated bound: Program.plated_log_weights)."""
    require(model, what)
    if getattr(model, "plates", None) and not plates:
        raise ModelError(f"{what}: model '{model.name}' has a plate; its rows share the global latents and its "
                         f"per-row terms weigh N / batch, so there is no bound per data row: prog.loss(data) "
                         f"estimates the data set's -ELBO (N / batch times the rows' terms plus the global terms)")
    extra = extra_costs(model)
    if extra:
        raise ModelError(f"{what}: cost(s) {', '.join(map(repr, extra))} were added with m.cost and are not terms of "
                         f"the declared model, so the sum of costs is not -log p(x, h) + log q(h | x); declare them "
                         f"with m.observe / m.latent or evaluate with prog.loss")


EVAL_BLOCK = 1 << 23   # values of the largest (rows x draws, width) buffer of one evaluation call (the
                       # blocks' draws are those of one call: step_rows addresses noise by global row)


def evaluation_args(ev, block: dict, seed: int, row0: int) -> tuple:
    """The evaluation program's step_rows arguments for a block of data rows whose first draw
    is row `row0`: the step's arrays, the seed, t 0, a forward-only call (mode 0) and row0."""
    return (*ev.args(block), np.uint64(seed), np.int64(0), 0, np.int64(row0))


def cost_totals(ev, block, seed: int, row0: int, batch=None, step: int = 0) -> tuple:
    """(each row's sum of costs, the step's arguments) of one forward call of the program `ev`
    on a block of data rows (or `batch` rows without inputs) whose first draw is row `row0`, at
    step counter `step` (a plate of groups' draws are addressed by their group, not their row:
    another draw of them needs another step)."""
    a = (*ev.args(block, batch), np.uint64(seed), np.int64(step), 0, np.int64(row0))
    ev.module.step_rows(*a)
    tot = np.zeros(a[6] * ev.rows_per_data_row, np.float64)
    for _, k in ev.layout.costs:
        tot += a[4][k]
    return tot, a


def block_rows(ev, per_row: int) -> int:
    width = max([w for _, _, w in ev.layout.ws2] + [1])
    return max(1, EVAL_BLOCK // (per_row * width))


def log_weights(prog, data, samples: int, seed: int, dtype) -> np.ndarray:
    """(N, samples) log p(x, h) - log q(h | x), h drawn hard from the guide (every stochastic node
    by the score estimator's forward): the negated per-row totals of the evaluation model's costs."""
    ev = prog._evaluator(samples, dtype)
    inputs, B = ev._inputs(data, None)
    rows = block_rows(ev, samples)
    names = ev.layout.inputs
    out = []
    for i in range(0, B, rows):   # a block of data rows, its noise addressed by global row: any block size draws the same
        tot, a = cost_totals(ev, {n: v[i:i + rows] for n, v in zip(names, inputs)}, seed, i * samples)
        out.append(-tot.reshape(a[6], samples))
    return np.concatenate(out)


def logmeanexp(log_w: np.ndarray) -> np.ndarray:
    """log (1/S sum_s exp(lw_s)) per row (the importance-weighted bound's estimate of log p(x))."""
    m = log_w.max(1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    return (m + np.log(np.exp(log_w - m).mean(1, keepdims=True)))[:, 0]
