"""Bernoulli units: P(1) = sigmoid(logits) (logistic noise), or with link="probit" P(1) = Phi(logits)."""
from .law import Distribution

_BERNOULLI_SCALAR_VJP = (("+=", "{weight} * scalar.bernoulli_score({p0}, {x})"),)

LAWS = (
    Distribution(
        "Bernoulli", ("logits",), discrete=True, noise="logistic", relaxation="concrete",
        straight_through=True, antithetic=True, likelihood="bernoulli_nll",
        kernels=dict(sample="bernoulli_sample", sample_rep="bernoulli_sample_rep", log_prob="bernoulli_log_prob",
                     log_prob_bwd="bernoulli_log_prob_bwd",
                     log_prob_keep="bernoulli_log_prob_keep", log_prob_kept_bwd="bernoulli_log_prob_kept_bwd",
                     relaxed_sample="binary_concrete_sample", relaxed_bwd="binary_concrete_bwd",
                     enum="rows.enum_bernoulli({stride}, {value})"),
        scalar=dict(sample="scalar.threshold({p0}, {noise})", log_prob="scalar.bernoulli_log_prob_term({p0}, {x})",
                    vjp=_BERNOULLI_SCALAR_VJP, value_vjp=("+=", "{weight} * {p0}"), st_density="sigmoid_grad"),
        kind="bernoulli", constructor="Bernoulli", support="binary",
        variants={"link": {"logit": "bernoulli", "probit": "bernoulli_probit"}},
        doc="Independent binary units. link=\"logit\": P(1) = sigmoid(a) (logistic noise); "
            "link=\"probit\": P(1) = Phi(a) (Gaussian noise); -log p is ppl.bernoulli_nll (logit link)."),
    Distribution(
        "Bernoulli(probit)", ("logits",), discrete=True, noise="normal", straight_through=True,
        kernels=dict(sample="probit_sample", log_prob="probit_log_prob", log_prob_bwd="probit_log_prob_bwd",
                     enum="rows.enum_bernoulli({stride}, {value})"),
        scalar=dict(sample="scalar.threshold({p0}, {noise})", log_prob="scalar.probit_log_prob_term({p0}, {x})",
                    vjp=(("+=", "{weight} * scalar.probit_score({p0}, {x})"),),
                    value_vjp=("+=", "{weight} * scalar.probit_log_odds({p0})"), st_density="norm_pdf"),
        kind="bernoulli_probit", support="binary",
        doc="Independent binary units, P(1) = Phi(logits) (the probit link of Bernoulli)."),
)
