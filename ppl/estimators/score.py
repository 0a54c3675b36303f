"""Score-function (REINFORCE) estimator with baselines (Williams 1992).

The node's parameters a receive rw * (L_s - b) * d log p(s | a) / da, where L_s is the sum of
the costs downstream of s for that row (Rao-Blackwellised: other costs do not enter) and b a
baseline that does not depend on this row's draw of s:
  none            b = 0
  moving_average  b = running mean of L_s over earlier steps (decay 0.9)
  loo             leave-one-out mean over the other K-1 samples of the same data row
  learned         b = w . x + c on the node's data inputs x, trained by the same optimiser on
                  E[(L_s - b)^2] (NVIL, Mnih & Gregor 2014)
The value of s is a constant: no gradient flows through it.

Under the IWAE bound (compile(objective="iwae")) the signal of a draw is the bound of its data
row, ell_i = -log (1/K sum_k exp(-C_ik)) (not Rao-Blackwellised: every cost of the draw enters
the bound through its weight), each data row weighted 1 / B; baselines 'none' or
'moving_average' (of ell). The estimator 'vimco' is its leave-one-out form.
"""
from ppl.calls import KERNELS
from .protocol import NO_GRAD, REGISTRY, Estimator, Rule, register

BASELINES = ("none", "moving_average", "loo", "learned")


def _score_reason(i) -> str:
    if i.blocked_by:
        return f"a path to its costs goes through the gradient-free black box '{i.blocked_by}'"
    if i.dist.discrete and REGISTRY["cat_disarm"].applies(i) is None:
        return ("discrete node: the unbiased default is the score function with a baseline (categorical DisARM "
                "was not clearly better at equal steps, was worse at equal wall clock and costs more per step: "
                "docs/benchmarks/estimators.md, the estimator study)")
    if i.dist.discrete:
        return "discrete node: the unbiased default is the score function with a baseline"
    return "not reparameterisable"


def in_loop(i) -> bool:
    """Whether the node is in the body of a ppl.scan (drawn once per step)."""
    return i.analysis is not None and bool(getattr(i.analysis, "loops", ())) and i.analysis.loop_of(i.node) is not None


@register
class Score(Estimator):
    name = "score"
    rules = (Rule("unbiased", 45, lambda i: i.dist.discrete and in_loop(i),
                  lambda i: "discrete node in a scan's body: an estimator with extra rows takes them at every step "
                            "(1 + the length rows for DisARM or mvd), and one alternative path for all the steps "
                            "(stochastic derivatives) is worth it where the paths meet again (a walk, a queue); "
                            "the score function with a running baseline per step is the rule table's choice, and the "
                            "measured choice weighs stochastic derivatives against it "
                            "(docs/benchmarks/simulations.md, the simulations in ppl)"),
             Rule("*", 1000, lambda i: True, lambda i: _score_reason(i)))
    param_prefixes = ("baseline.",)
    about = 'score function (REINFORCE) with a baseline; any distribution'
    cite = 'Williams 1992, REINFORCE, Machine Learning 8; baselines: Mnih & Gregor 2014 (NVIL), ICML; leave-one-out: Kool, van Hoof & Welling 2019, ICLR workshop'
    options = {"baseline": None, "decay": 0.9}
    fuses_log_prob = True
    objectives = ("elbo", "iwae")

    def check(self, info):
        return None  # every distribution here has a log-density

    def resolve(self, info, opts):
        iwae = info.objective == "iwae"
        b = opts.get("baseline") or ("loo" if info.samples > 1 and not iwae else "moving_average")
        if b not in BASELINES:
            raise ValueError(f"baseline must be one of {', '.join(BASELINES)}, got {b!r}")
        if iwae and b not in ("none", "moving_average"):
            raise ValueError(f"under objective 'iwae' the score estimator's baseline is 'none' or 'moving_average' "
                             f"(got {b!r}); for leave-one-out baselines of the bound use the estimator 'vimco'")
        if b == "loo" and info.samples < 2:
            raise ValueError("baseline 'loo' needs samples >= 2 (compile(..., samples=K))")
        return {**opts, "baseline": b}

    def draw(self, ctx):
        ctx.sample(reads_noise=False)

    def estimate(self, ctx):
        if all(gr is NO_GRAD for gr in ctx.param_grads()):
            return
        node, opts = ctx.node, ctx.options
        L, rw = ctx.learning_signal()
        b = ctx.buffer("b")
        kind = opts["baseline"]
        if kind == "none":
            ctx.call(KERNELS.rows.zero1, b)
        elif kind == "moving_average":
            slot = ctx.state("mean", size=2, name=f"baseline.{node.name}.mean")
            ctx.call(KERNELS.rows.moving_average_baseline, L, rw, 'state', slot, float(opts['decay']), b, True)
        elif kind == "loo":
            # enumerated nodes below this one weight their rows by p(c | this node's draw): the
            # baseline then comes from the signal marginalised over their digits (see
            # cpu_rows.loo_baseline_marginal); a per-configuration one would be biased
            digits = ctx.rows.enumerated_below
            if digits:
                strides, sizes = digits
                ctx.call(KERNELS.rows.loo_baseline_marginal, L, ctx.rows.weights, ctx.rows.samples, ctx.rows.configs,
                         strides, sizes, b)
            else:
                ctx.call(KERNELS.rows.loo_baseline, L, ctx.rows.samples, ctx.rows.configs, b)
        elif kind == "learned":
            self._learned_baseline(ctx, L, b)
        wts = ctx.buffer("w")
        ctx.call(KERNELS.rows.score_weights, rw, L, b, wts)
        ctx.log_prob_vjp(wts)   # log_prob(node) costs: the same VJP (fuses_log_prob)

    def _learned_baseline(self, ctx, L, b):
        """b = w . x + c on the node's data inputs, w trained on E[(L - b)^2] (NVIL)."""
        feats = ctx.data_inputs()
        width = sum(w for _, w in feats) + 1
        w, gw = ctx.parameter("baseline", (width,), 0.0, name=f"baseline.{ctx.node.name}")
        ctx.call(KERNELS.rows.fill, b, f'{w}[{width - 1}]')
        off = 0
        for x, xw in feats:
            ctx.call(KERNELS.rows.linear_baseline_fwd, x(), w, off, b)
            off += xw
        coef = ctx.buffer("bres")
        ctx.call(KERNELS.rows.baseline_residual, ctx.rows.weights, L, b, coef)
        off = 0
        for x, xw in feats:
            ctx.call(KERNELS.rows.linear_baseline_bwd, x(), coef, off, gw)
            off += xw
        ctx.call(KERNELS.rows.add_sum_to, coef, gw, width - 1)

    # ----- the row-fused step: b the running mean of earlier steps, a fold over the rows (rowcode.FOLDS)
    def scalar_support(self, node, opts):
        if opts["baseline"] not in ("none", "moving_average"):
            return f"the '{opts['baseline']}' baseline reads other rows"
        return None
