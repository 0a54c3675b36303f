"""Distributions as data: what each supports, and the code that implements it.

Estimators and both lowerings read these entries (as numpyro reads `reparametrized_params`);
nothing asks `isinstance` or compares a distribution's name. An estimator applies when the
entry has what it needs: a capability flag or the kernel template it renders. Adding a
distribution is one entry here plus its kernels (kernels/cpu.py, gpu.py, scalar.py).

`kernels` maps a role to a function of `ppl.kernels.cpu` (called through `Lowering.call`, which
appends the group size K of a grouped node) or, for estimator-specific kernels, to a source
template rendered with `ppl.ops.render` over the names the estimator provides (a: the logits,
value: the node's value, K: the group size, stride: the node's configuration digit, u / v /
noise: its base noise, flag: REBAR's control-variate row flags, loglam: REBAR's log temperature,
g / ga / g0 / g1: cotangents; see each estimator). `scalar` holds the row-fused formulas
(ppl/scalar_lowering.py) over p0, p1 (the parameters' values), x (the value) and noise.
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
    antithetic: bool = False         # a two-point logit-link law: ARM / DisARM pairs exist
    gaussian: bool = False           # Gaussian location-scale: Price's theorem applies
    grouped: bool = False            # values are one-hot groups of K (node attribute "K") columns
    unbounded: bool = False          # a discrete law with infinitely many values (counts)
    positive: tuple = ()             # params that must be > 0 (checked in the fused step)
    likelihood: str | None = None    # the cost head (ops.OPS kind) of -log p(value | params): its
                                     # inputs are the params in order, then the value (ppl.dist specs)
    kernels: dict = field(default_factory=dict)
    scalar: dict = field(default_factory=dict)

    @property
    def has_rsample(self) -> bool:
        return bool(self.reparameterized)

    def support_size(self, width: int, K: int = 2):
        """Number of joint values of a node of this width (None: continuous or unbounded)."""
        if not self.discrete or self.unbounded:
            return None
        return K ** (width // K) if self.grouped else 2 ** width


_BERNOULLI_SCALAR_VJP = (("+=", "{weight} * scalar.bernoulli_score({p0}, {x})"),)

DISTRIBUTIONS = {
    "bernoulli": Distribution(
        "Bernoulli", ("logits",), discrete=True, noise="logistic", relaxation="concrete",
        straight_through=True, antithetic=True, likelihood="bernoulli_nll",
        kernels=dict(sample="bernoulli_sample", sample_rep="bernoulli_sample_rep", log_prob="bernoulli_log_prob",
                     log_prob_bwd="bernoulli_log_prob_bwd", st_bwd="bernoulli_st_bwd",
                     reinmax_bwd="reinmax_bernoulli_bwd", gumbel_rao_bwd="gumbel_rao_bernoulli_bwd",
                     gapped_st_bwd="gapped_st_bernoulli_bwd",
                     log_prob_keep="bernoulli_log_prob_keep", log_prob_kept_bwd="bernoulli_log_prob_kept_bwd",
                     relaxed_sample="binary_concrete_sample", relaxed_bwd="binary_concrete_bwd",
                     enum="rows.enum_bernoulli({stride}, {value})",
                     relax_sample="relax.relax_sample({a}, {u}, {value})",
                     relax_bwd="relax.relax_bwd({a}, {u}, {v}, {value}, {L}, {rw}, {ctx}, {phi}, {H}, {ga}, {gphi}, True)",
                     # the Bernoulli REBAR kernels keep dz~/da (dzt) for the backward pass, and
                     # read sigma(a) when a log_prob(node) cost kept it (sa)
                     rebar_forward="rebar.rebar_forward({a}, {u}, {v}, {stride}, {off}, {span}, {configs}, {lam}, "
                                   "{delta}, {value}, {dzt})",
                     rebar_bwd="rebar.rebar_bwd({a}, {sa}, {dzt}, {value}, {L}, {rw}, {g}, {stride}, {off}, {span}, "
                               "{configs}, {eta}, {loglam}, {delta}, {ga}, {geta}, {glam}, {train})",
                     relax_rows="rebar.relax_rows_bernoulli({flag}, {a}, {noise}, {uniform}, {loglam}, {value})",
                     relax_rows_bwd="rebar.relax_rows_bernoulli_bwd({flag}, {value}, {loglam}, {g}, {ga})"),
        scalar=dict(sample="scalar.threshold({p0}, {noise})", log_prob="scalar.bernoulli_log_prob_term({p0}, {x})",
                    vjp=_BERNOULLI_SCALAR_VJP, value_vjp=("+=", "{weight} * {p0}"), st_density="sigmoid_grad")),
    "bernoulli_probit": Distribution(
        "Bernoulli(probit)", ("logits",), discrete=True, noise="normal", straight_through=True,
        kernels=dict(sample="probit_sample", log_prob="probit_log_prob", log_prob_bwd="probit_log_prob_bwd",
                     st_bwd="probit_st_bwd", enum="rows.enum_bernoulli({stride}, {value})"),
        scalar=dict(sample="scalar.threshold({p0}, {noise})", log_prob="scalar.probit_log_prob_term({p0}, {x})",
                    vjp=(("+=", "{weight} * scalar.probit_score({p0}, {x})"),),
                    value_vjp=("+=", "{weight} * scalar.probit_log_odds({p0})"), st_density="norm_pdf")),
    "normal": Distribution(
        "Normal", ("loc", "scale"), reparameterized=("loc", "scale"), noise="normal", positive=("scale",),
        gaussian=True, likelihood="gaussian_nll",
        kernels=dict(sample="normal_sample", sample_bwd="normal_sample_bwd", log_prob="normal_log_prob",
                     log_prob_bwd="normal_log_prob_bwd",
                     lax_bwd="core.lax_normal_bwd({value}, {scale}, {eps}, {L}, {rw}, {ctx}, {phi}, {H}, {gloc}, "
                             "{gscale}, {gphi}, True)",
                     # below a REBAR node: the reparameterised term of the control-variate rows
                     relax_rows_bwd="rebar.relax_rows_normal_bwd({flag}, {noise}, {g}, {g0}, {g1})"),
        scalar=dict(sample="cast(scalar.normal_reparam({p0}, {p1}, {noise}))",
                    log_prob="-scalar.gaussian_nll_term({x}, {p0}, {p1})",
                    vjp_pre="{q}, {w} = scalar.gaussian_nll_grad({x}, {p0}, {p1})",
                    vjp=(("+=", "{weight} * {q}"), ("-=", "{weight} * {w}")), value_vjp=("-=", "{weight} * {q}"))),
    "laplace": Distribution(
        "Laplace", ("loc", "scale"), reparameterized=("loc", "scale"), noise="uniform", positive=("scale",),
        kernels=dict(sample="laplace_sample", sample_bwd="laplace_sample_bwd", log_prob="laplace_log_prob",
                     log_prob_bwd="laplace_log_prob_bwd")),
    "poisson": Distribution(
        "Poisson", ("rate",), discrete=True, unbounded=True, noise="uniform", positive=("rate",),
        kernels=dict(sample="poisson_sample", log_prob="poisson_log_prob", log_prob_bwd="poisson_log_prob_bwd")),
    "categorical": Distribution(
        "Categorical", ("logits",), discrete=True, noise="gumbel", relaxation="gumbel_softmax",
        straight_through=True, grouped=True, likelihood="softmax_xent",
        kernels=dict(sample="categorical_sample", log_prob="categorical_log_prob",
                     log_prob_bwd="categorical_log_prob_bwd", relaxed_sample="gumbel_softmax_sample",
                     reinmax_bwd="reinmax_categorical_bwd", gumbel_rao_bwd="gumbel_rao_categorical_bwd",
                     gapped_st_bwd="gapped_st_categorical_bwd",
                     relaxed_bwd="gumbel_softmax_bwd",
                     cat_antithetic_sample="cat_antithetic_sample", cat_disarm_grad="cat_disarm_grad",
                     cat_disarm_grad_marginal="cat_disarm_grad_marginal", us_forward="us_forward", us_grad="us_grad",
                     enum="rows.enum_categorical({stride}, {K}, {value})",
                     relax_sample="relax.relax_categorical_sample({a}, {u}, {K}, {value})",
                     relax_bwd="relax.relax_categorical_bwd({a}, {u}, {v}, {value}, {L}, {rw}, {ctx}, {phi}, {H}, {K}, "
                               "{ga}, {gphi}, True)",
                     rebar_forward="rebar.rebar_categorical_forward({a}, {u}, {v}, {stride}, {off}, {span}, {configs}, "
                                   "{K}, {lam}, {delta}, {value})",
                     rebar_bwd="rebar.rebar_categorical_bwd({a}, {u}, {v}, {L}, {rw}, {g}, {stride}, {off}, {span}, "
                               "{configs}, {K}, {eta}, {loglam}, {delta}, {ga}, {geta}, {glam}, {train})",
                     relax_rows="rebar.relax_rows_categorical({flag}, {a}, {noise}, {K}, {loglam}, {value})",
                     relax_rows_bwd="rebar.relax_rows_categorical_bwd({flag}, {value}, {K}, {loglam}, {g}, {ga})")),
}
