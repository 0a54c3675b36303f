"""REBAR for Bernoulli and Categorical nodes (Tucker et al. 2017; seed 002 eq. 47): the score function with the
control variate eta * f(sigma_lam(z~)) and its reparameterised correction, unbiased.

The hard, relaxed and conditionally relaxed evaluations of the node's downstream sub-graph are
rows of the same fused pass (see ppl.kernels.cpu_rebar for the row layout and the weights);
discrete nodes below it are relaxed in those rows. eta ('rebar.<node>.eta', init 1) and the
temperature ('rebar.<node>.log_temperature', init log 0.5) are parameters trained by the same
optimiser on the estimator's variance: their gradient entries hold d E|g|^2 / d(eta, log lam)."""
import math

from ppl.kernels.cpu_rebar import CONFIGS

from ppl.ops import fields, render

from .base import Estimator, register

DELTA = 0.1  # log-temperature step of the forward difference for d Var / d log(lam)


@register
class Rebar(Estimator):
    name = "rebar"
    passes_value_grad = True
    options = {"temperature": 0.5, "eta": 1.0, "train": True}

    def check(self, info):
        if "rebar_forward" not in info.dist.kernels:
            return f"{info.dist.name} has no REBAR implementation (logit-link Bernoulli and Categorical do)"
        if not info.differentiable:
            return (f"a path to its costs goes through the gradient-free black box '{info.blocked_by}' "
                    f"(REBAR differentiates f; 'relax' does not need to)")
        return None

    def expansion(self, info, opts):
        return CONFIGS

    def forward(self, lw, node, opts):
        if not opts["temperature"] > 0:
            raise ValueError(f"rebar on '{node.name}': temperature must be > 0, got {opts['temperature']}")
        u = lw.noise(node, "uniform", 0)
        v = lw.noise(node, "uniform", 1)
        lw.noise_of[node] = (u, v)
        lw.noise_kind[node] = "uniform"
        eta, geta = lw.param(f"rebar.{node.name}.eta", (1,), float(opts["eta"]))
        lam, glam = lw.param(f"rebar.{node.name}.log_temperature", (1,), math.log(float(opts["temperature"])))
        lw.rebar[node] = {"eta": eta, "geta": geta, "loglam": lam, "glam": glam}
        (a,) = lw.param_values(node)
        kernel = lw.dist(node).kernels["rebar_forward"]
        if "dzt" in fields(kernel):   # a kernel that keeps dz~/da for the backward pass
            lw.rebar[node]["dzt"] = lw.buf2(f"dzt_{node.name}", node.width)
        lw.emit(render(kernel, a=a, u=u, v=v, stride=lw.enum_stride[node], K=node.attrs.get("K"), lam=lam,
                       delta=DELTA, value=lw.v(node), dzt=lw.rebar[node].get("dzt")))

    def backward(self, lw, node, opts):
        (ga,) = lw.param_grads(node)
        if ga == lw.E2:
            return
        p = lw.rebar[node]
        u, v = lw.noise_of[node]
        (a,) = lw.param_values(node)
        L = lw.downstream_L(node)
        lw.emit(render(lw.dist(node).kernels["rebar_bwd"], a=a, u=u, v=v, value=lw.v(node), L=L, rw=lw.rw,
                       g=lw.g(node), stride=lw.enum_stride[node], K=node.attrs.get("K"), eta=p["eta"],
                       loglam=p["loglam"], delta=DELTA, ga=ga, geta=p["geta"], glam=p["glam"],
                       train=bool(opts["train"]), dzt=p.get("dzt"),
                       sa=lambda: lw.kept.get(("log_prob", node), lw.E2)))   # sigma(a), if log_prob(node) kept it
