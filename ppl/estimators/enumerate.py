"""Exact enumeration of a small discrete node's support.

Each drawn row becomes one row per joint value v of the node (mixed-radix digit of the row
index), weighted by p(v | a). Costs are summed with those weights, so the objective over this
node is exact; the node's parameters receive sum_v p(v|a) L_s(v) d log p(v|a)/da, the exact
gradient of sum_v p(v|a) L_s(v). Nodes downstream keep their own estimators."""
from ppl.ops import render

from .base import Estimator, register

MAX_SUPPORT = 4096
MAX_ENUMERATION = 64     # autotune measures enumeration for a support of at most this many values


@register
class Enumerate(Estimator):
    name = "enumerate"

    def not_measured(self, info):
        if info.support is not None and info.support > MAX_ENUMERATION:
            return f"a support of more than {MAX_ENUMERATION} values: as many rows per draw"
        return None
    about = 'exact sum over a small discrete support'

    def check(self, info):
        if not info.dist.discrete:
            return f"{info.dist.name} is continuous; enumeration needs a finite support"
        if info.support is None:
            return f"{info.dist.name} has infinitely many values; enumeration needs a finite support"
        if info.support > MAX_SUPPORT:
            return (f"its support has {info.support} values (more than {MAX_SUPPORT}); use 'score' or "
                    f"split the node into smaller ones")
        return None

    def expansion(self, info, opts):
        return info.support

    def forward(self, lw, node, opts):
        stride = lw.enum_stride[node]
        lw.emit(render(lw.dist(node).kernels["enum"], stride=stride, K=node.attrs.get("K"), value=lw.v(node)))
        lp = lw.buf1(f"lp_{node.name}")
        lw.call(lw.dist(node).kernels["log_prob"], [*lw.param_values(node), lw.v(node)], [lp], node)
        lw.emit(f"rows.mul_exp({lp}, {lw.rw})")

    def backward(self, lw, node, opts):
        grads = lw.param_grads(node)
        if all(gr == lw.empty2 for gr in grads):
            return
        L = lw.downstream_L(node)
        wts = lw.buf1(f"w_{node.name}")
        lw.emit(f"rows.score_weights({lw.rw}, {L}, {lw.zero_rows}, {wts})")
        lw.call(lw.dist(node).kernels["log_prob_bwd"], [*lw.param_values(node), lw.v(node)],
                [wts, *grads, lw.empty2], node)
