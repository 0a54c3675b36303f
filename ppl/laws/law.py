"""A law as data: what it supports, the code that implements it, and how the language names it.

Estimators and both lowerings read these entries (as numpyro reads `reparametrized_params`);
nothing asks `isinstance` or compares a distribution's name. An estimator applies when the
entry has what it needs: a capability flag or the kernel template it renders.

`kernels` maps a role to one of the law's own kernels, which the step calls as `core.<name>`
(through `Lowering.call`, which appends the group size K of a grouped node) or, for a template,
renders with `ppl.ops.render` (enum: the support's rows, over stride, K and value). Roles every
law has: sample, log_prob, log_prob_bwd (and sample_bwd when it is reparameterised); others:
sample_rep, log_prob_keep / log_prob_kept_bwd, kl / kl_bwd, relaxed_sample / relaxed_bwd (its
`relaxation`). The kernels of one (estimator, law) pair (REBAR's, RELAX's, ReinMax's ...) live
with the estimator, in its `kernels` keyed by the law's kind. The row-fused lowering calls the
same kernels, rewritten into row code (kernels/rowcode.py): a law's formulas are its kernels
alone. The -log p head of a spec is `likelihood` (an ops.OPS head) or, when None, the law's
own log_prob kernels with the sign changed (ops "law_nll").
"""
from __future__ import annotations

from dataclasses import dataclass, field


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
    likelihood: str | None = None    # the cost head (ops.OPS kind) of -log p(value | params): its
                                     # inputs are the params in order, then the value (ppl.dist specs)
    kernels: dict = field(default_factory=dict)
    # the language: ppl.<constructor>(name, *params) makes a node of this law and
    # ppl.dist.<constructor>(*params) a spec (a prior or a likelihood); None for a variant
    # reached through another law's constructor keyword (variants: keyword -> {value: kind},
    # the first value the default)
    kind: str = ""                   # the key of DISTRIBUTIONS, a node's kind
    constructor: str | None = None
    doc: str = ""                    # the constructors' docstring
    variants: dict = field(default_factory=dict)
    support: str = "real"            # the set of values: a prior describes the nodes of its support
    param_docs: dict = field(default_factory=dict)   # param -> what it must be (errors, docstrings)

    @property
    def has_rsample(self) -> bool:
        return bool(self.reparameterized)

    def support_size(self, width: int, K: int = 2):
        """Number of joint values of a node of this width (None: continuous or unbounded)."""
        if not self.discrete or self.unbounded:
            return None
        return K ** (width // K) if self.grouped else 2 ** width
