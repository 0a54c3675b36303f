"""Estimator selection: the rule table (policy -> estimator) and the per-node overrides.

`select` returns, for every stochastic node, the estimator it gets, its checked options and the
reason `Program.explain()` prints. This is the first pass of the compiler (ppl/compiler.py).
"""
from __future__ import annotations

from dataclasses import dataclass

from . import graph as G
from . import validate as V
from .distributions import DISTRIBUTIONS
from .errors import ModelError
from .nodes import Graph, Node
from .estimators import REGISTRY, NodeInfo

# --------------------------------------------------------------------------- the rule table
@dataclass
class Choice:
    estimator: str
    options: dict
    reason: str


def _score_reason(i: NodeInfo) -> str:
    if i.blocked_by:
        return f"a path to its costs goes through the gradient-free black box '{i.blocked_by}'"
    if i.dist.discrete and REGISTRY["cat_disarm"].applies(i) is None:
        return ("discrete node: the unbiased default is the score function with a baseline (categorical DisARM, "
                "at equal evaluations on the categorical VAE 8x4, was not clearly better at equal steps "
                "(+0.14 +- 0.23 nats over 3 seeds), was worse at equal wall clock and costs 1.5x per step: "
                "BENCHMARKS.md, the estimator study)")
    if i.dist.discrete:
        return "discrete node: the unbiased default is the score function with a baseline"
    return "not reparameterisable"


# (policy, condition, estimator, reason) -- first match wins. This is THE place where the
# compiler's defaults are decided; `explain()` prints the reason of the rule that fired.
RULES = [
    ("*", lambda i: i.objective == "iwae", "dreg",
     lambda i: "reparameterisable under the multi-sample (IWAE) bound: the doubly reparameterised gradient "
               "(its encoder estimate does not lose its signal-to-noise ratio as K grows, unlike pathwise)"),
    ("*", lambda i: i.dist.has_rsample and i.differentiable, "pathwise",
     lambda i: "reparameterisable and every path to its costs is differentiable"),
    ("fast", lambda i: i.dist.straight_through and i.differentiable, "reinmax",
     lambda i: "discrete with differentiable paths; policy 'fast' trades bias for low variance: ReinMax "
               "(straight-through's hard forward pass, a second-order backward) trained to a higher test ELBO "
               "than straight-through at equal steps (every seed of the SBN 64-32: +0.31 nats after 5000 "
               "steps, +1.15 after 15000; the categorical VAE 8x4: +1.33) and at equal wall clock, at "
               "1.0-1.25x its time per step (BENCHMARKS.md, the estimator study)"),
    ("fast", lambda i: i.dist.straight_through and i.differentiable, "straight_through",
     lambda i: "discrete with differentiable paths; policy 'fast' trades bias for low variance (ReinMax, "
               "its default where it applies, needs a logit-link Bernoulli or Categorical node)"),
    ("*", lambda i: i.dist.antithetic and not i.differentiable, "relax",
     lambda i: f"a path to its costs goes through the gradient-free black box '{i.blocked_by}': RELAX "
               f"learns a control variate without differentiating f"),
    ("unbiased", lambda i: i.dist.antithetic, "disarm",
     lambda i: "Bernoulli with differentiable paths: DisARM's antithetic pair is unbiased and has lower "
               "variance than the score function, for two evaluations of the downstream graph; on the SBN 64-32 "
               "it trained to the highest test ELBO of the unbiased estimators at equal evaluations (double_cv's "
               "lower variance at init did not carry over) at the least cost per step (BENCHMARKS.md, the estimator study)"),
    ("*", lambda i: i.objective == "iwae", "vimco",
     lambda i: "multi-sample (IWAE) bound, not reparameterisable along every path: the score function of "
               "the bound with VIMCO's leave-one-out baselines per draw"),
    ("*", lambda i: True, "score", _score_reason),
]
POLICIES = ("unbiased", "fast", "autotune")


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
        info = NodeInfo(n, d, an.blocked_by[n], samples, d.support_size(n.width, n.attrs.get("K", 2)), objective, an)
        if n.name in overrides:
            name, opts = _parse_override(overrides[n.name], n)
            if name not in REGISTRY:
                raise ModelError(f"{d.name} '{n.name}': unknown estimator {name!r}; known: "
                                 f"{', '.join(sorted(REGISTRY))}")
            why_not = REGISTRY[name].applies(info)
            if why_not:
                usable = [k for k, e in sorted(REGISTRY.items()) if e.applies(info) is None]
                raise ModelError(f"{d.name} '{n.name}': estimator '{name}' does not apply ({why_not}); "
                                 f"use {', '.join(repr(u) for u in usable)}")
            reason = "chosen by the user"
        else:
            rule_policy = "unbiased" if policy == "autotune" else policy
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
        full = V.estimator_options(f"{d.name} '{n.name}'", name, full)
        try:
            full = est.resolve(info, full)
        except ValueError as e:
            raise ModelError(f"{d.name} '{n.name}': {e}") from None
        out[n] = (Choice(name, full, reason), info)
    return out
