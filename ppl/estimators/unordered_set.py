"""The unordered set estimator with its built-in baseline (Kool, van Hoof & Welling 2020,
"Estimating gradients for discrete random variables by sampling without replacement", ICLR) for
a categorical node of one group.

Each drawn row becomes k rows (the node's configuration digit): k distinct classes drawn without
replacement by Gumbel-top-k, evaluated in the same fused pass. Row t's weight is multiplied by
w_t = p(s_t) R(S, s_t), the probability that s_t came first given the set, so the costs and every
other gradient are the set's unbiased estimate sum_t w_t f(s_t); the logits receive
sum_t w_t (f(s_t) - b_t) (e_{s_t} - pi) with the built-in baseline b_t, the estimate of E f from
the other k - 1 classes given s_t drawn first (kernels/families/unordered_set.py). Unbiased
for k >= 2. One group per node: with several groups, row t would join the t-th draws of every group,
which is not a draw of the groups' product, so each group needs its own node.

Nodes above it whose estimate compares or reuses a draw's rows (antithetic pairs, REBAR / RELAX
rows, a leave-one-out baseline, another set) would see the rows' weights w_t, which sum to 1 only
in expectation: such an ancestor is refused with the estimators that apply (score with another
baseline, enumerate, pathwise, the biased relaxations)."""
import numbers

from ppl.kernels.families.unordered_set import MAX_SET, table_width

from .protocol import NO_GRAD, Estimator, register

# estimators of a stochastic ancestor whose estimate holds with a set's weighted rows below it
_ABOVE_OK = ("pathwise", "enumerate", "straight_through", "concrete", "gumbel_softmax", "reinmax", "gumbel_rao",
             "gapped_st")


@register
class UnorderedSet(Estimator):
    name = "unordered_set"
    about = "k categories without replacement (Gumbel-top-k), the unordered set estimator with its built-in baseline"
    cite = ('Kool, van Hoof & Welling 2020, "Estimating gradients for discrete random variables by sampling '
            'without replacement", ICLR')
    options = {"k": None}   # None: min(4, the node's classes)
    kernels = {"categorical": dict(us_forward="us_forward", us_grad="us_grad")}

    def check(self, info):
        if info.dist.kind not in self.kernels:
            return (f"{info.dist.name} is not a logit categorical node (sampling without replacement needs classes, "
                    f"its kernels logits)")
        K = info.node.attrs.get("K")
        if info.node.width != K:
            return (f"it has {info.node.width // K} groups; the set's k rows hold one group's k classes, so give each "
                    f"group its own node (classes={K}, width {K})")
        for name, (est, opts) in (info.above or {}).items():
            if est in _ABOVE_OK or (est == "score" and opts.get("baseline") != "loo"):
                continue
            return (f"it cannot sit below '{name}' (estimator '{est}', whose estimate compares a draw's rows, and the "
                    f"set's row weights sum to 1 only in expectation); use 'score' with baseline 'none', "
                    f"'moving_average' or 'learned', 'enumerate' or 'pathwise' for '{name}'")
        return None

    def resolve(self, info, opts):
        K = info.node.attrs.get("K")
        k = min(4, K) if opts["k"] is None else opts["k"]
        if not isinstance(k, numbers.Integral) or isinstance(k, bool) or not 2 <= k <= min(K, MAX_SET):
            raise ValueError(f"option k (classes drawn without replacement) must be an integer from 2 to "
                             f"{min(K, MAX_SET)} (the classes, at most {MAX_SET}), got {k!r}")
        return {**opts, "k": int(k)}

    def expansion(self, info, opts):
        return opts["k"]

    def draw(self, ctx):
        k = int(ctx.options["k"])
        g = ctx.noise("gumbel")
        (a,) = ctx.params()
        ws = ctx.buffer("us", table_width(k))   # the set's table, read by the estimate
        ctx.law_call("us_forward", [a, g, int(ctx.rows.digit[0]), int(k)], [ws, ctx.value(), ctx.rows.weights])

    def estimate(self, ctx):
        (ga,) = ctx.param_grads()
        if ga is NO_GRAD:
            return
        (a,) = ctx.params()
        ws = ctx.buffer("us", table_width(int(ctx.options["k"])))
        ctx.law_call("us_grad", [a, ws, ctx.downstream_cost(), ctx.rows.weights, int(ctx.rows.digit[0]),
                                 int(ctx.options["k"])], [ga])
