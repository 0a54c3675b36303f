"""VIMCO (Mnih & Rezende 2016): the score function of the multi-sample (IWAE) bound with a
leave-one-out baseline per draw.

For data row i with K draws of total costs C_ik (-C_ik the log weight), the bound is
ell_i = -log (1/K sum_k exp(-C_ik)); its gradient is
    sum_k (ell_i - ell_i,-k) d log q(draw k) + sum_k w_ik dC_ik,
where ell_i,-k is the bound with C_ik replaced by the mean of the other K - 1 totals (it does not
depend on draw k, so the first sum stays unbiased) and w_ik the normalised weights (the second sum:
the cost cotangents the lowering seeds). The node's parameters receive
(ell_i - ell_i,-k) / B * d log p(s | a) / da per row. Needs compile(objective="iwae", samples >= 2).
"""
from ppl.calls import KERNELS
from .protocol import NO_GRAD, Estimator, Rule, register


@register
class Vimco(Estimator):
    name = "vimco"
    rules = (Rule("*", 70, lambda i: i.objective == "iwae",
                  lambda i: "multi-sample (IWAE) bound, not reparameterisable along every path: the score "
                            "function of the bound with VIMCO's leave-one-out baselines per draw"),)
    about = 'score function of the importance-weighted bound, leave-one-out baseline per draw'
    cite = 'Mnih & Rezende 2016, "Variational inference for Monte Carlo objectives", ICML'
    fuses_log_prob = True
    objectives = ("iwae",)

    def check(self, info):
        return None   # every distribution here has a log-density

    def draw(self, ctx):
        ctx.sample(reads_noise=False)

    def estimate(self, ctx):
        if all(gr is NO_GRAD for gr in ctx.param_grads()):
            return
        L, uw = ctx.learning_signal()
        wts = ctx.buffer("w")
        # the leave-one-out baselines of the bound: computed once, shared by the VIMCO nodes
        b = ctx.buffer("bvimco", shared=True)
        rows = ctx.rows
        ctx.call(KERNELS.rows.vimco_baseline, rows.totals, rows.samples, rows.configs, b, once=True)
        ctx.call(KERNELS.rows.score_weights, uw, L, b, wts)
        ctx.log_prob_vjp(wts)   # log_prob(node) costs: the same VJP (fuses_log_prob)
