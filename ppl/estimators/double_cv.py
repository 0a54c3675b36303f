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
Stein operators") extends this baseline with Stein-operator control variates of a learned
network: the estimator 'rodeo' (ppl/estimators/rodeo.py, which says why its network reads the
other draws' costs rather than their df/db).
"""
from ppl.calls import KERNELS
from .protocol import NO_GRAD, NO_GRAD_1D, Estimator, register


@register
class DoubleCV(Estimator):
    name = "double_cv"

    def not_measured(self, info):
        return ("its coefficient alpha is trained with the model, so its variance at initialisation is no guide "
                "(docs/benchmarks/estimators.md, the estimator study)")
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

    def draw(self, ctx):
        ctx.sample()

    def estimate(self, ctx):
        (ga,) = ctx.param_grads()
        gv = ctx.cotangent()
        if ga is NO_GRAD or gv is NO_GRAD:
            return
        node, opts = ctx.node, ctx.options
        (a,) = ctx.params()
        L = ctx.downstream_cost()
        train = bool(opts["train"])
        if train:
            alpha, galpha = ctx.parameter("alpha", (1,), float(opts["alpha"]))
            gal = ctx.buffer("dcvA")
        else:
            alpha, gal = ctx.state("alpha", float(opts["alpha"]), name=f"{node.name}.double_cv_alpha"), NO_GRAD_1D
        T, W, Cb = (ctx.buffer(f"dcv{v}") for v in "TWC")
        Gm = ctx.buffer("dcvG", node.width)
        strides, sizes = ctx.rows.digits_below   # marginalised by the kernel
        ctx.call(KERNELS.core.double_cv_grad, a, ctx.value(), L, gv, ctx.rows.weights, ctx.rows.samples,
                 ctx.rows.configs, strides, sizes, alpha, train, T, W, Cb, Gm, ga, gal)
        if train:
            ctx.call(KERNELS.rows.add_sum_to, gal, galpha, 0)
