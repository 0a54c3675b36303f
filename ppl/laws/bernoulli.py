"""Bernoulli units: P(1) = sigmoid(logits) (logistic noise), or with link="probit" P(1) = Phi(logits),
or given by probabilities, probs= (uniform noise: 1[u < p]; kernels/families/probs.py)."""
from ..calls import KERNELS
from .law import Distribution

LAWS = (
    Distribution(
        "Bernoulli", ("logits",), discrete=True, noise="logistic", relaxation="concrete",
        straight_through=True, antithetic=True, likelihood="bernoulli_nll",
        kernels=dict(sample="bernoulli_sample", sample_rep="bernoulli_sample_rep", log_prob="bernoulli_log_prob",
                     log_prob_bwd="bernoulli_log_prob_bwd",
                     log_prob_keep="bernoulli_log_prob_keep", log_prob_kept_bwd="bernoulli_log_prob_kept_bwd",
                     relaxed_sample="binary_concrete_sample", relaxed_bwd="binary_concrete_bwd",
                     enum=KERNELS.rows.enum_bernoulli.on("stride", "value")),
        kind="bernoulli", constructor="Bernoulli", support="binary",
        variants={"link": {"logit": "bernoulli", "probit": "bernoulli_probit"}},
        by_param={"probs": "bernoulli_probs"},
        doc="Independent binary units, given by exactly one of logits or probs. link=\"logit\": P(1) = sigmoid(a) "
            "(logistic noise); link=\"probit\": P(1) = Phi(a) (Gaussian noise); probs=p: P(1) = p, each within "
            "[0, 1] (0 and 1 are certain outcomes; NaN or values outside are refused in the step); -log p is "
            "ppl.bernoulli_nll (logit link)."),
    Distribution(
        "Bernoulli(probit)", ("logits",), discrete=True, noise="normal", straight_through=True,
        kernels=dict(sample="probit_sample", log_prob="probit_log_prob", log_prob_bwd="probit_log_prob_bwd",
                     enum=KERNELS.rows.enum_bernoulli.on("stride", "value")),
        kind="bernoulli_probit", support="binary",
        doc="Independent binary units, P(1) = Phi(logits) (the probit link of Bernoulli)."),
    Distribution(
        "Bernoulli(probs)", ("probs",), discrete=True, noise="uniform", straight_through=True,
        constraints={"probs": "unit"},
        kernels=dict(sample="bernoulli_probs_sample", log_prob="bernoulli_probs_log_prob",
                     log_prob_bwd="bernoulli_probs_log_prob_bwd",
                     enum=KERNELS.rows.enum_bernoulli.on("stride", "value")),
        kind="bernoulli_probs", support="binary",
        doc="Independent binary units, P(1) = probs in [0, 1] (Bernoulli's probs=): b = 1[u < p]."),
)
