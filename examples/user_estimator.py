"""A gradient estimator written outside ppl: the stochastic derivative of a Bernoulli node
(Arya, Schauer, Schafer & Rackauckas 2022, "Automatic differentiation of programs with discrete
randomness", NeurIPS), registered with ppl and used to train a sigmoid belief net.

For a unit b ~ Bernoulli(p), p = sigmoid(a), the derivative of E f(b) in a is p (1 - p) (f(1) - f(0)).
The stochastic derivative reads it off one draw: a draw b = 0 would have been a 1 with probability
dp / (1 - p) per unit of a, so its alternative is b' = 1 with weight dp/da / (1 - p) = p; a draw
b = 1 has no alternative for a rising a (weight 0). Per unit j:

    d/da_j  ~  [b_j = 0] p_j (f(b with b_j = 1) - f(b)),     unbiased.

Each drawn row becomes width + 1 rows: the draw, and one row per unit with that unit set to 1 (every
unit's jump, hence its name). The graph below the node runs on all of them in the same fused step;
only the draw's row counts in the objective (the other rows' weights are set to 0), and the
estimate compares each unit's row with the draw's through `downstream_cost()`. ppl's own
'stochastic_derivative' keeps one jump per drawn row of all its nodes instead (the paper's pruning).

Run it: python examples/user_estimator.py [--steps N]
"""
import argparse

import numpy as np
from numba import njit

import ppl
from ppl import Affine, Bernoulli, Model
from ppl.language import dist


@njit(cache=False)
def every_jump_draw(logits, u, stride, size, value, row_weights):
    """value[r] = the draw (u < sigmoid(a)) on every row; row r of configuration c >= 1 sets unit
    c - 1 to 1 and weighs 0 in the objective."""
    one = value.dtype.type(1.0)
    for r in range(value.shape[0]):
        for j in range(value.shape[1]):
            p = one / (one + np.exp(-logits[r, j]))
            value[r, j] = one if u[r, j] < p else value.dtype.type(0.0)
        c = (r // stride) % size
        if c > 0:
            value[r, c - 1] = one
            row_weights[r] = 0.0


@njit(cache=False)
def every_jump_grad(logits, value, cost, row_weights, stride, size, grad_logits):
    """grad_logits[r, j] += w_r [b_j = 0] p_j (cost of the row with unit j set to 1 - cost of the draw),
    on the draw's rows (configuration 0)."""
    one = value.dtype.type(1.0)
    for r in range(value.shape[0]):
        if (r // stride) % size != 0:
            continue
        for j in range(value.shape[1]):
            if value[r, j] == 0.0:
                p = one / (one + np.exp(-logits[r, j]))
                grad_logits[r, j] += row_weights[r] * p * (cost[r + (j + 1) * stride] - cost[r])


@ppl.register_estimator
class EveryJump(ppl.Estimator):
    name = "every_jump"
    about = "each unit's alternative draw (a 0 set to 1, weight p) against the draw itself"
    cite = ('Arya, Schauer, Schafer & Rackauckas 2022, "Automatic differentiation of programs with discrete '
            'randomness", NeurIPS')

    def check(self, info):
        if not info.dist.antithetic:   # the law's flag for a logit-link Bernoulli
            return f"{info.dist.name} is not a logit-link Bernoulli"
        if info.node.width > 64:
            return f"it evaluates the graph below once per unit ({info.node.width} units; at most 64)"
        return None

    def rows(self, info, options):
        return info.node.width + 1

    def draw(self, ctx):
        (logits,) = ctx.params()
        stride, size = ctx.rows.digit
        ctx.call(every_jump_draw, logits, ctx.noise("uniform"), stride, size, ctx.value(),
                 ctx.rows.weights)

    def estimate(self, ctx):
        (logits,) = ctx.params()
        (grad_logits,) = ctx.param_grads()
        if grad_logits is ppl.NO_GRAD:
            return
        stride, size = ctx.rows.digit
        ctx.call(every_jump_grad, logits, ctx.value(), ctx.downstream_cost(), ctx.rows.weights,
                 stride, size, grad_logits)


def build(pixels=64, latent=16):
    """A one-layer sigmoid belief net: q(h | x) by an affine encoder, p(h) learned, p(x | h) affine."""
    with Model("sbn_every_jump") as m:
        x = m.input("x", pixels)
        h = Bernoulli("h", logits=Affine(x, latent, name="enc"))
        m.latent(h, dist.Bernoulli(logits=ppl.param("prior", latent)))
        m.observe("recon", dist.Bernoulli(logits=Affine(h, pixels, name="dec")), x)
    return m


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1500)
    args = ap.parse_args(argv)
    from ppl.models import sbn
    data = sbn.data(0)
    prog = build().compile(estimators={"h": "every_jump"})
    print(prog.explain())
    before = prog.evaluate(data["test"], "elbo", samples=10)
    ppl.fit(prog, data["train"], ppl.optim.Adam(3e-3), steps=args.steps, batch_size=32, progress=False)
    after = prog.evaluate(data["test"], "elbo", samples=10)
    print(f"test ELBO: {before:.2f} before, {after:.2f} after {args.steps} steps")
    return before, after


if __name__ == "__main__":
    main()
