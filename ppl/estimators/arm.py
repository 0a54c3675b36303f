"""ARM and DisARM for Bernoulli nodes: antithetic pairs of draws sharing one uniform, two
evaluations of the node's downstream costs, unbiased (Yin & Zhou 2019; Dong, Mnih & Tucker
2020); local ARM / DisARM, their form for the importance-weighted bound, below. The pair is two
rows of the fused step (the node's configuration digit), so the downstream sub-graph is evaluated
for both in the same pass; the other parameters receive the average of the pair's gradients. The
same draw and estimate give the row-fused step's code: there the pair is two configurations of a
drawn row, and the kernels' bodies read the partner's locals (kernels/rowcode.py)."""
from ppl.calls import KERNELS, per_row
from .protocol import NO_GRAD, REGISTRY, Estimator, Rule, register


class _Antithetic(Estimator):
    branch_rows = True
    integrated = True   # DisARM: the pair's uniform integrated out given the two draws; ARM: False

    def check(self, info):
        if not info.dist.antithetic:
            return f"{info.dist.name} is not a logit-link Bernoulli"
        return None

    def expansion(self, info, opts):
        return 2

    def draw(self, ctx):
        u = ctx.noise("uniform")
        (a,) = ctx.params()
        stride, off, span = ctx.rows.slot
        ctx.call(KERNELS.antithetic.antithetic_bernoulli, a, u, stride, off, span, ctx.value())
        if not ctx.rows.shared:   # a digit of its own: each row of the pair carries half the drawn row's weight
            ctx.call(KERNELS.antithetic.scale_rows, ctx.rows.weights, 0.5)

    def estimate(self, ctx):
        (ga,) = ctx.param_grads()
        if ga is NO_GRAD:
            return
        L, rw = ctx.downstream_cost(), ctx.rows.weights
        stride, off, span = ctx.rows.slot
        digits = ctx.rows.enumerated_below
        if digits:
            # each member's rows carry p(c | its value) for the enumerated nodes below: compare the
            # members' signals marginalised over those digits (see kernels/families/antithetic.py)
            strides, sizes = digits
            if not self.integrated:
                ctx.call(KERNELS.antithetic.arm_grad_marginal, ctx.drawn_noise(), L, rw, stride, off, span,
                         strides, sizes, ga)
            else:
                (a,) = ctx.params()
                ctx.call(KERNELS.antithetic.disarm_grad_marginal, a, ctx.value(), L, rw, stride, off, span,
                         strides, sizes, ga)
        elif not self.integrated:
            ctx.call(KERNELS.antithetic.arm_grad, ctx.drawn_noise(), L, rw, stride, off, span, ga)
        else:
            (a,) = ctx.params()
            ctx.call(KERNELS.antithetic.disarm_grad, a, ctx.value(), L, rw, stride, off, span, ga)


@register
class ARM(_Antithetic):
    name = "arm"
    integrated = False

    def not_measured(self, info):
        if REGISTRY["disarm"].applies(info) is None:
            return ("DisARM applies: it is ARM with the pair's uniform integrated out (Dong, Mnih & Tucker 2020), "
                    "never more variance for the same rows")
        return None
    about = 'antithetic pair of Bernoulli draws sharing one uniform'
    cite = 'Yin & Zhou 2019, "ARM: Augment-REINFORCE-merge gradient for stochastic binary networks", ICLR'


@register
class DisARM(_Antithetic):
    name = "disarm"
    rules = (Rule("unbiased", 60, lambda i: i.dist.antithetic,
                  lambda i: "Bernoulli with differentiable paths: DisARM's antithetic pair is unbiased and has "
                            "lower variance than the score function, for two evaluations of the downstream graph; "
                            "it trained to the highest test ELBO of the unbiased estimators at equal evaluations "
                            "at the least cost per step (docs/benchmarks/estimators.md, the estimator study)"),)
    about = "ARM with the pair's uniform integrated out given the two draws"
    cite = 'Dong, Mnih & Tucker 2020, "DisARM: an antithetic gradient estimator for binary latent variables", NeurIPS'


class _Local(_Antithetic):
    """Local ARM / DisARM for the importance-weighted bound (Dong, Mnih & Tucker 2020, the
    multi-sample section): each of a data row's K draws gets its antithetic partner (one more
    configuration row, evaluated in the same pass); the pair's signal for draw k is the bound
    with draw k's total replaced by the partner's, against the bound itself (rows.iwae_swap_one),
    so draw k's term is ARM / DisARM for E over draw k with the other K - 1 draws fixed. The
    partners' rows do not enter the bound (their weights are 0); each pair weighs 1 / B. Each pair
    has a digit of its own (the bound's terms read it)."""
    objectives = ("iwae",)
    branch_rows = False

    def estimate(self, ctx):
        (ga,) = ctx.param_grads()
        if ga is NO_GRAD:
            return
        ell, _ = ctx.learning_signal()
        stride = ctx.rows.digit[0]
        L = ctx.buffer("Lloc")
        rows = ctx.rows   # its totals: the draws' totals of costs (-log w), the bound's terms
        ctx.call(KERNELS.rows.iwae_swap_one, rows.totals, ell, rows.samples, rows.configs, stride, L)
        pw = ctx.buffer("pw")
        ctx.call(KERNELS.rows.config_weights, ctx.rows.configs, 0, stride, per_row(0.5), pw)
        if not self.integrated:
            ctx.call(KERNELS.antithetic.arm_grad, ctx.drawn_noise(), L, pw, stride, 1, 2, ga)
        else:
            (a,) = ctx.params()
            ctx.call(KERNELS.antithetic.disarm_grad, a, ctx.value(), L, pw, stride, 1, 2, ga)

    def scalar_support(self, node, opts):
        return "the importance-weighted bound couples a data row's draws"


@register
class LocalARM(_Local):
    name = "local_arm"
    integrated = False

    def not_measured(self, info):
        if REGISTRY["local_disarm"].applies(info) is None:
            return "local DisARM applies: ARM's pair with the uniform integrated out (Dong, Mnih & Tucker 2020)"
        return None
    about = 'ARM for the importance-weighted bound, a pair per draw'
    cite = 'Yin & Zhou 2019 (ICLR), in the multi-sample form of Dong, Mnih & Tucker 2020 (NeurIPS)'


@register
class LocalDisARM(_Local):
    name = "local_disarm"
    about = 'DisARM for the importance-weighted bound, a pair per draw'
    cite = 'Dong, Mnih & Tucker 2020, "DisARM", NeurIPS (its multi-sample, importance-weighted form)'
