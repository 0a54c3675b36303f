"""RODEO (Shi, Zhou, Hwang, Titsias & Mackey 2022, "Gradient estimation with discrete Stein
operators", NeurIPS) for logit-link Bernoulli nodes with samples K >= 2, written on the public
estimator protocol (estimators/context.py). One row per draw: no evaluation of the graph below
beyond the K draws of each data row.

Derivation. For b ~ q = prod_i Bernoulli(p_i), p = sigmoid(a), and any Markov kernel P that
leaves q invariant, (A h)(b) = E_P(b, .) h - h(b) has mean 0 under q for every h (a discrete
Stein operator). RODEO takes P the Gibbs update of one unit, summed over the units:
    (A h)(b) = sum_i q_i(1 - b_i) (h(b^(i)) - h(b)),     b^(i): b with unit i flipped,
whose coefficient q_i(1 - b_i) is the probability of the flipped value (p_i where b_i = 0,
1 - p_i where b_i = 1); it reads h at the draw and its D neighbours, never f. With the data
row's draws b_1..b_K (signals f_k, the costs below, marginalised over enumerated nodes below)
and s_k = b_k - p_k (the score of the logits):
    g_k = (f_k - mean_{j != k} [f_j + (A h_0,j)(b_j)]) s_k + (A H_k)(b_k),   H_k(y) = h_1,k(y) (y - p_k)
where h_m,k (m = 0, 1) may depend on anything but b_k. Unbiased: (A h_0,j)(b_j) has mean 0 given
every other draw (h_0,j is a function of them), and s_k does not depend on b_j; (A H_k)(b_k) has
mean 0 given the others; f_j s_k has mean 0 (independent draws). The first term is the
leave-one-out score function whose baseline carries the other draws' Stein control variates (the
"double control variate"); the last is a vector control variate, written per unit j as
    (A H)(b)_j = s_j (A h_1)(b) + q_j(1 - b_j) (1 - 2 b_j) h_1(b^(j))
(unit j's own flip changes y_j - p_j to 1 - b_j - p_j). The functions of the other draws are
    h_m,k(y) = fbar_-k N_m(y; a_k),   fbar_-k = mean_{j != k} f_j,
    N_m(y; a) = sum_t w_mt tanh(W_t . y + U_t . a + c_t)
a network (H hidden units, two outputs) of the point y and the node's logits a (its context),
scaled by the other draws' mean cost. It is a parameter, 'rodeo.<node>.cv', trained by the
program's optimiser on the estimate's variance, as RELAX trains its control variate: its gradient
entry holds d E|v|^2 / dphi, v = sum_k w_k g_k the data row's logits gradient (w_k: draw k's
row weight; E v does not depend on phi). At initialisation w_0 = w_1 = 0: the estimate is score's with baseline 'loo'.
Kernels, with the variance gradient written out: kernels/families/rodeo.py.

Where the surrogate differs from the paper's: its experiments feed the network the other
draws' first-order Taylor expansion of f (from df/db at those draws) instead of the point y and
the logits. Here only the other draws' costs enter, so that black-box costs are served and no
value cotangent is read: where an estimator below compares a data row's draws (score's 'loo',
vimco, double_cv, rodeo), the cotangent at draw j depends on draw k, and a nonlinear function of
it would bias the Stein term. The network, trained across steps, carries the shape of f instead.
"""
import numbers

from ..calls import Const
from ..kernels.cpu.core import rodeo_collect, rodeo_cv, rodeo_grad, rodeo_signal, rodeo_train
from ..kernels.families.rodeo import init, rodeo_size
from .protocol import register
from .protocol import NO_GRAD, Estimator

MAX_HIDDEN = 64


@register
class RODEO(Estimator):
    name = "rodeo"
    options = {"hidden": 8}
    param_prefixes = ("rodeo.",)
    about = ("leave-one-out score function with Gibbs Stein-operator control variates of a learned network; "
             "samples >= 2")
    cite = ('Shi, Zhou, Hwang, Titsias & Mackey 2022, "Gradient estimation with discrete Stein operators", '
            'NeurIPS')

    def check(self, info):
        if not info.dist.antithetic:
            return f"{info.dist.name} is not a logit-link Bernoulli"
        if info.samples < 2:
            return (f"it needs samples >= 2 (a leave-one-out over a data row's draws); compile(..., samples=K) "
                    f"with K >= 2, or use 'disarm' or 'score' with samples=1")
        return None

    def resolve(self, info, opts):
        H = opts["hidden"]
        if not isinstance(H, numbers.Integral) or isinstance(H, bool) or not 1 <= H <= MAX_HIDDEN:
            raise ValueError(f"rodeo option hidden (the control variate's hidden units) must be an integer from 1 "
                             f"to {MAX_HIDDEN}, got {H!r}")
        return {**opts, "hidden": int(H)}

    def not_measured(self, info):
        return ("its control variate is trained with the model, so its variance at initialisation (score's with "
                "'loo') is no guide (docs/benchmarks/estimators.md, the study on real digits)")

    def estimate(self, ctx):
        (g,) = ctx.param_grads()
        if g is NO_GRAD:
            return
        K, S = ctx.rows.samples, ctx.rows.configs
        D, H = ctx.node.width, ctx.options["hidden"]
        phi, gphi = ctx.parameter("cv", (rodeo_size(D, H),), init(D, H))
        below = ctx.rows.enumerated_below or (Const("(1,)"), Const("(1,)"))
        (a,) = ctx.params()
        b, rw = ctx.value(), ctx.rows.weights
        F, W, S0 = ctx.buffer("rodeoF"), ctx.buffer("rodeoW"), ctx.buffer("rodeoS0")
        Pm, V, Vv = ctx.buffer("rodeoP", D), ctx.buffer("rodeoV", D), ctx.buffer("rodeoVv", D)
        Th, Gp = ctx.buffer("rodeoTh", H * (D + 1)), ctx.buffer("rodeoGp", rodeo_size(D, H))
        ctx.call(rodeo_signal, a, b, ctx.downstream_cost(), rw, *below, F, W, Pm)
        ctx.call(rodeo_cv, a, b, Pm, F, K, S, *below, phi, H, Th, S0, V)
        ctx.call(rodeo_grad, b, Pm, F, S0, V, rw, K, S, *below, g)
        ctx.call(rodeo_train, a, b, Pm, F, W, S0, V, Th, K, S, *below, phi, H, Vv, Gp)
        ctx.call(rodeo_collect, Gp, gphi)
