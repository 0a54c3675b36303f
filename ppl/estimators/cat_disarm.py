"""Categorical DisARM (Dong, Mnih & Tucker 2021, "Coupled gradient estimators for discrete latent
variables", NeurIPS): the importance-weighted DisARM estimator on the stick-breaking antithetic
coupling, for Categorical nodes (each group of K classes).

Each drawn row becomes a pair of rows (the node's configuration digit) sharing one uniform per
class: x and its partner y, each marginally Categorical(softmax(a)), coupled by stick breaking
over the classes in ascending order of their logits (kernels/families/cat_antithetic.py). The
logits receive 1/2 w (f(x) - f(y)) (e_x - e_y), w = pi(x) pi(y) / q(x, y), f the downstream costs of
each member: unbiased, 0 where the pair agrees, and DisARM itself for K = 2. Like DisARM it
estimates the ELBO; the other parameters receive the average of the pair's gradients."""
from ppl.calls import KERNELS
from .protocol import NO_GRAD, Estimator, register


@register
class CatDisARM(Estimator):
    name = "cat_disarm"
    about = "antithetic pair of categorical draws (stick-breaking coupling), importance-weighted DisARM"
    cite = ('Dong, Mnih & Tucker 2021, "Coupled gradient estimators for discrete latent variables", NeurIPS '
            '(its importance-weighted DisARM on the stick-breaking coupling)')

    kernels = {"categorical": dict(cat_antithetic_sample="cat_antithetic_sample", cat_disarm_grad="cat_disarm_grad",
                                   cat_disarm_grad_marginal="cat_disarm_grad_marginal")}

    branch_rows = True

    def check(self, info):
        if info.dist.kind not in self.kernels:
            return f"{info.dist.name} has no coupled antithetic pair (Categorical does; for Bernoulli use 'disarm')"
        return None

    def expansion(self, info, opts):
        return 2

    def draw(self, ctx):
        u = ctx.noise("uniform")
        (a,) = ctx.params()
        ctx.law_call("cat_antithetic_sample", [a, u, *ctx.rows.slot], [ctx.value()])
        if not ctx.rows.shared:   # a digit of its own: each row of the pair carries half the drawn row's weight
            ctx.call(KERNELS.antithetic.scale_rows, ctx.rows.weights, 0.5)

    def estimate(self, ctx):
        (ga,) = ctx.param_grads()
        if ga is NO_GRAD:
            return
        (a,) = ctx.params()
        L = ctx.downstream_cost()
        args = [a, ctx.value(), L, ctx.rows.weights, *ctx.rows.slot]
        digits = ctx.rows.enumerated_below
        if digits:
            # each member's rows carry p(c | its value) for the enumerated nodes below: compare the
            # members' signals marginalised over those digits (see kernels/families/antithetic.py)
            ctx.law_call("cat_disarm_grad_marginal", [*args, *digits], [ga])
        else:
            ctx.law_call("cat_disarm_grad", args, [ga])
