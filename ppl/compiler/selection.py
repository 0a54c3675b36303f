"""Estimator selection: the rule table (policy -> estimator) and the per-node overrides.

`select` returns, for every stochastic node, the estimator it gets, its checked options and the
reason `Program.explain()` prints. This is the first pass of the compiler (ppl/compiler/pipeline.py).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..analysis import graph as G
from .. import validate as V
from ..distributions import DISTRIBUTIONS
from ..errors import ModelError
from ..language.nodes import Graph, Node
from ..estimators import REGISTRY, NodeInfo
from .options import POLICIES

# --------------------------------------------------------------------------- the rule table
@dataclass
class Choice:
    estimator: str
    options: dict
    reason: str


# (policy, condition, estimator, reason) -- first match wins: every estimator's declared
# `rules` (estimators/base.Rule), by rank. This is where the compiler's defaults are decided;
# `explain()` prints the reason of the rule that fired.
def _rules() -> list:
    declared = [(r, name) for name, est in REGISTRY.items() for r in type(est).__dict__.get("rules", ())]
    return [(r.policy, r.when, name, r.why) for r, name in sorted(declared, key=lambda rn: (rn[0].rank, rn[1]))]


RULES = _rules()


def _parse_override(spec, node: Node):
    if isinstance(spec, str):
        return spec, {}
    if isinstance(spec, (tuple, list)) and len(spec) == 2 and isinstance(spec[0], str) and isinstance(spec[1], dict):
        return spec[0], dict(spec[1])
    raise ModelError(f"estimator for '{node.name}' must be a name or (name, {{options}}), got {spec!r}")


def select(model: Graph, an: G.Analysis, estimators, policy: str, samples: int, baseline,
           objective: str = "elbo") -> dict:
    if policy not in POLICIES:
        raise ModelError(f"policy must be one of {', '.join(POLICIES)}, got {policy!r}")
    stoch = [n for n in an.order if n.is_stochastic]
    if isinstance(estimators, dict):
        unknown = set(estimators) - {n.name for n in stoch}
        if unknown:
            raise ModelError(f"estimators name unknown stochastic nodes: {', '.join(sorted(unknown))}; "
                             f"the stochastic nodes are {', '.join(n.name for n in stoch)}")
        overrides = estimators
    elif estimators == "auto":
        overrides = {}
    elif isinstance(estimators, (str, tuple, list)):
        overrides = {n.name: estimators for n in stoch}
    else:
        raise ModelError(f"estimators must be 'auto', a name, or a dict node -> name; got {estimators!r}")
    out = {}
    for n in stoch:
        d = DISTRIBUTIONS[n.kind]
        ancestors = G.ancestors(an.graph, n.name)
        above = {m.name: (ch.estimator, ch.options) for m, (ch, _) in out.items() if m.name in ancestors}
        info = NodeInfo(n, d, an.blocked_by[n], samples, d.node_support(n), objective, an,
                        above)
        if n.name in overrides:
            name, opts = _parse_override(overrides[n.name], n)
            if name not in REGISTRY:
                raise ModelError(f"{d.name} '{n.name}': unknown estimator {name!r}; known: "
                                 f"{', '.join(sorted(REGISTRY))}")
            reason = "chosen by the user"
            form = REGISTRY[name].form(info)
            if form is not None:   # another registered estimator runs in its place here
                reason = f"chosen by the user as '{name}', which runs here as '{form[0]}': {form[1]}"
                name = form[0]
            why_not = REGISTRY[name].applies(info)
            if why_not:
                usable = [k for k, e in sorted(REGISTRY.items()) if e.suggested and e.applies(info) is None]
                raise ModelError(f"{d.name} '{n.name}': estimator '{name}' does not apply ({why_not}); "
                                 f"use {', '.join(repr(u) for u in usable)}")
        else:
            rule_policy = "fast" if policy == "fast" else "unbiased"   # the table's unbiased rules
            for pol, cond, name, why in RULES:
                if pol in ("*", rule_policy) and cond(info) and REGISTRY[name].applies(info) is None:
                    reason = why(info)
                    opts = {}
                    break
        est = REGISTRY[name]
        unknown_opts = set(opts) - set(est.options)
        if unknown_opts:
            raise ModelError(f"{d.name} '{n.name}': estimator '{name}' has no option(s) "
                             f"{', '.join(sorted(unknown_opts))}; its options: {', '.join(est.options) or 'none'}")
        full = dict(est.options)
        if name == "score" and baseline is not None:
            full["baseline"] = baseline
        full.update(opts)
        full = V.estimator_options(f"{d.name} '{n.name}'", name, full, est.option_words)
        try:
            full = est.resolve(info, full)
        except ValueError as e:
            raise ModelError(f"{d.name} '{n.name}': {e}") from None
        out[n] = (Choice(name, full, reason), info)
    return out
