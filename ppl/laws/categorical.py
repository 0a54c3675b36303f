"""Categorical units: one-hot groups of K columns, softmax(logits) per group."""
from .law import Distribution

LAWS = (
    Distribution(
        "Categorical", ("logits",), discrete=True, noise="gumbel", relaxation="gumbel_softmax",
        straight_through=True, grouped=True, likelihood="softmax_xent",
        kernels=dict(sample="categorical_sample", log_prob="categorical_log_prob",
                     log_prob_bwd="categorical_log_prob_bwd", relaxed_sample="gumbel_softmax_sample",
                     relaxed_bwd="gumbel_softmax_bwd", enum="rows.enum_categorical({stride}, {K}, {value})"),
        kind="categorical", constructor="Categorical", support="onehot",
        doc="Groups of one-hot categorical units: logits of width G * classes, the value one-hot per group "
            "of `classes` columns, softmax(logits) per group; -log p is ppl.categorical_nll."),
)
