"""Pathwise (reparameterisation) gradients: z = loc + scale * eps, eps ~ N(0, 1)
(Kingma & Welling 2014; Rezende et al. 2014); the cotangent of z flows through dz/dloc = 1 and
dz/dscale = eps. Unbiased. Under the IWAE bound the cotangents of a draw's costs are its
normalised importance weight / B (the lowering seeds them), so the same backward pass is the
bound's reparameterised gradient (Burda et al. 2016)."""
from .protocol import NO_GRAD, Estimator, Rule, register


@register
class Pathwise(Estimator):
    name = "pathwise"
    rules = (Rule("*", 20, lambda i: i.dist.has_rsample and i.differentiable,
                  lambda i: "reparameterisable and every path to its costs is differentiable"),)
    about = 'reparameterisation z = loc + scale * eps'
    cite = 'Kingma & Welling 2014, "Auto-encoding variational Bayes", ICLR; Rezende, Mohamed & Wierstra 2014, ICML'
    objectives = ("elbo", "iwae")   # IWAE: through the draws' normalised weights (rw)
    passes_value_grad = True
    shares_rows = True   # its backward is linear in the value's cotangent, per row
    hard_forward = False

    def check(self, info):
        if not info.dist.has_rsample:
            return f"{info.dist.name} is not reparameterisable"
        if not info.differentiable:
            return f"a path to its costs goes through the gradient-free black box '{info.blocked_by}'"
        return None

    def draw(self, ctx):
        ctx.sample()

    def estimate(self, ctx):
        gv = ctx.cotangent()
        if gv is NO_GRAD:
            return
        ins = [ctx.drawn_noise(), gv]
        if ctx.law.implicit:   # the implicit reparameterisation gradient reads the parameters and the draw
            ins = [*ctx.params(), ctx.value(), *ins]
        ctx.law_call("sample_bwd", ins, ctx.param_grads())
