"""Measure-valued derivatives (Pflug 1989; Mohamed, Rosca, Figurnov & Mnih 2020, "Monte Carlo
gradient estimation in machine learning", JMLR, section 6; GenJAX ADEV's `flip_mvd` and
`poisson_weak`), written on the public estimator protocol (estimators/custom.py).

The derivative of E f(x) in a parameter is a difference of two expectations under a coupled
pair of laws; the pair shares every other unit's draw (common random numbers), so each unit
costs one more evaluation of the graph below: width + 1 rows per draw.
- Bernoulli (logits a): p (1 - p) (f(x_j = 1) - f(x_j = 0)) per unit, exact in the unit's own
  draw (no variance from it).
- Poisson (rate): f(x_j + 1) - f(x_j) per unit (the rate's weak derivative).
Kernels: kernels/families/mvd.py.
"""
from ..kernels.cpu import mvd_bernoulli_draw, mvd_bernoulli_grad, mvd_poisson_draw, mvd_poisson_grad
from ..errors import ModelError
from .base import register
from .custom import NO_GRAD, Estimator

MAX_UNITS = 64
_KERNELS = {"bernoulli": (mvd_bernoulli_draw, mvd_bernoulli_grad), "poisson": (mvd_poisson_draw, mvd_poisson_grad)}


@register
class MVD(Estimator):
    name = "mvd"
    about = "measure-valued derivative: each unit's coupled branch against the draw (width + 1 rows)"
    cite = ('Pflug 1989; Mohamed, Rosca, Figurnov & Mnih 2020, "Monte Carlo gradient estimation in machine '
            'learning", JMLR')

    def check(self, info):
        if info.node.kind not in _KERNELS:
            return (f"it has measure-valued kernels for {', '.join(sorted(_KERNELS))} nodes, not "
                    f"{info.dist.name}")
        if info.node.width > MAX_UNITS:
            return f"it evaluates the graph below once per unit ({info.node.width} units; at most {MAX_UNITS})"
        return None

    def not_measured(self, info):
        return "width + 1 rows per draw; autotune does not measure it until the estimator study places it"

    def rows(self, info, options):
        return info.node.width + 1

    def draw(self, ctx):
        if ctx.enumerated_below() is not None:
            # their rows weigh p(c | the draw) in row_weights; a branch row weighs 0, so the
            # branch's cost cannot be marginalised over them (row by row it is biased)
            raise ModelError(f"estimator 'mvd' of node '{ctx.node.name}': a node below it is enumerated, and "
                             f"mvd's branch rows carry no weights to marginalise over its values; choose "
                             f"another estimator for '{ctx.node.name}' (disarm, arms, score) or for the enumerated "
                             f"node")
        draw, _ = _KERNELS[ctx.node.kind]
        stride, size = ctx.digit
        ctx.call(draw, *ctx.params(), ctx.noise("uniform"), stride, size, ctx.value(), ctx.row_weights)

    def estimate(self, ctx):
        _, grad = _KERNELS[ctx.node.kind]
        (g,) = ctx.param_grads()
        if g is NO_GRAD:
            return
        stride, size = ctx.digit
        if ctx.node.kind == "bernoulli":
            ctx.call(grad, *ctx.params(), ctx.value(), ctx.downstream_cost(), ctx.row_weights, stride, size, g)
        else:
            ctx.call(grad, ctx.value(), ctx.downstream_cost(), ctx.row_weights, stride, size, g)
