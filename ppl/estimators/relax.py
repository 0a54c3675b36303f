"""RELAX for Bernoulli and Categorical nodes (Grathwohl et al. 2018): the score function with a
learned control variate c_phi evaluated at the relaxed variable z and at the conditional z~,
plus the reparameterised correction. f need not be differentiable, so it serves black-box
costs. c_phi (a small tanh network on z and the node's data inputs) lives in the program's
parameters as 'relax.<node>' and is trained by the same optimiser on the estimator's variance
(its gradient is derived and implemented in ppl.kernels.cpu_relax)."""
from ppl.kernels.cpu_relax import relax_size
from ppl.ops import render

from .base import Estimator, Rule, register


def control_variate(lw, node, opts, prefix: str):
    """RELAX's and LAX's c_phi for `node`: (H, ctx, phi, gphi): its hidden width (option
    'hidden'), the node's data inputs side by side (the network's context; empty2 when there are
    none) and the parameter '<prefix>.<node>' with its gradient view."""
    H = int(opts["hidden"])
    if H < 1:
        raise ValueError(f"{prefix} on '{node.name}': hidden must be >= 1, got {H}")
    feats = lw.baseline_inputs(node)
    C = sum(x.width for x in feats)
    if C:
        ctx = lw.buf2(f"ctx_{node.name}", C)
        off = 0
        for x in feats:
            lw.emit(f"relax.copy_cols({lw.v(x)}, {ctx}, {off})")
            off += x.width
    else:
        ctx = lw.empty2
    size = relax_size(node.width, C, H)
    init = lw.rng.normal(0.0, 0.1, size)
    init[-1] = 0.0
    phi, gphi = lw.param(f"{prefix}.{node.name}", (size,), init)
    return H, ctx, phi, gphi


@register
class Relax(Estimator):
    name = "relax"
    rules = (Rule("*", 50, lambda i: i.dist.antithetic and not i.differentiable,
                  lambda i: f"a path to its costs goes through the gradient-free black box '{i.blocked_by}': "
                            f"RELAX learns a control variate without differentiating f"),)

    def not_measured(self, info):
        if info.differentiable:
            return ("differentiable paths: its control variate is trained with the model, so its variance at "
                    "initialisation is no guide (Grathwohl et al. 2018); REBAR is measured instead")
        return None
    param_prefixes = ("relax.",)
    about = 'score function with a learned control variate; serves black-box costs'
    cite = 'Grathwohl, Choi, Wu, Roeder & Duvenaud 2018, "Backpropagation through the void", ICLR'
    options = {"hidden": 16}

    def check(self, info):
        if "relax_sample" not in info.dist.kernels:
            return f"{info.dist.name} has no RELAX implementation (logit-link Bernoulli and Categorical do)"
        return None

    def forward(self, lw, node, opts):
        u = lw.noise(node, "uniform", 0)
        v = lw.noise(node, "uniform", 1)
        lw.record_noise(node, (u, v), "uniform")
        (a,) = lw.param_values(node)
        lw.emit(render(lw.dist(node).kernels["relax_sample"], a=a, u=u, K=node.attrs.get("K"), value=lw.v(node)))

    def backward(self, lw, node, opts):
        (ga,) = lw.param_grads(node)
        if ga == lw.empty2:
            return
        H, ctx, phi, gphi = control_variate(lw, node, opts, "relax")
        u, v = lw.noise_of[node]
        (a,) = lw.param_values(node)
        L = lw.downstream_L(node)
        lw.emit(render(lw.dist(node).kernels["relax_bwd"], a=a, u=u, v=v, value=lw.v(node), L=L, rw=lw.rw, ctx=ctx,
                       phi=phi, H=H, K=node.attrs.get("K"), ga=ga, gphi=gphi))
