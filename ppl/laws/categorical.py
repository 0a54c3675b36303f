"""Categorical units: one-hot groups of K columns, softmax(logits) per group."""
from .law import Distribution

LAWS = (
    Distribution(
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
                     relax_rows_bwd="rebar.relax_rows_categorical_bwd({flag}, {value}, {K}, {loglam}, {g}, {ga})"),
        kind="categorical", constructor="Categorical", support="onehot",
        doc="Groups of one-hot categorical units: logits of width G * classes, the value one-hot per group "
            "of `classes` columns, softmax(logits) per group; -log p is ppl.categorical_nll."),
)
