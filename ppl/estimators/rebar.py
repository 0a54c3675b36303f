"""REBAR for Bernoulli and Categorical nodes (Tucker et al. 2017): the score function with the
control variate eta * f(sigma_lam(z~)) and its reparameterised correction, unbiased.

The hard, relaxed and conditionally relaxed evaluations of the node's downstream sub-graph are
rows of the same fused pass (see ppl.kernels.cpu_rebar for the row layout and the weights): 5 per
drawn row when eta and the temperature are trained, 3 when they are fixed (train=False);
discrete nodes below it are relaxed in those rows. The REBAR nodes of a graph share one row digit
whose rows add up rather than multiply (Lowering.plan_rows): two REBAR layers take 1 + 2 + 2 rows
per drawn row, not 3 x 3. eta ('rebar.<node>.eta', init 1) and the
temperature ('rebar.<node>.log_temperature', init log 0.5) are parameters trained by the same
optimiser on the estimator's variance: their gradient entries hold d E|g|^2 / d(eta, log lam)."""
import math

from ppl.kernels.cpu_rebar import CONFIGS, FIXED_CONFIGS

from ppl.ops import fields, render

from ppl.errors import ModelError

from .base import REGISTRY, Estimator, register

DELTA = 0.1  # log-temperature step of the forward difference for d Var / d log(lam)


def slot(lw, node):
    """The node's place in the REBAR nodes' shared row digit, as the kernels take it."""
    off, span = lw.cv_slot[node]
    return dict(stride=lw.enum_stride[node], off=off, span=span)


def configs(opts):
    """Configuration rows per drawn row: rows 3, 4 (temperature lam') serve only the variance
    gradients of eta and the temperature, so a fixed-parameter REBAR evaluates 3."""
    return CONFIGS if opts["train"] else FIXED_CONFIGS


@register
class Rebar(Estimator):
    name = "rebar"
    param_prefixes = ("rebar.",)
    about = 'score function with a relaxed control variate and its reparameterised correction'
    cite = 'Tucker, Mnih, Maddison, Lawson & Sohl-Dickstein 2017, "REBAR", NeurIPS'
    passes_value_grad = True
    shares_rows = True   # its backward is linear in the value's cotangent, per row
    evaluates_below = True
    options = {"temperature": 0.5, "eta": 1.0, "train": True}

    def check(self, info):
        if "rebar_forward" not in info.dist.kernels:
            return f"{info.dist.name} has no REBAR implementation (logit-link Bernoulli and Categorical do)"
        if not info.differentiable:
            return (f"a path to its costs goes through the gradient-free black box '{info.blocked_by}' "
                    f"(REBAR differentiates f; 'relax' does not need to)")
        return None

    def expansion(self, info, opts):
        return configs(opts)

    def forward(self, lw, node, opts):
        if not opts["temperature"] > 0:
            raise ValueError(f"rebar on '{node.name}': temperature must be > 0, got {opts['temperature']}")
        u = lw.noise(node, "uniform", 0)
        v = lw.noise(node, "uniform", 1)
        lw.record_noise(node, (u, v), "uniform")
        eta, geta = lw.param(f"rebar.{node.name}.eta", (1,), float(opts["eta"]))
        lam, glam = lw.param(f"rebar.{node.name}.log_temperature", (1,), math.log(float(opts["temperature"])))
        p = lw.scratch[("rebar", node)] = {"eta": eta, "geta": geta, "loglam": lam, "glam": glam}
        (a,) = lw.param_values(node)
        kernel = lw.dist(node).kernels["rebar_forward"]
        if "dzt" in fields(kernel):   # a kernel that keeps dz~/da for the backward pass
            p["dzt"] = lw.buf2(f"dzt_{node.name}", node.width)
        lw.emit(render(kernel, a=a, u=u, v=v, **slot(lw, node), configs=configs(opts),
                       K=node.attrs.get("K"), lam=lam,
                       delta=DELTA, value=lw.v(node), dzt=p.get("dzt")))

    def backward(self, lw, node, opts):
        (ga,) = lw.param_grads(node)
        if ga == lw.empty2:
            return
        p = lw.scratch[("rebar", node)]
        u, v = lw.noise_of[node]
        (a,) = lw.param_values(node)
        L = lw.downstream_L(node)
        lw.emit(render(lw.dist(node).kernels["rebar_bwd"], a=a, u=u, v=v, value=lw.v(node), L=L, rw=lw.rw,
                       g=lw.g(node), **slot(lw, node), configs=configs(opts), K=node.attrs.get("K"),
                       eta=p["eta"],
                       loglam=p["loglam"], delta=DELTA, ga=ga, geta=p["geta"], glam=p["glam"],
                       train=bool(opts["train"]), dzt=p.get("dzt"),
                       sa=lambda: lw.empty2 if ("log_prob", node) in lw.kept_rep else
                       lw.kept.get(("log_prob", node), lw.empty2)))   # sigma(a), if log_prob(node) kept it on every row

    def seed_weights(self, lw, node):
        """Its control-variate rows: loss weight 0, cost cotangent seeds +-eta (cpu_rebar)."""
        eta = lw.scratch[("rebar", node)]["eta"]
        lw.emit(render("rebar.rebar_weights({stride}, {off}, {span}, {configs}, {eta}, {rw}, {cw})", **slot(lw, node),
                       configs=configs(lw.choices[node][0].options), eta=eta, rw=lw.rw, cw=lw.cw))

    # ----- stochastic nodes below a REBAR node: reparameterised (discrete ones relaxed) in its
    # control-variate rows, so the control variate is a continuous function of the relaxed value
    def forward_below(self, lw, n, above):
        first = above[0]
        ch, _ = lw.choices[n]
        flag = lw.buf1(f"flag_{n.name}")
        lw.scratch[("rebar_flag", n)] = flag
        lw.emit(f"rows.zero1({flag})")
        for s in above:
            lw.emit(render("rebar.cv_flags({stride}, {off}, {span}, {configs}, {flag})", **slot(lw, s),
                           configs=configs(lw.choices[s][0].options), flag=flag))
        loglam = lw.scratch[("rebar", first)]["loglam"]
        d = lw.dist(n)
        if not d.discrete and not REGISTRY[ch.estimator].passes_value_grad and "relax_rows_bwd" not in d.kernels:
            raise ModelError(f"{d.name} '{n.name}' (estimator '{ch.estimator}') cannot sit below the REBAR node "
                             f"'{first.name}': its reparameterised term in REBAR's rows has no kernel; use "
                             f"'pathwise' for '{n.name}', or 'relax' or 'disarm' for '{first.name}'")
        if not d.discrete or not REGISTRY[ch.estimator].hard_forward:
            return
        if "relax_rows" not in d.kernels:
            raise ModelError(f"{d.name} '{n.name}' cannot sit below the REBAR node '{first.name}' (it has "
                             f"no relaxation); use 'relax' or 'disarm' for '{first.name}'")
        noise = lw.noise_of.get(n)
        if isinstance(noise, tuple):
            noise = noise[0]
        if noise is None:
            raise ModelError(f"{d.name} '{n.name}': estimator '{ch.estimator}' cannot sit below the "
                             f"REBAR node '{first.name}' (it draws no noise to relax); use 'score' or 'rebar'")
        (a,) = lw.param_values(n)
        lw.emit(render(d.kernels["relax_rows"], flag=flag, a=a, noise=noise, K=n.attrs.get("K"), loglam=loglam,
                       uniform=lw.noise_kind.get(n) == "uniform", value=lw.v(n)))

    def backward_below(self, lw, n, above):
        g = lw.g(n)
        ch, _ = lw.choices[n]
        if g is None:
            return
        flag = lw.scratch[("rebar_flag", n)]
        d = lw.dist(n)
        if not d.discrete:
            # an estimator that passes the value's cotangent to the parameters (pathwise, Price)
            # already covers the control-variate rows; adding the reparameterised term here too
            # would count them twice (Price's Hessian is seeded by the same rows)
            if not REGISTRY[ch.estimator].passes_value_grad:
                gs = {f"g{j}": gp for j, gp in enumerate(lw.param_grads(n))}
                lw.emit(render(d.kernels["relax_rows_bwd"], flag=flag, noise=lw.noise_of[n], g=g, **gs))
            return
        if not REGISTRY[ch.estimator].hard_forward:
            return
        loglam = lw.scratch[("rebar", above[0])]["loglam"]
        (ga,) = lw.param_grads(n)
        lw.emit(render(d.kernels["relax_rows_bwd"], flag=flag, value=lw.v(n), K=n.attrs.get("K"), loglam=loglam,
                       g=g, ga=ga))
