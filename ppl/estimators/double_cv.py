"""Double control variates (Titsias & Shi, AISTATS 2022) for logit-link Bernoulli nodes: the
REINFORCE leave-one-out estimator over a data row's K >= 2 draws, plus a first-order Taylor
control variate of f whose slope is the mean of df/db at the *other* draws, and its exact
correction, so the estimate stays unbiased (the formula and its proof: kernels/families/dcv.py):
    g_k = (T_k - mean_{j != k} T_j) (b_k - mu) - alpha G_-k mu (1 - mu),
    T_k = f_k + alpha <G_-k, b_k - mu>,  G_-k = mean_{j != k} df/db (b_j),  mu = sigma(a).
df/db at each draw is the cotangent of the node's value that the backward pass computes anyway
(the node asks for it: `passes_value_grad`), so the estimator costs no evaluation of the
downstream graph beyond the K draws, as in the paper. `alpha` starts at the option's value
(default -1: the Taylor expansion's own coefficient, f_k - <G_-k, b_k - mu> ~ f(mu)); with
train=True (default) it is a parameter, 'double_cv.<node>.alpha', trained by the program's
optimiser on the estimate's variance (its gradient entry holds d E|v|^2 / d alpha, v a data row's
logits gradient: kernels/families/dcv.py), as the paper's reference code trains it (from 0 there);
train=False keeps it fixed. Measured on the SBN (BENCHMARKS.md): alpha near -1 removes most of
score-loo's variance at initialisation, about none after training, where alpha trains to ~0.
alpha = 0 gives `score` with baseline 'loo' exactly.

Why the slope is the other draws' df/db and not f's Taylor expansion at a relaxed point (the
mean of q, or of the other draws): f and df/db there are K more evaluations of the downstream
graph per data row (twice the rows), while the draws' own cotangents come with the backward
pass; and any function of the other draws keeps the estimate unbiased, so only the variance is
at stake. Needs a differentiable path to the costs (df/db), samples >= 2, the ELBO objective.

RODEO (Shi, Zhou, Hwang, Titsias & Mackey, NeurIPS 2022, "Gradient estimation with discrete
Stein operators") is not implemented, for a stated reason. Its control variate is a discrete
Stein operator of a q-invariant Markov kernel (for Bernoulli units the D single-unit flips of each
draw b_k) applied to a *learned* function h: the reference code (thjashin/rodeo, networks.py,
grad_type 'discrete_stein*') evaluates a small network (2 outputs, 100 hidden units) at the D
flips of every draw, on the flips' first-order Taylor values from the other draws' df/db (the
same G_-k as here) and the leave-one-out mean of f, and trains it on the estimate's variance.
The df/db half fits this machinery (the kernel would compute <G_-k, flip_d(b_k)> from b_k and G_-k
in O(D) per draw); the learned network does not: it is a parameter vector with its own forward,
backward and variance gradient evaluated D times per draw inside the estimator's kernel, i.e.
RELAX's learned-surrogate machinery (kernels/cpu_relax.py) extended to D neighbours, with its
training, a CUDA twin and tests of its own; that is the work left for 'rodeo'.
"""
from .. import graph as G
from .base import Estimator, register, sample_hard


def digits_below(lw, node):
    """(strides, sizes) generated-code tuple literals of the configuration digits of stochastic
    nodes below `node` (enumeration, antithetic pairs, REBAR rows), marginalised by the kernel;
    a neutral digit (stride 1, size 1) when there are none."""
    below = G.nx.descendants(lw.an.graph, node.name)
    digits = list(dict.fromkeys(lw.row_digit[e] for e in lw.row_digit if e.name in below)) or [(1, 1)]   # REBAR nodes share one
    return ("(" + "".join(f"{s}, " for s, _ in digits) + ")", "(" + "".join(f"{z}, " for _, z in digits) + ")")


@register
class DoubleCV(Estimator):
    name = "double_cv"

    def not_measured(self, info):
        return ("its coefficient alpha is trained with the model, so its variance at initialisation is no guide "
                "(BENCHMARKS.md, the estimator study)")
    param_prefixes = ("double_cv.",)
    about = ("score function, leave-one-out baseline plus a Taylor control variate from the other draws' df/db "
             "and its exact correction; samples >= 2")
    cite = ('Titsias & Shi 2022, "Double control variates for gradient estimation in discrete latent variable '
            'models", AISTATS')
    passes_value_grad = True   # it reads df/db at the draws: the cotangent of the node's value
    options = {"alpha": -1.0, "train": True}

    def check(self, info):
        if not info.dist.antithetic:
            return f"{info.dist.name} is not a logit-link Bernoulli"
        if not info.differentiable:
            return (f"a path to its costs goes through the gradient-free black box '{info.blocked_by}' "
                    f"(double_cv needs df/db; use 'score' or 'relax')")
        if info.samples < 2:
            return (f"it needs samples >= 2 (a leave-one-out over a data row's draws); compile(..., samples=K) "
                    f"with K >= 2, or use 'disarm' or 'score' with samples=1")
        return None

    def resolve(self, info, opts):
        a = opts.get("alpha", -1.0)
        if not isinstance(a, (int, float)) or a != a or abs(a) == float("inf"):
            raise ValueError(f"alpha must be a finite number, got {a!r}")
        return {**opts, "alpha": float(a), "train": bool(opts.get("train", True))}

    def forward(self, lw, node, opts):
        sample_hard(lw, node)

    def backward(self, lw, node, opts):
        (ga,) = lw.param_grads(node)
        gv = lw.g(node)
        if ga == lw.empty2 or gv is None:
            return
        (a,) = lw.param_values(node)
        L = lw.downstream_L(node)
        train = bool(opts["train"])
        if train:
            alpha, galpha = lw.param(f"double_cv.{node.name}.alpha", (1,), float(opts["alpha"]))
            gal = lw.buf1(f"dcvA_{node.name}")
        else:
            alpha, gal = lw.state_value(f"{node.name}.double_cv_alpha", float(opts["alpha"])), lw.empty1
        T, W, Cb = (lw.buf1(f"dcv{v}_{node.name}") for v in "TWC")
        Gm = lw.buf2(f"dcvG_{node.name}", node.width)
        strides, sizes = digits_below(lw, node)
        lw.emit(f"core.double_cv_grad({a}, {lw.v(node)}, {L}, {gv}, {lw.rw}, {lw.samples}, {lw.S}, {strides}, "
                f"{sizes}, {alpha}, {train}, {T}, {W}, {Cb}, {Gm}, {ga}, {gal})")
        if train:
            lw.emit(f"rows.add_sum_to({gal}, {galpha}, 0)")
