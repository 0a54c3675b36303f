"""Categorical units: one-hot groups of K columns, softmax(logits) per group, or given by
probabilities, probs= (normalised per group; kernels/families/probs.py)."""
from ..calls import KERNELS
from .law import Distribution

LAWS = (
    Distribution(
        "Categorical", ("logits",), discrete=True, noise="gumbel", relaxation="gumbel_softmax",
        straight_through=True, grouped=True, likelihood="softmax_xent",
        kernels=dict(sample="categorical_sample", log_prob="categorical_log_prob",
                     log_prob_bwd="categorical_log_prob_bwd", relaxed_sample="gumbel_softmax_sample",
                     relaxed_bwd="gumbel_softmax_bwd", enum=KERNELS.rows.enum_categorical.on("stride", "K", "value")),
        kind="categorical", constructor="Categorical", support="onehot", by_param={"probs": "categorical_probs"},
        doc="Groups of one-hot categorical units, given by exactly one of logits or probs (width G * classes; without classes, one group), "
            "the value one-hot per group of `classes` columns: softmax(logits) per group (-log p is "
            "ppl.categorical_nll), or probs normalised per group, probs_k / sum_i probs_i (as torch does): "
            "non-negative, a positive sum per group; a class of probability 0 is never drawn (NaN, a negative "
            "value or a group summing to 0 are refused in the step)."),
    Distribution(
        "Categorical(probs)", ("probs",), discrete=True, noise="uniform", straight_through=True, grouped=True,
        constraints={"probs": "weights"},
        kernels=dict(sample="categorical_probs_sample", log_prob="categorical_probs_log_prob",
                     log_prob_bwd="categorical_probs_log_prob_bwd",
                     enum=KERNELS.rows.enum_categorical.on("stride", "K", "value")),
        kind="categorical_probs", support="onehot",
        doc="Groups of one-hot categorical units, P(k) = probs_k / sum_i probs_i per group (Categorical's "
            "probs=): the inverse CDF of one uniform per group."),
)
