"""Measure-valued derivatives (Pflug 1989; Mohamed, Rosca, Figurnov & Mnih 2020, "Monte Carlo
gradient estimation in machine learning", JMLR, section 6; GenJAX ADEV's `flip_mvd` and
`poisson_weak`), written on the public estimator protocol (estimators/context.py).

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
- Bernoulli (probs p): f(x_j = 1) - f(x_j = 0) per unit; Categorical (probs w): the logits'
  rows, (D_k - sum_i pi_i D_i) / sum_i w_i; exact at probabilities 0 and 1.
- Binomial (total_count n, probs or logits): n E[f(Y + 1) - f(Y)], Y ~ Bin(n - 1, p), the draw
  Y + B (B ~ Bernoulli(p)) against Y + 1 - B; one row per unit, no gradient to total_count.
- Geometric (probs or logits): -(1 / p^2) E[f(Z + 1) - f(Z)], Z = X + X2 ~ NegativeBinomial(2, p),
  two rows per unit (exact at p = 1).
Kernels: kernels/families/mvd.py, and the families of the laws given by probabilities
(probs.py), binomial.py, geometric.py. A law's row in `_KERNELS` says how its kernels are called.
"""
from typing import NamedTuple

from ..distributions import DISTRIBUTIONS
from ..errors import ModelError
from ..kernels.cpu.core import (
    mvd_bernoulli_draw, mvd_bernoulli_grad, mvd_bernoulli_probs_draw, mvd_bernoulli_probs_grad, mvd_binomial_draw,
    mvd_binomial_grad, mvd_binomial_logits_draw, mvd_binomial_logits_grad, mvd_categorical_draw, mvd_categorical_grad,
    mvd_categorical_probs_draw, mvd_categorical_probs_grad, mvd_geometric_draw, mvd_geometric_grad,
    mvd_geometric_logits_draw, mvd_geometric_logits_grad, mvd_normal_draw, mvd_normal_grad, mvd_poisson_draw,
    mvd_poisson_grad)
from .protocol import register
from .protocol import NO_GRAD, Estimator

MAX_UNITS = 1024      # a cap on the rows a user's choice makes: width + 1 per draw
AUTOTUNE_ROWS = 33    # autotune measures it up to this many rows per draw (32 Bernoulli units)


class _Law(NamedTuple):
    """How a law's mvd kernels are called: draw(*params, *noise, [K], stride, off, span, value, weights)
    and grad([*params], value, cost, weights, [K], stride, off, span, *param_grads) (K: a grouped law's;
    (stride, off, span): the node's slot, Rows.slot)."""

    draw: object
    grad: object
    noise: tuple = ("uniform",)   # the draw's noise buffers, in order
    branches: int = 1             # branch rows per unit (a grouped law: per group and other class)
    grad_params: bool = True      # its grad reads the parameters


_KERNELS = {
    "bernoulli": _Law(mvd_bernoulli_draw, mvd_bernoulli_grad),
    "poisson": _Law(mvd_poisson_draw, mvd_poisson_grad, grad_params=False),
    "categorical": _Law(mvd_categorical_draw, mvd_categorical_grad, noise=("gumbel",)),
    "normal": _Law(mvd_normal_draw, mvd_normal_grad, noise=("normal", "uniform"), branches=3),
    "bernoulli_probs": _Law(mvd_bernoulli_probs_draw, mvd_bernoulli_probs_grad),
    "categorical_probs": _Law(mvd_categorical_probs_draw, mvd_categorical_probs_grad),
    "binomial": _Law(mvd_binomial_draw, mvd_binomial_grad, noise=("uniform", "uniform")),
    "binomial_logits": _Law(mvd_binomial_logits_draw, mvd_binomial_logits_grad, noise=("uniform", "uniform")),
    "geometric": _Law(mvd_geometric_draw, mvd_geometric_grad, noise=("uniform", "uniform"), branches=2),
    "geometric_logits": _Law(mvd_geometric_logits_draw, mvd_geometric_logits_grad, noise=("uniform", "uniform"),
                             branches=2),
}


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
            return (f"it has measure-valued kernels for {', '.join(sorted(DISTRIBUTIONS[k].name for k in _KERNELS))} "
                    f"nodes, not {info.dist.name}")
        if info.node.width > MAX_UNITS:
            return f"it evaluates the graph below once per unit ({info.node.width} units; at most {MAX_UNITS})"
        return None

    def not_measured(self, info):
        rows = self.rows(info, {})
        if rows > AUTOTUNE_ROWS:
            return (f"{rows} rows per draw: its pilot would cost that many steps' work, and on wide nodes its "
                    f"variance per row lost to score's in the study on real digits "
                    f"(docs/benchmarks/estimators.md)")
        return None

    def rows(self, info, options):
        K = info.node.attrs.get("K")
        return 1 + (info.node.width // K * (K - 1) if K else info.node.width * _KERNELS[info.node.kind].branches)

    def draw(self, ctx):
        if ctx.rows.enumerated_below is not None:
            # their rows weigh p(c | the draw) in row_weights; a branch row weighs 0, so the
            # branch's cost cannot be marginalised over them (row by row it is biased)
            raise ModelError(f"estimator 'mvd' of node '{ctx.node.name}': a node below it is enumerated, and "
                             f"mvd's branch rows carry no weights to marginalise over its values; choose "
                             f"another estimator for '{ctx.node.name}' (score applies to every node) or for the "
                             f"enumerated node")
        law = _KERNELS[ctx.node.kind]
        K = [ctx.node.attrs["K"]] if "K" in ctx.node.attrs else []
        params = ctx.params()
        noise = [ctx.noise(kind) for kind in law.noise]
        ctx.call(law.draw, *params, *noise, *K, *ctx.rows.slot, ctx.value(), ctx.rows.weights)

    def estimate(self, ctx):
        law = _KERNELS[ctx.node.kind]
        grads = ctx.param_grads()
        if all(g is NO_GRAD for g in grads):
            return
        K = [ctx.node.attrs["K"]] if "K" in ctx.node.attrs else []
        params = ctx.params() if law.grad_params else []
        ctx.call(law.grad, *params, ctx.value(), ctx.downstream_cost(), ctx.rows.weights, *K, *ctx.rows.slot, *grads)
