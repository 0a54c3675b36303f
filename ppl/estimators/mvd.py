"""Measure-valued derivatives (Pflug 1989; Mohamed, Rosca, Figurnov & Mnih 2020, "Monte Carlo
gradient estimation in machine learning", JMLR, section 6; GenJAX ADEV's `flip_mvd` and
`poisson_weak`), written on the public estimator protocol (estimators/custom.py).

The derivative of E f(x) in a parameter is a difference of two expectations under a coupled
pair of laws; the pair shares every other unit's draw (common random numbers), so each unit
costs one more evaluation of the graph below: width + 1 rows per draw.
- Bernoulli (logits a): p (1 - p) (f(x_j = 1) - f(x_j = 0)) per unit, exact in the unit's own
  draw (no variance from it).
- Poisson (rate): f(x_j + 1) - f(x_j) per unit (the rate's weak derivative).
- Normal: the loc by the Rayleigh pair loc +- scale R, (f(+) - f(-)) / (scale sqrt(2 pi)); the
  scale by the double-sided Maxwell loc + scale sign(eps) sqrt(R^2 + eps^2) against the draw
  loc + scale eps, (f(Maxwell) - f(draw)) / scale: 1 + 3 width rows per draw, coupled by eps
  and the uniform of R.
- Categorical (logits a, groups of K): p_k (f(e_k) - sum_i p_i f(e_i)) per class, each group
  moved to each of its K - 1 other classes (the softmax Jacobian's weights), exact in the
  group's own draw: 1 + G (K - 1) rows per draw.
Kernels: kernels/families/mvd.py.
"""
from ..errors import ModelError
from ..kernels.cpu.core import (mvd_bernoulli_draw, mvd_bernoulli_grad, mvd_categorical_draw, mvd_categorical_grad,
                           mvd_normal_draw, mvd_normal_grad, mvd_poisson_draw, mvd_poisson_grad)
from .base import register
from .custom import NO_GRAD, Estimator

MAX_UNITS = 1024      # a cap on the rows a user's choice makes: width + 1 per draw
AUTOTUNE_ROWS = 33    # autotune measures it up to this many rows per draw (32 Bernoulli units)
_KERNELS = {"bernoulli": (mvd_bernoulli_draw, mvd_bernoulli_grad), "poisson": (mvd_poisson_draw, mvd_poisson_grad),
            "categorical": (mvd_categorical_draw, mvd_categorical_grad), "normal": (mvd_normal_draw, mvd_normal_grad)}


@register
class MVD(Estimator):
    name = "mvd"
    about = ("measure-valued derivative: each unit's coupled branch against the draw (width + 1 rows; "
             "categorical: each other class of each group)")
    cite = ('Pflug 1989; Mohamed, Rosca, Figurnov & Mnih 2020, "Monte Carlo gradient estimation in machine '
            'learning", JMLR')

    branch_rows = True

    def check(self, info):
        if info.node.kind not in _KERNELS:
            return (f"it has measure-valued kernels for {', '.join(sorted(_KERNELS))} nodes, not "
                    f"{info.dist.name}")
        if info.node.width > MAX_UNITS:
            return f"it evaluates the graph below once per unit ({info.node.width} units; at most {MAX_UNITS})"
        return None

    def not_measured(self, info):
        rows = self.rows(info, {})
        if rows > AUTOTUNE_ROWS:
            return (f"{rows} rows per draw: its pilot would cost that many steps' work, and on wide nodes its "
                    f"variance per row lost to score's in the study on real digits (BENCHMARKS.md)")
        return None

    def rows(self, info, options):
        K = info.node.attrs.get("K")
        if info.node.kind == "normal":   # per unit: the loc's pair and the scale's branch
            return 1 + 3 * info.node.width
        return 1 + (info.node.width // K * (K - 1) if K else info.node.width)

    def draw(self, ctx):
        if ctx.rows.enumerated_below is not None:
            # their rows weigh p(c | the draw) in row_weights; a branch row weighs 0, so the
            # branch's cost cannot be marginalised over them (row by row it is biased)
            raise ModelError(f"estimator 'mvd' of node '{ctx.node.name}': a node below it is enumerated, and "
                             f"mvd's branch rows carry no weights to marginalise over its values; choose "
                             f"another estimator for '{ctx.node.name}' (score applies to every node) or for the "
                             f"enumerated node")
        draw, _ = _KERNELS[ctx.node.kind]
        slot = ctx.rows.slot
        if ctx.node.kind == "categorical":   # the Gumbel-max draw; the group size before the digit
            ctx.call(draw, *ctx.params(), ctx.noise("gumbel"), ctx.node.attrs["K"], *slot, ctx.value(),
                     ctx.rows.weights)
            return
        if ctx.node.kind == "normal":   # the draw's normal noise, and the uniform of the branches' Rayleigh
            ctx.call(draw, *ctx.params(), ctx.noise("normal"), ctx.noise("uniform"), *slot, ctx.value(),
                     ctx.rows.weights)
            return
        ctx.call(draw, *ctx.params(), ctx.noise("uniform"), *slot, ctx.value(), ctx.rows.weights)

    def estimate(self, ctx):
        _, grad = _KERNELS[ctx.node.kind]
        if ctx.node.kind == "normal":
            gl, gs = ctx.param_grads()
            if gl is not NO_GRAD or gs is not NO_GRAD:
                ctx.call(grad, *ctx.params(), ctx.value(), ctx.downstream_cost(), ctx.rows.weights, *ctx.rows.slot,
                         gl, gs)
            return
        (g,) = ctx.param_grads()
        if g is NO_GRAD:
            return
        slot = ctx.rows.slot
        if ctx.node.kind == "bernoulli":
            ctx.call(grad, *ctx.params(), ctx.value(), ctx.downstream_cost(), ctx.rows.weights, *slot, g)
        elif ctx.node.kind == "categorical":
            ctx.call(grad, *ctx.params(), ctx.value(), ctx.downstream_cost(), ctx.rows.weights, ctx.node.attrs["K"],
                     *slot, g)
        else:
            ctx.call(grad, ctx.value(), ctx.downstream_cost(), ctx.rows.weights, *slot, g)
