"""RELAX for Bernoulli and Categorical nodes (Grathwohl et al. 2018): the score function with a
learned control variate c_phi evaluated at the relaxed variable z and at the conditional z~,
plus the reparameterised correction. f need not be differentiable, so it serves black-box
costs. c_phi (a small tanh network on z and the node's data inputs) lives in the program's
parameters as 'relax.<node>' and is trained by the same optimiser on the estimator's variance
(its gradient is derived and implemented in ppl.kernels.families.relax)."""
from ppl.kernels.cpu.relax import relax_size
from ppl.calls import KERNELS, render

from .protocol import NO_GRAD, Estimator, Rule, register


def control_variate(ctx, prefix: str):
    """RELAX's and LAX's c_phi for the context's node: (H, feats, phi, gphi): its hidden width
    (option 'hidden'), the node's data inputs side by side (the network's context; NO_GRAD when
    there are none) and the parameter '<prefix>.<node>' with its gradient view."""
    node = ctx.node
    H = int(ctx.options["hidden"])
    if H < 1:
        raise ValueError(f"{prefix} on '{node.name}': hidden must be >= 1, got {H}")
    inputs = ctx.data_inputs()
    C = sum(w for _, w in inputs)
    if C:
        feats = ctx.buffer("ctx", C)
        off = 0
        for x, w in inputs:
            ctx.call(KERNELS.relax.copy_cols, x(), feats, off)
            off += w
    else:
        feats = NO_GRAD
    size = relax_size(node.width, C, H)

    def init(rng):
        phi = rng.normal(0.0, 0.1, size)
        phi[-1] = 0.0
        return phi
    phi, gphi = ctx.parameter(prefix, (size,), init, name=f"{prefix}.{node.name}")
    return H, feats, phi, gphi


@register
class Relax(Estimator):
    name = "relax"
    rules = (Rule("*", 50, lambda i: i.dist.antithetic and not i.differentiable,
                  lambda i: f"a path to its costs goes through the gradient-free black box '{i.blocked_by}': "
                            f"RELAX learns a control variate without differentiating f"),)

    def not_measured(self, info):
        if info.differentiable:
            return ("differentiable paths: its control variate is trained with the model, so its variance at "
                    "initialisation is no guide (Grathwohl et al. 2018)")
        return None
    param_prefixes = ("relax.",)
    about = 'score function with a learned control variate; serves black-box costs'
    cite = 'Grathwohl, Choi, Wu, Roeder & Duvenaud 2018, "Backpropagation through the void", ICLR'
    options = {"hidden": 16}
    kernels = {
        "bernoulli": dict(
            relax_sample=KERNELS.relax.relax_sample.on("a", "u", "value"),
            relax_bwd=KERNELS.relax.relax_bwd.on("a", "u", "v", "value", "L", "rw", "ctx", "phi", "H", "ga", "gphi",
                                                 True)),
        "categorical": dict(
            relax_sample=KERNELS.relax.relax_categorical_sample.on("a", "u", "K", "value"),
            relax_bwd=KERNELS.relax.relax_categorical_bwd.on("a", "u", "v", "value", "L", "rw", "ctx", "phi", "H",
                                                             "K", "ga", "gphi", True)),
    }

    def check(self, info):
        if info.dist.kind not in self.kernels:
            return f"{info.dist.name} has no RELAX implementation (logit-link Bernoulli and Categorical do)"
        return None

    def draw(self, ctx):
        u = ctx.noise("uniform")
        ctx.noise("uniform")   # v: the conditional relaxation's, read by the estimate
        (a,) = ctx.params()
        ctx.call(render(self.kernels[ctx.law.kind]["relax_sample"], a=a, u=u, K=ctx.node.attrs.get("K"),
                        value=ctx.value()))

    def estimate(self, ctx):
        (ga,) = ctx.param_grads()
        if ga is NO_GRAD:
            return
        H, feats, phi, gphi = control_variate(ctx, "relax")
        u, v = ctx.drawn_noise()
        (a,) = ctx.params()
        L = ctx.downstream_cost()
        bwd = self.kernels[ctx.law.kind]["relax_bwd"]
        ctx.call(render(bwd, a=a, u=u, v=v, value=ctx.value(), L=L, rw=ctx.rows.weights, ctx=feats, phi=phi, H=H,
                        K=ctx.node.attrs.get("K"), ga=ga, gphi=gphi))
