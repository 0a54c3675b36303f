"""ARMS (Dimitriev & Zhou 2021, "ARMS: Antithetic-REINFORCE-Multi-Sample gradient for binary
variables", ICML), written on the public estimator protocol (estimators/context.py).

Per unit of a logit-link Bernoulli node, n >= 2 draws coupled by the Dirichlet copula (negatively
dependent, each marginally Bernoulli(p)): the drawn row becomes n configuration rows, each
weighing 1 / n in the objective, and the graph below runs on all of them in the same pass. The
estimate is REINFORCE with the leave-one-out baseline over the n draws, divided by 1 - rho (rho:
the correlation of two coupled draws, known in closed form), which makes it unbiased:
    g_a = 1 / ((n - 1) (1 - rho)) sum_i (f(b_i) - mean_k f(b_k)) (b_i - p).
The copula is oriented per unit by the sign of its logit, so that the rarer outcome is the one
two draws seldom share (never for min(p, 1 - p) <= 2^-(n-1)); any fixed orientation is unbiased
too. At n = 2 the coupling is the antithetic pair (u, 1 - u) and the estimate is DisARM's, on the
same noise (tests/estimators/test_arms.py). Kernels and the derivation: kernels/families/arms.py.
With enumerated nodes below, each draw's cost is first marginalised over their rows
(Rows.enumerated_below), as DisARM does.
"""
import numbers

from ..kernels.cpu.core import arms_draw, arms_grad, arms_grad_marginal
from .protocol import register
from .protocol import NO_GRAD, Estimator

MAX_DRAWS = 16


@register
class ARMS(Estimator):
    name = "arms"
    options = {"n": 4}
    about = "n antithetic Bernoulli draws per unit (Dirichlet copula), leave-one-out REINFORCE, debiased"
    cite = ('Dimitriev & Zhou 2021, "ARMS: Antithetic-REINFORCE-Multi-Sample gradient for binary variables", '
            'ICML')

    branch_rows = True
    own_draws = True   # its n coupled draws per unit: the drawn row is the first of them

    def check(self, info):
        if not info.dist.antithetic:
            return f"{info.dist.name} is not a logit-link Bernoulli"
        return None

    def resolve(self, info, opts):
        n = opts["n"]
        if not isinstance(n, numbers.Integral) or isinstance(n, bool) or not 2 <= n <= MAX_DRAWS:
            raise ValueError(f"arms option n (coupled draws per unit) must be an integer from 2 to {MAX_DRAWS}, "
                             f"got {n!r}; use n=2 for DisARM's pair")
        return {**opts, "n": int(n)}

    def rows(self, info, options):
        return options["n"]

    def draw(self, ctx):
        n = ctx.options["n"]
        u = ctx.noise("uniform", width=(n - 1) * ctx.node.width)
        ctx.call(arms_draw, *ctx.params(), u, *ctx.rows.slot, n, ctx.value(), ctx.rows.weights)

    def estimate(self, ctx):
        (g,) = ctx.param_grads()
        if g is NO_GRAD:
            return
        args = (*ctx.params(), ctx.value(), ctx.downstream_cost(), ctx.rows.weights, *ctx.rows.slot,
                ctx.options["n"])
        below = ctx.rows.enumerated_below
        if below is None:
            ctx.call(arms_grad, *args, g)
        else:   # their rows weigh p(c | the draw): each draw's cost marginalised over them first
            ctx.call(arms_grad_marginal, *args, *below, g)
