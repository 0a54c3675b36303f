"""Categorical DisARM (Dong, Mnih & Tucker 2021, "Coupled gradient estimators for discrete latent
variables", NeurIPS): the importance-weighted DisARM estimator on the stick-breaking antithetic
coupling, for Categorical nodes (each group of K classes).

Each drawn row becomes a pair of rows (the node's configuration digit) sharing one uniform per
class: x and its partner y, each marginally Categorical(softmax(a)), coupled by stick breaking
over the classes in ascending order of their logits (kernels/families/cat_antithetic.py). The
logits receive 1/2 w (f(x) - f(y)) (e_x - e_y), w = pi(x) pi(y) / q(x, y), f the downstream costs of
each member: unbiased, 0 where the pair agrees, and DisARM itself for K = 2. Like DisARM it
estimates the ELBO; the other parameters receive the average of the pair's gradients."""
from .base import Estimator, enumerated_below, register


@register
class CatDisARM(Estimator):
    name = "cat_disarm"
    about = "antithetic pair of categorical draws (stick-breaking coupling), importance-weighted DisARM"
    cite = ('Dong, Mnih & Tucker 2021, "Coupled gradient estimators for discrete latent variables", NeurIPS '
            '(its importance-weighted DisARM on the stick-breaking coupling)')

    def check(self, info):
        if "cat_disarm_grad" not in info.dist.kernels:
            return f"{info.dist.name} has no coupled antithetic pair (Categorical does; for Bernoulli use 'disarm')"
        return None

    def expansion(self, info, opts):
        return 2

    def forward(self, lw, node, opts):
        d = lw.dist(node)
        u = lw.noise(node, "uniform")
        lw.record_noise(node, u, "uniform")
        (a,) = lw.param_values(node)
        lw.call(d.kernels["cat_antithetic_sample"], [a, u, str(lw.enum_stride[node])], [lw.v(node)], node)
        lw.emit(f"antithetic.scale_rows({lw.rw}, 0.5)")

    def backward(self, lw, node, opts):
        (ga,) = lw.param_grads(node)
        if ga == lw.empty2:
            return
        d = lw.dist(node)
        (a,) = lw.param_values(node)
        L = lw.downstream_L(node)
        stride = str(lw.enum_stride[node])
        digits = enumerated_below(lw, node)
        if digits:
            # each member's rows carry p(c | its value) for the enumerated nodes below: compare the
            # members' signals marginalised over those digits (see kernels/families/antithetic.py)
            strides, sizes = digits
            lw.call(d.kernels["cat_disarm_grad_marginal"], [a, lw.v(node), L, lw.rw, stride, strides, sizes], [ga],
                    node)
        else:
            lw.call(d.kernels["cat_disarm_grad"], [a, lw.v(node), L, lw.rw, stride], [ga], node)
