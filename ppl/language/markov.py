"""Discrete latents summed out exactly: a mixture's component, and the state of a Markov chain in
a `ppl.scan` by the forward algorithm in log space (Pyro's `TraceEnum_ELBO` with `markov`).

    with ppl.Model("hmm") as m:
        x = m.input("x", T * 4)                          # T steps of 4 one-hot symbols
        def step(z_prev, x_t):
            z = m.latent("z", ppl.dist.Categorical(logits=ppl.Affine(z_prev, 3, name="trans"), classes=3),
                         guide="enumerate")
            m.observe("x_t", ppl.dist.Categorical(logits=ppl.Affine(z, 4, name="emit"), classes=4), x_t)
            return z, None
        ppl.scan(step, ppl.const(0.0, 3), xs=x)

`m.latent(name, prior, guide="enumerate")` declares a latent with a finite support (Bernoulli,
Categorical, a Binomial of a constant count: at most MAX_STATES joint values) that has no guide:
the objective sums it out. The model keeps it as a node drawn from its prior (sampling and
prediction draw it); the compiler trains `sum_out(model)`, a graph without it:

- The factors of the latent z are its prior's log p(z | parents) and every cost that reads z
  (an m.observe, a latent's prior term, an m.cost of ppl.total). They are evaluated at each value
  v_k of z (the nodes between z and them copied once per value, sharing parameters).
- Outside a scan, or in a scan whose carry does not hold z (a mixture per step): those costs are
  replaced by one cost, sum_<z> = -log sum_k p(v_k | parents) exp(-costs(v_k)).
- In a scan whose carry holds z (or a function of z alone): the carry becomes the log forward
  message alpha_t(k) = log p(x_{1:t}, z_t = v_k), over the S values and one more for the state
  before the first step (the carry's init, whose message is log 1 at the start and log 0 after),
  alpha_t = log_matvec(alpha_{t-1}, B_t) + e_t with B_t[j, k] = log p(v_k | z_{t-1} = j) - the
  costs that read both states at (j, k), and e_t[k] = - the costs that read z alone at v_k (out of
  the sum over j: the same at every state before), and the cost after the loop
  sum_<z> = -log sum_k exp(alpha_T(k)) = -log p(x_{1:T}). Each step costs a copy of z's prior
  per state before it (S + 1), and of each other factor one copy per value (S) where it reads z
  alone (an HMM's emission), per pair (S (S + 1)) where it also reads the state before it;
  memory is the loop's, S + 1 values per row and step. A copy that reads the values and
  parameters only is computed once, before the loop (scan.Loop.hoists): the prior's rows (an
  HMM's whole B), and a Categorical factor's log-softmax (a factor of one group whose logits are
  computed before the loop is written as v . log_softmax(logits), the law's log p, so that only
  its product with the step's data is in the loop; an observed one's row at every value is one
  `dots` of the step's symbol with those log-softmax rows).

The reverse pass of the result is the exact gradient of -log p(x): the step's ordinary VJPs of
these nodes. Costs that do not read z keep their terms, and the other stochastic nodes their
estimators (a continuous latent beside the state, as in a switching model, stays pathwise).
Log 0 is held as LOG0 = -1e30: its exponential is 0 in float64 and below float32's resolution
of a sum that holds a term of 1.
"""
from __future__ import annotations

import itertools

import numpy as np

from ..errors import ModelError
from ..ops import OPS
from .nodes import Node, _auto_name, _make
from .scan import in_body, loop_order

MAX_STATES = 64
LOG0 = -1e30
SUPPORTS = ("binary", "onehot", "count")


def states(prior, width: int, owner: str) -> list:
    """The joint values of a node of `width` units under `prior` (a bound ppl.dist spec), as
    float arrays; a ModelError where the support is not finite or has more than MAX_STATES."""
    support = prior.entry.support
    if support == "binary":
        per = [np.array([0.0]), np.array([1.0])]
        units = width
    elif support == "onehot":
        K = prior.K
        per = [np.eye(K)[k] for k in range(K)]
        units = width // K
    elif support == "count" and prior.entry.count_bound:
        n = prior.args[prior.entry.params.index(prior.entry.count_bound)]
        if not (isinstance(n, Node) and n.kind == "const"):
            raise ModelError(f"{owner}: guide='enumerate' needs the {prior.entry.count_bound} of a "
                             f"{prior.entry.name} as a number, so its values are known when compiling")
        per = [np.array([float(v)]) for v in range(int(n.attrs["value"]) + 1)]
        units = width
    else:
        raise ModelError(f"{owner}: guide='enumerate' sums out a latent of finite support (Bernoulli, Categorical, a "
                         f"Binomial of a constant count); a {prior.entry.name} prior has "
                         f"{prior.entry.support} values: use guide='normal' or write its guide")
    count = len(per) ** units
    if count > MAX_STATES:
        raise ModelError(f"{owner}: its {units} unit(s) of {len(per)} values have {count} joint values, more than "
                         f"{MAX_STATES} to sum over; split it into smaller latents or use guide='normal' / a guide "
                         f"of your own")
    return [np.concatenate(v) for v in itertools.product(per, repeat=units)]


def declare_summed(m, name: str, prior, width, owner: str) -> Node:
    """m.latent(name, prior, guide="enumerate"): (the latent as a node drawn from its prior,
    marked to be summed out, the bound prior); no terms of its own: sum_out makes them."""
    if not isinstance(name, str) or name in m.latents or name in m.nodes:
        raise ModelError(f"{owner}: model '{m.name}' has a node {name!r} already; name the latent anew")
    w = prior.width or (1 if width is None else int(width))
    if prior.K is not None and w % prior.K:
        raise ModelError(f"{owner}: the prior's width {w} is not a multiple of classes={prior.K}")
    prior = prior.bind(m, w, owner)
    values = states(prior, w, owner)
    if getattr(m, "plates", None) and getattr(m, "plate_open", None) is None:
        raise ModelError(f"{owner}: a latent summed out outside every plate is shared by all data rows, which couples "
                         f"them; declare it inside the data plate (one per row)")
    z = prior.draw(name)
    z.attrs["summed"] = len(values)
    return z, prior


# --------------------------------------------------------------------------- the rewrite
class _States:
    """Which nodes of a model depend on each summed latent (or on the state before it), checked."""

    def __init__(self, model):
        self.model = model
        self.g = g = type(model)(model.name)
        g.plates, g.groups = dict(getattr(model, "plates", {})), dict(getattr(model, "groups", {}))
        g.config = getattr(model, "config", None)
        g.summed = []          # (latent, values, how, the costs it absorbed, its cost): explain()
        self.new = {}          # an original node's name -> its one copy
        self.variant = {}      # (name, j, k) -> a copy at prior state j / value k
        self.consumers = {}
        for n in model.order:
            for i in n.inputs:
                self.consumers.setdefault(i.name, []).append(n)
        self.plans = []
        for lat in model.latents.values():
            if lat.kl == "summed":
                self.plans.append(self._plan(lat))

    # ----- which nodes depend on the state
    def _descendants(self, name: str) -> set:
        return self._below([self.model.nodes[name]], lambda n: True)

    def _below(self, roots, within) -> set:
        out, todo = set(), list(roots)
        while todo:
            n = todo.pop()
            for c in self.consumers.get(n.name, ()):
                if c.name not in out and within(c):
                    out.add(c.name)
                    todo.append(c)
        return out

    def _plan(self, lat) -> dict:
        z, owner = lat.node, f"the summed-out latent '{lat.node.name}'"
        loop = next((lp for lp in getattr(self.model, "loops", ()) if lp.name == z.attrs.get("loop")), None)
        in_scope = (lambda n: n.attrs.get("loop") == loop.name) if loop else (lambda n: "loop" not in n.attrs)
        dz = self._below([z], lambda n: True)
        if loop is None and any("loop" in self.model.nodes[d].attrs for d in dz):
            raise ModelError(f"{owner} is read inside a ppl.scan it was not declared in; declare it in the scan's body")
        held = [k for k, o in enumerate(loop.carry_out) if o is z or o.name in dz] if loop else []
        # what reads the state before z other than through z (z reads it through its prior: its
        # factor, not a copy; a node that reads z alone is copied once per value, not per pair)
        dc = self._below([loop.carry[k] for k in held], lambda n: in_scope(n) and n is not z) if loop else set()
        dz = {d for d in dz if in_scope(self.model.nodes[d])}
        dep = dz | dc
        for d in dep:
            n = self.model.nodes[d]
            if n.is_stochastic:
                raise ModelError(f"{n.kind} node '{d}' is drawn given {owner}; a node drawn after a summed-out "
                                 f"state needs it drawn, not summed: give '{z.name}' a guide, or make '{d}' not read it")
        if loop:
            self._check_loop(loop, z, held, dz, dc, owner)
        costs = [c for c in self.model.costs if c.name in dep]
        for other in self.plans:
            if set(other["costs"]) & set(costs):
                raise ModelError(f"{owner} and '{other['lat'].node.name}' share a cost; ppl sums out one latent per "
                                 f"cost (a chain of several discrete states: one latent of their joint values)")
        return {"lat": lat, "loop": loop, "held": held, "dz": dz, "dc": dc, "costs": costs,
                "values": states(lat.prior, z.width, owner)}

    def _check_loop(self, loop, z, held, dz, dc, owner):
        for k, o in enumerate(loop.carry_out):
            if k in held:
                up = self._upstream_in_body(o, loop, z)
                bad = [n for n in up if n.kind in ("carry", "scan_x") or (n.is_stochastic and n is not z)]
                if bad:
                    raise ModelError(f"the carry {k} ('{o.name}') holds {owner} and reads '{bad[0].name}'; a carried "
                                     f"state summed out must be a function of the state alone (return the latent, "
                                     f"or an expression of it, as the carry)")
            elif o.name in dz | dc:
                raise ModelError(f"the carry {k} ('{o.name}') reads {owner} (or the state before it); the carry "
                                 f"can hold the summed state itself, not another value computed from it")
        for k, y in enumerate(loop.ys):
            if (y is z or y.name in dz | dc) and self.consumers.get(loop.stacked[k].name):
                raise ModelError(f"the scan's output {k} ('{y.name}') reads {owner}, which is summed out; the "
                                 f"objective has no value of it to pass on (sample or predict draw it)")
        for k in held:
            if self.consumers.get(loop.last[k].name):
                raise ModelError(f"the scan's last carry {k} reads {owner}, which is summed out; the objective "
                                 f"has no value of it after the loop (sample or predict draw it)")

    def _upstream_in_body(self, n, loop, z) -> list:
        """The body's nodes n is computed from, up to z."""
        out, todo, seen = [], [n], set()
        while todo:
            x = todo.pop()
            if x.name in seen or x.attrs.get("loop") != loop.name or x is z:
                continue
            seen.add(x.name)
            out.append(x)
            todo.extend(x.inputs)
        return out


class _Rewrite(_States):
    """The copy of a model with its summed latents replaced by their exact sums (sum_out)."""

    def run(self):
        model, g = self.model, self.g
        g._counter = dict(model._counter)
        self.skip = set()
        for p in self.plans:
            self.skip |= {p["lat"].node.name} | p["dz"] | p["dc"]
            if p["loop"] is not None:
                self.skip |= {p["loop"].carry[k].name for k in p["held"]}
        loops = {lp.name: lp for lp in getattr(model, "loops", ())}
        self.open = None
        # each body contiguous (a value hoisted out of a body sits among its nodes in model.order)
        for n in loop_order(model.order, list(loops.values()), self._descendants):
            lname = n.attrs.get("loop")
            if self.open is not None and lname != self.open[0].name and n.kind != "param":
                self._close()
            if lname is not None and self.open is None:
                self._open(loops[lname])
            if n.name in self.skip or n.name in self.new:
                continue
            self._copy(n)
        if self.open is not None:
            self._close()
        for p in self.plans:
            if p["loop"] is None:
                self._mixture(p)
        for lat in model.latents.values():
            if lat.kl != "summed" and lat.node.name in self.new:
                auto = (self.new.get(lat.auto[0].name, lat.auto[0]), lat.auto[1]) if lat.auto else ()
                g.latents[lat.node.name] = type(lat)(self.new[lat.node.name], lat.prior, lat.kl, auto)
        g.observed = dict(model.observed)
        return g

    def _fresh(self, base: str) -> str:
        name, i = base, 1
        while name in self.g.nodes or name in self.model.nodes:
            name, i = f"{base}_{i}", i + 1
        return name

    def _clone(self, n: Node, inputs, name: str) -> Node:
        # "loop" left to _make: a copy at a state is the same at every step where its inputs are
        attrs = {k: v for k, v in n.attrs.items() if k not in ("is_cost", "cost_name", "term", "loop")}
        if n.kind in OPS and OPS[n.kind].params:
            attrs["params_of"] = attrs.get("params_of", n.name)   # the copies share the op's parameters
        return _make(self.g, n.kind, name, inputs, n.width, **attrs)

    def _copy(self, n: Node):
        c = self.new[n.name] = self._clone(n, [self.new[i.name] for i in n.inputs], n.name)
        if n.is_cost:
            self.g.cost(n.attrs["cost_name"], c)
            if "term" in n.attrs:
                c.attrs["term"] = n.attrs["term"]

    def _op(self, kind: str, inputs, width: int, **attrs) -> Node:
        return _make(self.g, kind, _auto_name(self.g, kind), tuple(inputs), width, **attrs)

    def _neg(self, x: Node) -> Node:
        return self._op("scale_shift", (x,), x.width, scale=-1.0, shift=0.0)

    def _vector(self, v) -> Node:
        """A constant node of the values v (runs of one value: constant nodes side by side)."""
        runs, start = [], 0
        for i in range(1, len(v) + 1):
            if i == len(v) or v[i] != v[start]:
                runs.append(self._op("const", (), i - start, value=float(v[start])))
                start = i
        return runs[0] if len(runs) == 1 else self._op("concat", runs, len(v))

    # ----- a loop
    def _open(self, loop):
        from .scan import Loop
        p = next((q for q in self.plans if q["loop"] is loop and q["held"]), None)
        kept = [k for k in range(len(loop.carry)) if not (p and k in p["held"])]
        new = Loop(loop.name, loop.length, tuple(self.new[loop.init[k].name] for k in kept),
                   self.new[loop.xs.name] if loop.xs is not None else None, checkpoint=loop.checkpoint)
        alpha = None
        if p is not None:
            S = len(p["values"])
            new.init += (self._vector(np.r_[np.full(S, LOG0), 0.0]),)
        self.g.loop_open = new
        carry = []
        for idx, k in enumerate(kept):
            c = loop.carry[k]
            carry.append(_make(self.g, "carry", c.name, (new.init[idx],), c.width, index=idx))
            self.new[c.name] = carry[-1]
        if p is not None:
            alpha = _make(self.g, "carry", self._fresh(f"{loop.name}_alpha"), (new.init[-1],), S + 1, index=len(kept))
            carry.append(alpha)
        new.carry = tuple(carry)
        self.open = (loop, new, p, kept, alpha)

    def _close(self):
        loop, new, p, kept, alpha = self.open
        g = self.g
        for q in self.plans:
            if q["loop"] is loop and not q["held"]:
                self._mixture(q)   # a mixture per step: its cost in the body
        outs = [self.new[loop.carry_out[k].name] for k in kept]
        if p is not None:
            S = len(p["values"])
            # a factor that reads z alone adds the same row at every state before: out of the sum,
            # log sum_j exp(alpha_j + B_jk + e_k) = e_k + log sum_j exp(alpha_j + B_jk), so that B
            # holds the prior's rows alone where nothing else reads the state before (an HMM's:
            # computed before the loop) and the step adds its emission's row once
            alone = [h for h in p["costs"] if h.name not in p["dc"]]
            B = self._op("concat", [self._row(p, j, alone) for j in range(S + 1)], (S + 1) * S)
            step = self._op("log_matvec", (alpha, B), S)
            for h in alone:
                step = self._op("add", (step, self._cost_row(p, h, None)), S)
            outs.append(self._op("concat", (step, self._op("const", (), 1, value=LOG0)), S + 1))
        kept_y = [k for k, y in enumerate(loop.ys) if y.name in self.new]
        new.x = self.new[loop.x.name]
        new.carry_out = tuple(in_body(g, new, o) for o in outs)
        new.ys = tuple(in_body(g, new, self.new[loop.ys[k].name]) for k in kept_y)
        g.loop_open = None
        new.body = [n for n in g.order if n.attrs.get("loop") == loop.name]
        names = [loop.last[k].name for k in kept] + ([self._fresh(f"{loop.name}_last_alpha")] if p else [])
        new.last = tuple(_make(g, "scan_last", nm, (o,), o.width, of_loop=loop.name) for nm, o in zip(names, outs))
        new.stacked = tuple(_make(g, "scan_stack", loop.stacked[k].name, (new.ys[i],), new.ys[i].width * loop.length,
                                  of_loop=loop.name, length=loop.length) for i, k in enumerate(kept_y))
        for k, c in zip(kept, new.last):
            self.new[loop.last[k].name] = c
        for k, c in zip(kept_y, new.stacked):
            self.new[loop.stacked[k].name] = c
        self.skip |= {lp.name for lp in loop.last} | {s.name for s in loop.stacked}
        g.loops.append(new)
        self.open = None
        if p is not None:
            lse = self._op("logsumexp", (new.last[-1],), 1)
            self._sum_cost(p, self._neg(lse),
                           f"log p of the data the chain's costs read, '{p['lat'].node.name}' summed out over its "
                           f"{S} values at each of the {loop.length} steps (the forward algorithm)")

    # ----- the factors at a state
    def _mixture(self, p):
        S = len(p["values"])
        lse = self._op("logsumexp", (self._row(p, None),), 1)
        where = f"at each step of the scan '{p['loop'].name}'" if p["loop"] is not None else "per row"
        self._sum_cost(p, self._neg(lse),
                       f"log of the sum over the {S} values of '{p['lat'].node.name}' of its prior times the "
                       f"likelihood of what reads it, {where}")

    def _sum_cost(self, p, node, what):
        name = p["lat"].node.name
        cname = self._fresh(f"sum_{name}")
        self.g.cost(cname, node)
        self.g.costs[-1].attrs["term"] = ("-", what)
        how = ("by the forward algorithm over the steps of the scan '{}'" if p["held"] else
               "at each step of the scan '{}'" if p["loop"] is not None else "per row")
        self.g.summed.append((name, len(p["values"]), how.format(getattr(p["loop"], "name", "")),
                              tuple(c.attrs["cost_name"] for c in p["costs"]), cname))

    def _row(self, p, j, leave=()) -> Node:
        """[log p(z = v_k | its parents at prior state j) + the log factors of z's costs at (j, k)
        for k < S], one node of width S; the costs in `leave` left out."""
        out = self._prior_row(p, j)
        for h in p["costs"]:
            if h not in leave:
                out = self._op("add", (out, self._cost_row(p, h, j if h.name in p["dc"] else None)), len(p["values"]))
        return out

    def _cost_row(self, p, h, j) -> Node:
        """[the log factor of the absorbed cost h at (j, k) for k < S], one node of width S."""
        S = len(p["values"])
        key = (h.name, "row", j)
        if key not in self.variant:
            row = self._symbol_dots(p, h, j)
            if row is None:
                terms = [self._log_factor(p, h, j, k) for k in range(S)]
                row = self._op("bcast", terms[:1], S) if h.name not in p["dz"] else self._op("concat", terms, S)
            self.variant[key] = row
        return self.variant[key]

    def _symbol_dots(self, p, h, j):
        """An observed Categorical of one group whose value (the step's symbol) does not read z and
        whose logits at every value of z a scan computes before its loop: its row is
        dots(v, [log_softmax(logits at v_k) for k]), the law's log p at each value in one product
        with the symbol (the log-softmax rows computed there too), else None."""
        o = self.model.observed.get(h.attrs["cost_name"])
        if o is None or self.g.loop_open is None or h.name not in p["dz"] or o.value.name in p["dz"] | p["dc"]:
            return None
        spec = o.spec
        if spec.kind != "categorical" or spec.K != o.value.width or len(spec.args) != 1:
            return None
        logits = [self._at(p, spec.args[0], j, k) for k in range(len(p["values"]))]
        if any("loop" in a.attrs for a in logits):
            return None
        rows = self._op("concat", [self._log_softmax(a) for a in logits], len(logits) * spec.K)
        return self._op("dots", (self._at(p, o.value, j, None), rows), len(logits))

    def _prior_row(self, p, j) -> Node:
        lat, S = p["lat"], len(p["values"])
        if lat.prior.kind == "categorical" and lat.node.width == lat.prior.K:   # one group: its log-softmax
            return self._log_softmax(self._at(p, lat.prior.args[0], j, None))
        return self._op("concat", [self._logp(p, lat.prior, None, j, k) for k in range(S)], S)

    def _log_softmax(self, logits: Node) -> Node:
        neg = self._neg(self._op("logsumexp", (logits,), 1))
        return self._op("add", (logits, self._op("bcast", (neg,), logits.width)), logits.width)

    def _logp(self, p, spec, value, j, k) -> Node:
        args = [self._at(p, a, j, k) for a in spec.args]
        v = self._value(p, k) if value is None else self._at(p, value, j, k)
        if spec.kind == "categorical" and spec.K == v.width and self.g.loop_open is not None \
                and "loop" not in args[0].attrs:
            # one group whose logits a scan computes before its loop (a copy at a state that reads
            # the values and parameters only, scan.Loop.hoists): sum_k v_k (a_k - logsumexp(a)), the
            # law's log p, so that the log-softmax is computed there too and only the product with
            # the step's data in the loop
            return self._op("rowsum", (self._op("mul", (v, self._log_softmax(args[0])), v.width),), 1)
        return self._op("law_logp", (*args, v), 1, law=spec.kind, **({"K": spec.K} if spec.K is not None else {}))

    def _log_factor(self, p, h, j, k) -> Node:
        """The log factor of the absorbed cost h (minus the cost) at (j, k)."""
        key = (h.name, j if h.name in p["dc"] else None, k if h.name in p["dz"] else None)
        if key not in self.variant:
            self.variant[key] = self._log_factor_node(p, h, j, k)
        return self.variant[key]

    def _log_factor_node(self, p, h, j, k) -> Node:
        name = h.attrs["cost_name"]
        model = self.model
        if name in model.observed:
            o = model.observed[name]
            return self._logp(p, o.spec, o.value, j, k)
        if name.startswith("logp_") and name[5:] in model.latents and model.latents[name[5:]].kl != "summed":
            lat = model.latents[name[5:]]
            return self._logp(p, lat.prior, lat.node, j, k)
        if h.kind == "total":
            return self._neg(self._op("rowsum", (self._at(p, h.inputs[0], j, k),), 1))
        raise ModelError(f"cost '{name}' ({h.kind}) reads the summed-out latent '{p['lat'].node.name}'; ppl sums out "
                         f"the costs of m.observe, of a latent's prior and of ppl.total (m.cost): write it as one")

    def _value(self, p, k) -> Node:
        key = (p["lat"].node.name, "value", k)
        if key not in self.variant:
            self.variant[key] = self._vector(p["values"][k])
        return self.variant[key]

    def _at(self, p, n: Node, j, k) -> Node:
        """The copy of the original node n with the previous state j and the latent's value k."""
        loop, z = p["loop"], p["lat"].node
        if n is z:
            return self._value(p, k)
        if loop is not None and n.kind == "carry" and n.attrs.get("loop") == loop.name and n.attrs["index"] in p["held"]:
            i = n.attrs["index"]
            if j == len(p["values"]):   # the state before the first step: the carry's init
                return self.new[loop.init[i].name]
            return self._at(p, loop.carry_out[i], None, j)
        if n.name not in p["dz"] and n.name not in p["dc"]:
            return self.new[n.name]
        jj = j if n.name in p["dc"] else None
        kk = k if n.name in p["dz"] else None
        key = (n.name, jj, kk)
        if key not in self.variant:
            ins = [self._at(p, i, jj, kk) for i in n.inputs]
            tag = (f"s{jj}" if jj is not None else "") + (f"v{kk}" if kk is not None else "")
            self.variant[key] = self._clone(n, ins, self._fresh(f"{n.name}_{tag}"))
        return self.variant[key]


def sum_out(model):
    """The graph the compiler trains for a model with latents declared guide="enumerate" (the
    module docstring), or None when it has none."""
    if not any(lat.kl == "summed" for lat in getattr(model, "latents", {}).values()):
        return None
    return _Rewrite(model).run()
