"""RELAX for Bernoulli and Categorical nodes (Grathwohl et al. 2018), in its two forms: the score
function with a learned control variate c evaluated at the relaxed variable z and at the
conditional z~, plus the reparameterised correction.

'relax' is the form of the paper's SBN experiments: c(z) = eta f(sigma_lam(z)) + r(z), REBAR's
relaxed term (its configuration rows: ppl/estimators/rebar.py) plus a learned residual r; it
needs f differentiable. 'relax_blackbox' is the form for costs behind a gradient-free black box:
c(z) = r(z) alone, so f is only evaluated. 'relax' named at a node whose costs lie behind a black
box runs as 'relax_blackbox' (`form`), and explain() says so. r (a small tanh network on z and
the node's data inputs) lives in the program's parameters as 'relax.<node>'; it, eta
('relax.<node>.eta') and, when asked, the temperature are trained by the same optimiser on the
estimator's variance (the gradients are derived and implemented in ppl.kernels.families.relax)."""
from ppl.kernels.cpu.relax import relax_size
from ppl.calls import KERNELS, render

from .protocol import NO_GRAD, Estimator, Rule, register
from .rebar import DELTA, Rebar, configs, params, slot


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
class Relax(Rebar):
    """The paper's form: REBAR's draw, rows, seeds and relaxation of the nodes below (inherited),
    and one backward kernel for the whole estimate and its variance gradients."""
    name = "relax"
    param_prefixes = ("relax.",)
    about = ("RELAX as its paper trains SBNs: REBAR's relaxed control variate plus a learned residual network; "
             "'relax_blackbox' behind black boxes")
    cite = 'Grathwohl, Choi, Wu, Roeder & Duvenaud 2018, "Backpropagation through the void", ICLR'
    options = {"temperature": 0.5, "eta": 1.0, "train": "eta", "hidden": 16}
    option_words = {"train": {"eta": "eta and the residual network, the temperature fixed: 3 rows per draw; True "
                                     "trains the temperature too, on 5"}}
    kernels = {
        "bernoulli": dict(
            Rebar.kernels["bernoulli"],
            relax_bwd=KERNELS.relax.relax_paper_bwd.on("a", "u", "v", "value", "L", "rw", "g", "stride", "off",
                                                       "span", "configs", "eta", "loglam", "delta", "ctx", "phi", "H",
                                                       "ga", "geta", "glam", "gphi", "train")),
        "categorical": dict(
            Rebar.kernels["categorical"],
            relax_bwd=KERNELS.relax.relax_paper_categorical_bwd.on("a", "u", "v", "L", "rw", "g", "stride", "off",
                                                                   "span", "configs", "K", "eta", "loglam", "delta",
                                                                   "ctx", "phi", "H", "ga", "geta", "glam", "gphi",
                                                                   "train")),
        "normal": Rebar.kernels["normal"],
    }

    def form(self, info):
        if not info.differentiable:
            return ("relax_blackbox", f"a path to its costs goes through the gradient-free black box "
                                      f"'{info.blocked_by}': RELAX's black-box form, its control variate a learned "
                                      f"network alone (f is not differentiated)")
        return None

    def check(self, info):
        if "relax_bwd" not in self.kernels.get(info.dist.kind, {}):
            return f"{info.dist.name} has no RELAX implementation (logit-link Bernoulli and Categorical do)"
        if not info.differentiable:
            return (f"a path to its costs goes through the gradient-free black box '{info.blocked_by}' (the "
                    f"paper's form differentiates f; 'relax_blackbox' does not need to)")
        return None

    def estimate(self, ctx):
        (ga,) = ctx.param_grads()
        if ga is NO_GRAD:
            return
        node, opts = ctx.node, ctx.options
        eta, geta, lam, glam = params(ctx)
        H, feats, phi, gphi = control_variate(ctx, "relax")
        u, v = ctx.drawn_noise()
        (a,) = ctx.params()
        ctx.call(render(self.kernels[ctx.law.kind]["relax_bwd"], a=a, u=u, v=v, value=ctx.value(),
                        L=ctx.downstream_cost(), rw=ctx.rows.weights, g=ctx.cotangent(), **slot(ctx),
                        configs=configs(opts), K=node.attrs.get("K"), eta=eta, loglam=lam, delta=DELTA, ctx=feats,
                        phi=phi, H=H, ga=ga, geta=geta, glam=glam, gphi=gphi, train=bool(opts["train"])))


@register
class RelaxBlackbox(Estimator):
    name = "relax_blackbox"
    rules = (Rule("*", 50, lambda i: i.dist.antithetic and not i.differentiable,
                  lambda i: f"a path to its costs goes through the gradient-free black box '{i.blocked_by}': "
                            f"RELAX's black-box form learns a control variate without differentiating f"),)

    def not_measured(self, info):
        if info.differentiable:
            return ("differentiable paths: its control variate is trained with the model, so its variance at "
                    "initialisation is no guide (Grathwohl et al. 2018)")
        return None
    param_prefixes = ("relax.",)
    about = "RELAX's black-box form: the score function with a learned control variate network; serves black boxes"
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
