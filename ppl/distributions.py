"""Distributions as data: what each supports, and the kernels that implement it.

Estimators read these flags (as numpyro reads `reparametrized_params`); nothing asks
`isinstance`. Kernel names refer to functions of `ppl.kernels.cpu`.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Distribution:
    name: str                        # shown to users: "Bernoulli"
    params: tuple                    # parameter inputs, in node-input order
    reparameterized: tuple = ()      # params with a pathwise (reparameterised) gradient
    discrete: bool = False
    noise: str = "normal"            # the base noise of the sampler: logistic | normal | gumbel
    relaxation: str | None = None    # name of the continuous relaxation, if any
    straight_through: bool = False
    positive: tuple = ()             # params that must be > 0 (checked in the fused step)
    kernels: dict = field(default_factory=dict)

    @property
    def has_rsample(self) -> bool:
        return bool(self.reparameterized)

    def support_size(self, width: int, K: int = 2):
        """Number of joint values of a node of this width (None for continuous)."""
        if not self.discrete:
            return None
        return K ** (width // K) if self.name == "Categorical" else 2 ** width


DISTRIBUTIONS = {
    "bernoulli": Distribution(
        "Bernoulli", ("logits",), discrete=True, noise="logistic", relaxation="concrete",
        straight_through=True,
        kernels=dict(sample="bernoulli_sample", log_prob="bernoulli_log_prob",
                     log_prob_bwd="bernoulli_log_prob_bwd", st_bwd="bernoulli_st_bwd",
                     log_prob_keep="bernoulli_log_prob_keep", log_prob_kept_bwd="bernoulli_log_prob_kept_bwd",
                     relaxed_sample="binary_concrete_sample", relaxed_bwd="binary_concrete_bwd")),
    "bernoulli_probit": Distribution(
        "Bernoulli(probit)", ("logits",), discrete=True, noise="normal", straight_through=True,
        kernels=dict(sample="probit_sample", log_prob="probit_log_prob", log_prob_bwd="probit_log_prob_bwd",
                     st_bwd="probit_st_bwd")),
    "normal": Distribution(
        "Normal", ("loc", "scale"), reparameterized=("loc", "scale"), noise="normal", positive=("scale",),
        kernels=dict(sample="normal_sample", sample_bwd="normal_sample_bwd", log_prob="normal_log_prob",
                     log_prob_bwd="normal_log_prob_bwd")),
    "categorical": Distribution(
        "Categorical", ("logits",), discrete=True, noise="gumbel", relaxation="gumbel_softmax",
        straight_through=True,
        kernels=dict(sample="categorical_sample", log_prob="categorical_log_prob",
                     log_prob_bwd="categorical_log_prob_bwd", relaxed_sample="gumbel_softmax_sample",
                     relaxed_bwd="gumbel_softmax_bwd")),
}
