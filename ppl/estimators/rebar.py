"""REBAR for Bernoulli and Categorical nodes (Tucker et al. 2017): the score function with the
control variate eta * f(sigma_lam(z~)) and its reparameterised correction, unbiased.

The hard, relaxed and conditionally relaxed evaluations of the node's downstream sub-graph are
rows of the same fused pass (see ppl.kernels.cpu.rebar for the row layout and the weights): 3 per
drawn row when the temperature is fixed (train='eta', the default: eta alone trained, its
variance gradient read off those 3 rows; False: neither), 5 when eta and the temperature are
trained (train=True: the temperature's variance gradient needs two rows more); discrete nodes
below it are relaxed in those rows. eta's tuning comes free with the 3 rows; the temperature's
costs two rows more, more than it returns at equal training time on the digits
(benchmarks/experiments/rebar_tuning.py), so it is asked for, not given. The REBAR nodes of a graph share
one row digit whose rows add up rather than multiply (lowering.rows.plan_rows): two REBAR layers take
1 + 2 + 2 rows per drawn row, not 3 x 3. eta ('rebar.<node>.eta', init 1) and the temperature
('rebar.<node>.log_temperature', init log 0.5) are parameters trained by the same optimiser on
the estimator's variance: their gradient entries hold d E|g|^2 / d(eta, log lam) (the
temperature's 0 unless train=True)."""
import math

from ppl.kernels.cpu.rebar import CONFIGS, FIXED_CONFIGS

from ppl.calls import KERNELS, fields, render

from ppl.errors import ModelError

from .protocol import NO_GRAD, Estimator, register

DELTA = 0.1  # log-temperature step of the forward difference for d Var / d log(lam)


def slot(ctx):
    """The node's place in the REBAR nodes' shared row digit, as the kernels take it."""
    (stride, span), off = ctx.rows.digit, ctx.rows.offset
    return dict(stride=stride, off=off, span=span)


def params(ctx):
    """eta and the log-temperature of a REBAR node's context: (eta, its gradient, log lam, its
    gradient), made by its draw (the context returns the same parameters to every call)."""
    opts = ctx.options
    eta, geta = ctx.parameter("eta", (1,), float(opts["eta"]))
    lam, glam = ctx.parameter("log_temperature", (1,), math.log(float(opts["temperature"])))
    return eta, geta, lam, glam


def configs(opts):
    """Configuration rows per drawn row: rows 3, 4 (temperature lam') serve only the variance
    gradient of the temperature, so REBAR with a fixed temperature evaluates 3."""
    return CONFIGS if opts["train"] is True else FIXED_CONFIGS


@register
class Rebar(Estimator):
    name = "rebar"
    param_prefixes = ("rebar.",)
    about = 'score function with a relaxed control variate and its reparameterised correction'
    cite = 'Tucker, Mnih, Maddison, Lawson & Sohl-Dickstein 2017, "REBAR", NeurIPS'
    passes_value_grad = True
    shares_rows = True   # its backward is linear in the value's cotangent, per row
    evaluates_below = True
    options = {"temperature": 0.5, "eta": 1.0, "train": "eta"}
    option_words = {"train": {"eta": "eta alone, the temperature fixed: 3 rows per draw; True trains both on 5"}}
    # its own node's kernels (rebar_*; the Bernoulli's keep dz~/da, dzt, for the backward pass and
    # read sigma(a) when a log_prob(node) cost kept it, sa), and those of the nodes below it in its
    # rows: a discrete one relaxed (relax_rows), the reparameterised term of a continuous one
    # (relax_rows_bwd)
    kernels = {
        "bernoulli": dict(
            rebar_forward=KERNELS.rebar.rebar_forward.on("a", "u", "v", "stride", "off", "span", "configs", "lam",
                                                         "delta", "value", "dzt"),
            rebar_bwd=KERNELS.rebar.rebar_bwd.on("a", "sa", "dzt", "value", "L", "rw", "g", "stride", "off", "span",
                                                 "configs", "eta", "loglam", "delta", "ga", "geta", "glam", "train"),
            relax_rows=KERNELS.rebar.relax_rows_bernoulli.on("flag", "a", "noise", "uniform", "loglam", "value"),
            relax_rows_bwd=KERNELS.rebar.relax_rows_bernoulli_bwd.on("flag", "value", "loglam", "g", "ga")),
        "categorical": dict(
            rebar_forward=KERNELS.rebar.rebar_categorical_forward.on("a", "u", "v", "stride", "off", "span",
                                                                     "configs", "K", "lam", "delta", "value"),
            rebar_bwd=KERNELS.rebar.rebar_categorical_bwd.on("a", "u", "v", "L", "rw", "g", "stride", "off", "span",
                                                             "configs", "K", "eta", "loglam", "delta", "ga", "geta",
                                                             "glam", "train"),
            relax_rows=KERNELS.rebar.relax_rows_categorical.on("flag", "a", "noise", "K", "loglam", "value"),
            relax_rows_bwd=KERNELS.rebar.relax_rows_categorical_bwd.on("flag", "value", "K", "loglam", "g", "ga")),
        "normal": dict(relax_rows_bwd=KERNELS.rebar.relax_rows_normal_bwd.on("flag", "noise", "g", "g0", "g1")),
    }

    def check(self, info):
        if "rebar_forward" not in self.kernels.get(info.dist.kind, {}):
            return f"{info.dist.name} has no REBAR implementation (logit-link Bernoulli and Categorical do)"
        if not info.differentiable:
            return (f"a path to its costs goes through the gradient-free black box '{info.blocked_by}' "
                    f"(REBAR differentiates f; 'relax' does not need to)")
        return None

    def expansion(self, info, opts):
        return configs(opts)

    def draw(self, ctx):
        node, opts = ctx.node, ctx.options
        if not opts["temperature"] > 0:
            raise ValueError(f"{self.name} on '{node.name}': temperature must be > 0, got {opts['temperature']}")
        u = ctx.noise("uniform")
        v = ctx.noise("uniform")
        _, _, lam, _ = params(ctx)
        (a,) = ctx.params()
        kernel = self.kernels[ctx.law.kind]["rebar_forward"]
        # a kernel that keeps dz~/da for the estimate
        dzt = ctx.buffer("dzt", node.width) if "dzt" in fields(kernel) else None
        ctx.call(render(kernel, a=a, u=u, v=v, **slot(ctx), configs=configs(opts), K=node.attrs.get("K"), lam=lam,
                        delta=DELTA, value=ctx.value(), dzt=dzt))

    def estimate(self, ctx):
        (ga,) = ctx.param_grads()
        if ga is NO_GRAD:
            return
        node, opts = ctx.node, ctx.options
        eta, geta, lam, glam = params(ctx)
        u, v = ctx.drawn_noise()
        (a,) = ctx.params()
        L = ctx.downstream_cost()
        bwd = self.kernels[ctx.law.kind]["rebar_bwd"]
        ctx.call(render(bwd, a=a, u=u, v=v, value=ctx.value(), L=L, rw=ctx.rows.weights, g=ctx.cotangent(),
                        **slot(ctx), configs=configs(opts), K=node.attrs.get("K"), eta=eta, loglam=lam, delta=DELTA,
                        ga=ga, geta=geta, glam=glam, train=bool(opts["train"]),
                        dzt=lambda: ctx.buffer("dzt", node.width),
                        sa=ctx.log_prob_kept))

    def seed_weights(self, ctx):
        """Its control-variate rows: loss weight 0, cost cotangent seeds +-eta (cpu_rebar)."""
        eta = params(ctx)[0]
        ctx.call(render(KERNELS.rebar.rebar_weights.on("stride", "off", "span", "configs", "eta", "rw", "cw"),
                                                       **slot(ctx),
                        configs=configs(ctx.options), eta=eta, rw=ctx.rows.weights, cw=ctx.cost_seeds()))

    # ----- stochastic nodes below a REBAR node: reparameterised (discrete ones relaxed) in its
    # control-variate rows, so the control variate is a continuous function of the relaxed value.
    # ctx is the node below's context, `above` the REBAR nodes' above it
    def forward_below(self, ctx, above):
        n, est = ctx.node, ctx.estimator
        first = above[0].node
        flag = ctx.buffer("flag")
        ctx.call(KERNELS.rows.zero1, flag)
        for cs in above:
            ctx.call(render(KERNELS.rebar.cv_flags.on("stride", "off", "span", "configs", "flag"), **slot(cs),
                            configs=configs(cs.options), flag=flag))
        loglam = params(above[0])[2]
        d = ctx.law
        below = self.kernels.get(d.kind, {})
        if not d.discrete and not est.passes_value_grad and "relax_rows_bwd" not in below:
            raise ModelError(f"{d.name} '{n.name}' (estimator '{est.name}') cannot sit below the "
                             f"{self.name.upper()} node '{first.name}': its reparameterised term in REBAR's rows has "
                             f"no kernel; use 'pathwise' for '{n.name}', or 'relax_blackbox' or 'disarm' for "
                             f"'{first.name}'")
        if not d.discrete or not est.hard_forward:
            return
        if "relax_rows" not in below:
            raise ModelError(f"{d.name} '{n.name}' cannot sit below the {self.name.upper()} node '{first.name}' "
                             f"(it has no relaxation); use 'relax_blackbox' or 'disarm' for '{first.name}'")
        noise = _first(ctx.drawn_noise())
        if noise is None:
            raise ModelError(f"{d.name} '{n.name}': estimator '{est.name}' cannot sit below the "
                             f"{self.name.upper()} node '{first.name}' (it draws no noise to relax); use 'score' or "
                             f"'rebar'")
        (a,) = ctx.params()
        ctx.call(render(below["relax_rows"], flag=flag, a=a, noise=noise, K=n.attrs.get("K"), loglam=loglam,
                        uniform=noise.kind == "uniform", value=ctx.value()))

    def backward_below(self, ctx, above):
        g = ctx.cotangent()
        n, est = ctx.node, ctx.estimator
        if g is NO_GRAD:
            return
        flag = ctx.buffer("flag")
        d = ctx.law
        if not d.discrete:
            # an estimator that passes the value's cotangent to the parameters (pathwise, Price)
            # already covers the control-variate rows; adding the reparameterised term here too
            # would count them twice (Price's Hessian is seeded by the same rows)
            if not est.passes_value_grad:
                gs = {f"g{j}": gp for j, gp in enumerate(ctx.param_grads())}
                ctx.call(render(self.kernels[d.kind]["relax_rows_bwd"], flag=flag, noise=_first(ctx.drawn_noise()),
                                g=g, **gs))
            return
        if not est.hard_forward:
            return
        loglam = params(above[0])[2]
        (ga,) = ctx.param_grads()
        ctx.call(render(self.kernels[d.kind]["relax_rows_bwd"], flag=flag, value=ctx.value(), K=n.attrs.get("K"),
                        loglam=loglam, g=g, ga=ga))


def _first(noise):
    """The first of the noise buffers a draw used (its base noise), or None."""
    return noise[0] if isinstance(noise, tuple) else noise
