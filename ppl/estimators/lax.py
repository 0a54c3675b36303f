"""LAX for Normal nodes (Grathwohl et al. 2018, the continuous case of RELAX): with
z = loc + scale * eps,
  g = [f(z) - c_phi(z)] d log q(z | theta) / d theta + d c_phi(loc + scale * eps) / d theta,
the score function of f - c_phi plus the reparameterised gradient of the control variate. It is
unbiased for any c_phi and reads f as a number per row, so it serves costs behind a
gradient-free black box (and applies where f is differentiable too). c_phi is RELAX's network
(a tanh layer on z and the node's data inputs) evaluated at z itself, a parameter
'lax.<node>' trained by the same optimiser on the exact gradient of the estimator's variance
(kernels/families/lax.py)."""
from ppl.calls import KERNELS, render

from .protocol import NO_GRAD, Estimator, register
from .relax import control_variate


@register
class Lax(Estimator):
    name = "lax"

    def not_measured(self, info):
        return ("its control variate c_phi is trained with the model, so its variance at initialisation is no "
                "guide (as RELAX's; Grathwohl et al. 2018)")
    param_prefixes = ("lax.",)
    about = 'score function of f - c_phi plus the reparameterised gradient of a learned c_phi; Normal nodes behind black boxes'
    cite = 'Grathwohl, Choi, Wu, Roeder & Duvenaud 2018, "Backpropagation through the void", ICLR (LAX)'
    options = {"hidden": 16}
    hard_forward = False   # the value is the continuous draw z
    kernels = {"normal": dict(lax_bwd=KERNELS.core.lax_normal_bwd.on("value", "scale", "eps", "L", "rw", "ctx", "phi",
                                                                     "H", "gloc", "gscale", "gphi", True))}

    def check(self, info):
        if info.dist.kind not in self.kernels:
            alt = "; for discrete nodes use 'relax'" if info.dist.discrete else ""
            return f"{info.dist.name} has no LAX implementation (Normal nodes do){alt}"
        return None

    def draw(self, ctx):
        ctx.sample()

    def estimate(self, ctx):
        gloc, gscale = ctx.param_grads()
        if gloc is NO_GRAD and gscale is NO_GRAD:
            return
        H, feats, phi, gphi = control_variate(ctx, "lax")
        _, scale = ctx.params()
        ctx.call(render(self.kernels[ctx.law.kind]["lax_bwd"], value=ctx.value(), scale=scale, eps=ctx.drawn_noise(),
                        L=ctx.downstream_cost(), rw=ctx.rows.weights, ctx=feats, phi=phi, H=H, gloc=gloc,
                        gscale=gscale, gphi=gphi))
