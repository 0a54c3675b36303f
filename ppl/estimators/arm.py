"""ARM and DisARM for Bernoulli nodes: antithetic pairs of draws sharing one uniform, two
evaluations of the node's downstream costs, unbiased (Yin & Zhou 2019; Dong, Mnih & Tucker
2020). The pair is two rows of the fused step (the node's configuration digit), so the
downstream sub-graph is evaluated for both in the same pass; the other parameters receive
the average of the pair's gradients."""
from .base import Estimator, register


class _Antithetic(Estimator):
    def check(self, info):
        if info.node.kind != "bernoulli":
            return f"{info.dist.name} is not a logit-link Bernoulli"
        return None

    def expansion(self, info, opts):
        return 2

    def forward(self, lw, node, opts):
        u = lw.noise(node, "uniform")
        lw.noise_of[node] = u
        lw.noise_kind[node] = "uniform"
        (a,) = lw.param_values(node)
        lw.emit(f"A_.antithetic_bernoulli({a}, {u}, {lw.enum_stride[node]}, {lw.v(node)})")
        lw.emit(f"A_.scale_rows({lw.rw}, 0.5)")

    def backward(self, lw, node, opts):
        (ga,) = lw.param_grads(node)
        if ga == lw.E2:
            return
        L = lw.downstream_L(node)
        stride = lw.enum_stride[node]
        if self.name == "arm":
            lw.emit(f"A_.arm_grad({lw.noise_of[node]}, {L}, {lw.rw}, {stride}, {ga})")
        else:
            (a,) = lw.param_values(node)
            lw.emit(f"A_.disarm_grad({a}, {lw.v(node)}, {L}, {lw.rw}, {stride}, {ga})")


@register
class ARM(_Antithetic):
    name = "arm"


@register
class DisARM(_Antithetic):
    name = "disarm"
