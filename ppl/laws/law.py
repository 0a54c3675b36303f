"""A law as data: what it supports, the code that implements it, and how the language names it.

Estimators and both lowerings read these entries (as numpyro reads `reparametrized_params`);
nothing asks `isinstance` or compares a distribution's name. An estimator applies when the
entry has what it needs: a capability flag or the kernel template it renders.

`kernels` maps a role to one of the law's own kernels (written as a `core` kernel's name or a call
template, held as calls.KernelRef / calls.Template objects), which the step calls as `core.<name>`
(through `Lowering.call`, which appends the group size K of a grouped node) or, for a template,
renders with `ppl.ops.render` (enum: the support's rows, over stride, K, value and a count's
constant bound). Roles every
law has: sample, log_prob, log_prob_bwd (and sample_bwd when it is reparameterised); others:
sample_rep, log_prob_keep / log_prob_kept_bwd, kl / kl_bwd, relaxed_sample / relaxed_bwd (its
`relaxation`). The kernels of one (estimator, law) pair (REBAR's, RELAX's, ReinMax's ...) live
with the estimator, in its `kernels` keyed by the law's kind. The row-fused lowering calls the
same kernels, rewritten into row code (kernels/rowcode.py): a law's formulas are its kernels
alone. The -log p head of a spec is `likelihood` (an ops.OPS head) or, when None, the law's
own log_prob kernels with the sign changed (ops "law_nll").

A parameter's domain beyond "positive" is a `constraints` entry (CONSTRAINTS below): a constant
outside it is refused where the node or spec is made, a node's values in the step (the lowering's
checks, ppl/lowering/context.py), naming the node and the parameter.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..calls import kernel_table

# constraint -> (what its values must be, the test of a constant): a parameter's domain
CONSTRAINTS = {
    "unit": ("within [0, 1]", lambda c: 0.0 <= c <= 1.0),
    "unit_positive": ("within (0, 1]", lambda c: 0.0 < c <= 1.0),
    "count": ("a non-negative integer", lambda c: c >= 0 and math.isfinite(c) and c == math.floor(c)),
    "weights": ("non-negative", lambda c: c >= 0),   # per group: also a positive sum (checked in the step)
    "nonnegative": ("non-negative", lambda c: 0 <= c < math.inf),
}


@dataclass(frozen=True)
class Distribution:
    name: str                        # shown to users: "Bernoulli"
    params: tuple                    # parameter inputs, in node-input order
    reparameterized: tuple = ()      # params with a pathwise (reparameterised) gradient
    implicit: bool = False           # its sample's VJP reads the params and the value too (implicit
                                     # reparameterisation): sample_bwd(*params, value, noise, g, *gparams)
    discrete: bool = False
    noise: str = "normal"            # the base noise of the sampler: logistic | normal | gumbel | uniform
    noise_draws: int = 1             # draws of that noise per unit: a (rows, noise_draws * width) buffer,
                                     # draw i of column j at column i * width + j (Beta: two uniforms)
    relaxation: str | None = None    # name of the continuous relaxation, if any
    straight_through: bool = False
    antithetic: bool = False         # a two-point logit-link law: ARM / DisARM pairs exist
    gaussian: bool = False           # Gaussian location-scale: Price's theorem applies
    grouped: bool = False            # values are one-hot groups of K (node attribute "K") columns
    unbounded: bool = False          # a discrete law with infinitely many values (counts)
    positive: tuple = ()             # params that must be > 0 (checked in the fused step)
    constraints: dict = field(default_factory=dict)   # param -> a CONSTRAINTS key (checked there too)
    count_bound: str | None = None   # the param bounding a count's values (Binomial's total_count): a
                                     # node whose bound is a constant has a finite support (enumeration)
    likelihood: str | None = None    # the cost head (ops.OPS kind) of -log p(value | params): its
                                     # inputs are the params in order, then the value (ppl.dist specs)
    kernels: dict = field(default_factory=dict)
    # the language: ppl.<constructor>(name, *params) makes a node of this law and
    # ppl.dist.<constructor>(*params) a spec (a prior or a likelihood); None for a variant
    # reached through another law's constructor keyword: by a keyword's value (variants: keyword
    # -> {value: kind}, the first value the default), or by which parameter is given (by_param:
    # keyword -> kind, e.g. probs= -> "bernoulli_probs"; exactly one of the parameters that
    # differ between the entries must be given)
    kind: str = ""                   # the key of DISTRIBUTIONS, a node's kind
    constructor: str | None = None
    doc: str = ""                    # the constructors' docstring
    variants: dict = field(default_factory=dict)
    by_param: dict = field(default_factory=dict)
    support: str = "real"            # the set of values: a prior describes the nodes of its support
    param_docs: dict = field(default_factory=dict)   # param -> what it must be (errors, docstrings)

    def __post_init__(self):   # its kernels as objects (calls.KernelRef, call templates read once)
        object.__setattr__(self, "kernels", kernel_table(self.kernels))

    @property
    def has_rsample(self) -> bool:
        return bool(self.reparameterized)

    def support_size(self, width: int, K: int = 2, bound=None):
        """Number of joint values of a node of this width (None: continuous or unbounded); a
        count bounded by the constant `bound` takes bound + 1 values per unit."""
        if not self.discrete or (self.unbounded and bound is None):
            return None
        if bound is not None:
            return (bound + 1) ** width
        return K ** (width // K) if self.grouped else 2 ** width

    def constant_bound(self, node):
        """The constant value of the node's `count_bound` parameter (a constant node, or one
        broadcast), as an int; None when the law has none or it is not a constant."""
        if self.count_bound is None:
            return None
        src = node.inputs[self.params.index(self.count_bound)]
        while src.kind == "bcast":
            src = src.inputs[0]
        return int(src.attrs["value"]) if src.kind == "const" else None

    def node_support(self, node):
        """support_size of a node (its width, group size and constant bound)."""
        return self.support_size(node.width, node.attrs.get("K", 2), self.constant_bound(node))

    def constant_problem(self, param: str, c: float):
        """What the constant c given for `param` must be, when it is not (else None)."""
        if param in self.positive and not c > 0:
            return "> 0"
        what, ok = CONSTRAINTS.get(self.constraints.get(param), (None, None))
        return what if ok is not None and not ok(c) else None
