"""The estimator interface and its registry.

An estimator is small and stateless: it says whether it applies to a stochastic node, whether
it is unbiased, and emits the node's forward (sampling) and backward (what reaches the node's
parameters) code through the compiler's lowering context. Learnable state (baselines,
temperatures) is declared through the context, so it lives in the program's parameter set.

The context an estimator sees is `Context` below (`lw`: ppl.lowering.Lowering implements it)
and, in the row-fused lowering, `RowContext` (`sl`: ppl.scalar_lowering.ScalarLowering). An
estimator reads, calls and records through those members only; it writes no other state of
the lowering (tests/test_compiler.py checks every `lw.` / `sl.` use in ppl/estimators/).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from .. import graph as G

class Context(Protocol):
    """What an estimator may use of the array lowering (buffer names are generated-code names)."""

    # reading
    choices: dict        # stochastic node -> (Choice, NodeInfo)
    an: object           # graph.Analysis: order, downstream costs, ancestors' inputs
    samples: int         # K draws per data row
    objective: str       # "elbo" or "iwae"
    totals: str          # IWAE: each row's sum of costs (C of its draw and configuration)
    S: int               # configurations per drawn row (enumeration, antithetic pairs)
    enum_stride: dict    # node -> the stride of its configuration digit in a row index
    row_digit: dict      # node -> (stride, size) of that digit (REBAR nodes share one: Lowering.plan_rows)
    cv_slot: dict        # REBAR node -> (off, span): its configuration c >= 1 at local index off + c - 1
    rw: str              # row weights (1D)
    cw: str              # cost cotangent seeds (1D; rw except on REBAR's control-variate rows)
    empty1: str              # an empty 1D buffer (a skipped gradient)
    empty2: str              # an empty 2D buffer (a skipped gradient)
    zero_rows: str       # a 1D buffer of zeros
    noise_of: dict       # node -> the base noise buffer(s) its draw used (record_noise)
    noise_kind: dict     # node -> that noise's kind ("uniform", "normal", ...)
    kept: dict           # ("log_prob", node) -> sigma(logits) a log_prob cost kept for its VJP
    kept_rep: set        # keys of `kept` whose buffer has one row per data row (the `_rep` kernels)
    log_prob_weights: dict  # node -> weights of log_prob(node) costs to fold into its VJP
    rng: object          # numpy Generator for parameter initialisation
    # recording (the one mapping an estimator writes)
    scratch: dict        # (estimator name, node) -> what its forward leaves for its backward

    def dist(self, node): """The node's Distribution (ppl.distributions)."""
    def v(self, node) -> str: """The node's value buffer (R rows: every row of the layout)."""
    def per_data_row(self, node): """"vB, reps" when the node is computed once per data row and read on
        reps > 1 drawn rows (the arguments of the `_rep` kernels), else None."""
    def g(self, node): """The node's cotangent buffer, or None when no gradient is needed."""
    def param_values(self, node) -> list: """Value buffers of the node's distribution parameters."""
    def param_grads(self, node) -> list: """Their cotangent buffers (empty2 where none)."""
    def head_cw(self, head) -> str: """A cost head's cotangent seeds on all rows: cw (N cw: a plate's per-row cost)."""
    def downstream_L(self, node) -> str: """A 1D buffer: the sum of the node's downstream costs per row."""
    def learning_signal(self, node) -> tuple: """(L, weights): a score-function node's signal per row and
        the row weights of its estimate (ELBO: downstream_L and rw; IWAE: the row's bound and 1 / B)."""
    def vimco_baseline(self) -> str: """IWAE: a 1D buffer of VIMCO's leave-one-out baselines per row."""
    def baseline_inputs(self, node) -> list: """The data inputs above the node (learned baselines)."""
    # emitting
    def emit(self, line: str) -> None: """One line of the current section (forward or backward)."""
    def emit_at_start(self, line: str) -> None: """One line at the top of the step."""
    def call(self, kernel: str, ins: list, outs: list, node=None) -> None: """core.kernel(ins, [K], outs)."""
    def log_prob_vjp(self, node, weights: str, gx: str, params: bool = True) -> None: """Row-weighted VJP of log p(node)."""
    # allocating
    def buf1(self, name: str) -> str: """A new (R,) buffer."""
    def buf2(self, name: str, width, rows="R") -> str: """A new (rows, width) buffer."""
    def param(self, name: str, shape: tuple, init) -> tuple: """A parameter: (view, gradient view)."""
    def state_slot(self, name: str, size: int, init=0.0) -> int: """Non-gradient state: its offset."""
    def state_value(self, name: str, init: float) -> str: """A 1-element state view."""
    def noise(self, node, kind: str, k: int = 0, width=None) -> str: """The node's base noise, one draw per drawn
        row (`width` columns, default the node's)."""
    def record_noise(self, node, noise, kind=None) -> None: """Record the base noise a draw used."""


class RowContext(Context, Protocol):
    """The row-fused lowering's context: Context plus the helpers of straight-line row code
    (values and cotangents are locals; cfg is the configuration whose code is emitted)."""

    cfg: int

    def val(self, node, cfg=None) -> str: """The local holding the node's value."""
    def cot(self, node, cfg=None): """The local holding its cotangent, or None."""
    def add_cot(self, node, expr: str, cfg=None) -> None: """cot(node) += expr (when it exists)."""
    def local(self, prefix: str, node, cfg=None, per_config=True) -> str: """A named local of the row code."""
    def digit(self, node, cfg=None) -> int: """The node's configuration digit in cfg."""
    def emit_pre(self, line: str) -> None: """A line before the row loop."""
    def emit_post(self, line: str) -> None: """A line after the row loop (gradient step)."""
    def noise_scalar(self, node, kind: str, k: int = 0) -> str: """The row's base noise (a local)."""
    def temperature(self, node, init: float) -> str: """A local holding a fixed temperature."""
    def sample_hard(self, node) -> str: """The ordinary draw; returns its noise local."""
    def log_prob_vjp_row(self, node, weight: str, with_value: bool) -> None: """weight * d log p into the cotangents."""
    def downstream_L(self, node, cfg=None) -> str: """A local: the sum of the node's downstream costs."""


REGISTRY: dict[str, "Estimator"] = {}


@dataclass(frozen=True)
class Rule:
    """A default choice an estimator declares: under `policy` ("*": every policy), for a node
    where `when(info)` holds and the estimator applies, choose it, for the reason `why(info)`
    (what `explain()` prints). The compiler tries every estimator's rules by `rank`, lowest
    first; the first that fires wins (selection.RULES)."""

    policy: str
    rank: int
    when: object      # (NodeInfo) -> bool
    why: object       # (NodeInfo) -> str


@dataclass
class NodeInfo:
    """What the compiler knows of a stochastic node when choosing its estimator."""

    node: object
    dist: object             # ppl.distributions.Distribution
    blocked_by: str | None   # a gradient-free black box on a path to its costs, or None
    samples: int             # K draws per data row
    support: int | None      # joint support size (discrete nodes)
    objective: str = "elbo"  # "elbo" or "iwae" (compile's objective)
    analysis: object = None  # graph.Analysis of the model (the graph around the node)

    @property
    def differentiable(self) -> bool:
        return self.blocked_by is None


class Estimator:
    name = ""
    unbiased = True
    bias = ""                  # a biased estimator: where its bias comes from (explain() prints it)
    passes_value_grad = False  # True when the cotangent of the node's value reaches its parameters
    # True when the estimator's backward ends in the node's own log-probability VJP with per-row
    # weights: a log_prob(node) cost then adds its weights there instead of a second VJP call
    fuses_log_prob = False
    hard_forward = True        # the forward value is a hard (discrete) sample
    # True when a log_prob(node) cost's gradient must not reach the node's distribution
    # parameters directly, only through the node's value (DReG)
    stops_log_prob_params = False
    # True when its extra rows re-evaluate the graph below the node (REBAR's control variate):
    # it then seeds those rows' cost cotangents (seed_weights) and owns what they do to the
    # stochastic nodes below it (forward_below / backward_below)
    evaluates_below = False
    # Whether readers may merge the node's rows that hold equal values (Lowering._data_rows):
    # True when its backward reads the value's cotangent, if at all, as a sum over rows of the
    # same linear map on rows whose values are equal (the cotangent of a merged row then reaches
    # the parameters whole from any one of them). None: True when it reads no value cotangent.
    shares_rows = None
    options: dict = {}         # option name -> default
    about = ""                 # one line: what it computes (`ppl list`)
    cite = ""                  # the paper(s) it implements (authors, year, venue), shown by `ppl list`
    objectives = ("elbo",)     # the objectives whose gradient it estimates (compile's objective)
    # the name prefixes of the parameters it declares (lw.param: learned baselines, control
    # variates, eta and temperature): trained with the model, not the model's (estimator_params)
    param_prefixes: tuple = ()
    rules: tuple = ()          # Rule entries: when a policy picks it by default (selection.RULES)

    def not_measured(self, info: NodeInfo) -> str | None:
        """Why the "autotune" policy neither compiles nor measures it for this node (its
        variance at the initial parameters is no guide, or a better twin applies), else None."""
        return None

    def applies(self, info: NodeInfo) -> str | None:
        """None when the estimator applies to the node under the program's objective, else why not."""
        if info.objective not in self.objectives:
            return (f"it estimates the gradient of the {' and '.join(repr(o) for o in self.objectives)} "
                    f"objective, not of {info.objective!r}")
        return self.check(info)

    def check(self, info: NodeInfo) -> str | None:
        """None when the estimator applies to the node (whatever the objective), else why not."""
        return None

    def resolve(self, info: NodeInfo, opts: dict) -> dict:
        """The options with their defaults that depend on the node made concrete (the score
        estimator's baseline); a ValueError names an option that cannot apply."""
        return opts

    def expansion(self, info: NodeInfo, opts: dict) -> int:
        """How many rows each drawn row becomes (enumeration); 1 for sampling estimators."""
        return 1

    def forward(self, lw: Context, node, opts: dict) -> None:
        raise TypeError(f"estimator '{self.name}' has no forward")

    def backward(self, lw: Context, node, opts: dict) -> None:
        raise TypeError(f"estimator '{self.name}' has no backward")

    # Estimators that evaluate the graph below their node on extra rows (evaluates_below)
    def seed_weights(self, lw: Context, node) -> None:
        """Set cw (the cost cotangent seeds, a copy of rw) on the node's extra rows."""

    def forward_below(self, lw: Context, below, above: list) -> None:
        """Emit, after `below`'s own forward, what the extra rows of the nodes `above` (this
        estimator's, outermost first) do to the stochastic node `below`."""

    def backward_below(self, lw: Context, below, above: list) -> None:
        """The backward of forward_below, emitted before `below`'s own backward."""

    # Row-fused scalar lowering (ppl/scalar_lowering.py) of a width-1 node: the same estimate
    # written as straight-line code for one row, for estimators whose backward reads that row only.
    # Why a second emitter (measured, BENCHMARKS.md "toy estimate"): on width-1 graphs the array
    # form's per-node kernel calls cost 343 ns (score) / 371 ns (DisARM) per estimate, the
    # row-fused form 65-80 / 62 ns. The maths is not written twice: both forms call the same
    # kernels/scalar.py functions (score_signal, moving_average, antithetic_bit, arm_coef,
    # disarm_coef, the distributions' formulas); only how the call is emitted differs.
    def scalar_support(self, node, opts: dict) -> str | None:
        """None when the estimator has a row-fused form for this node, else why not."""
        return f"estimator '{self.name}' has no row-fused form"

    def scalar_forward(self, sl: RowContext, node, opts: dict) -> None:
        raise TypeError(f"estimator '{self.name}' has no row-fused forward")

    def scalar_backward(self, sl: RowContext, node, opts: dict) -> None:
        raise TypeError(f"estimator '{self.name}' has no row-fused backward")



def estimator_params() -> tuple:
    """Every registered estimator's parameter name prefixes (Estimator.param_prefixes), for
    str.startswith: what Program.model_param_names and the diagnostics leave out."""
    return tuple(sorted({p for est in REGISTRY.values() for p in est.param_prefixes}))


def register(cls):
    REGISTRY[cls.name] = cls()
    return cls


def enumerated_below(lw, node):
    """The enumerated nodes below `node` as generated-code tuple literals (strides, sizes) of
    their row digits, or None. Their rows carry p(c | node's value): an estimator that compares
    or averages learning signals across draws of `node` must first marginalise them over these
    digits (sum_c rw L / sum_c rw); per configuration the comparison is biased."""
    below = G.nx.descendants(lw.an.graph, node.name)
    digits = [lw.row_digit[e] for e in lw.row_digit if e.name in below and lw.choices[e][0].estimator == "enumerate"]
    if not digits:
        return None
    return ("(" + "".join(f"{s}, " for s, _ in digits) + ")", "(" + "".join(f"{z}, " for _, z in digits) + ")")


def sample_hard(lw, node, noise_free=False):
    """Emit the ordinary draw of a node from its base noise (shared by several estimators).

    noise_free: the estimator never reads the noise (only the value), so a node whose logits
    are the same on a data row's drawn rows (the data-row sub-graph's, under samples=K) may be
    drawn by the distribution's `sample_rep` kernel: uniform noise against sigma(-a) computed
    once per data row (the same draws as the logistic noise's, from the same uniforms)."""
    d = lw.dist(node)
    rep = lw.per_data_row(node.inputs[0]) if noise_free and "sample_rep" in d.kernels else None
    if rep is not None:
        noise = lw.noise(node, "uniform")
        lw.record_noise(node, noise, "uniform")
        lw.emit(f"core.{d.kernels['sample_rep']}({rep}, {noise}, {lw.v(node)})")
        return noise
    noise = lw.noise(node, d.noise, width=None if d.noise_draws == 1 else d.noise_draws * node.width)
    lw.record_noise(node, noise, d.noise)
    lw.call(d.kernels["sample"], [*lw.param_values(node), noise], [lw.v(node)], node)
    return noise


class HardSampleSurrogate(Estimator):
    """A biased estimator whose forward pass is the node's ordinary hard draw and whose backward
    pass is one distribution kernel (`kernel`, a key of Distribution.kernels: logit-link Bernoulli
    and Categorical have it) of the logits, the value, the temperature and the value's cotangent
    (ReinMax, Gumbel-Rao, gapped straight-through); a subclass whose kernel takes more arguments
    overrides call_backward."""

    objectives = ("elbo", "iwae")
    unbiased = False
    passes_value_grad = True
    kernel = ""   # the backward kernel's key in Distribution.kernels
    title = ""    # the estimator's name in the check's message

    def check(self, info):
        if self.kernel not in info.dist.kernels:
            return f"{info.dist.name} has no {self.title} backward (logit-link Bernoulli and Categorical do)"
        if not info.differentiable:
            return f"a path to its costs goes through the gradient-free black box '{info.blocked_by}'"
        return None

    def forward(self, lw, node, opts):
        sample_hard(lw, node, noise_free=True)

    def backward(self, lw, node, opts):
        gv = lw.g(node)
        (ga,) = lw.param_grads(node)
        if gv is None or ga == lw.empty2:
            return
        tau = lw.state_value(f"{node.name}.temperature", float(opts["temperature"]))
        (a,) = lw.param_values(node)
        self.call_backward(lw, node, opts, lw.dist(node).kernels[self.kernel], a, tau, gv, ga)

    def call_backward(self, lw, node, opts, kernel, a, tau, gv, ga):
        """Emit the backward kernel's call, ga += its gradient of the logits (this form:
        kernel(logits, value, temperature, value's cotangent) -> ga)."""
        lw.call(kernel, [a, lw.v(node), tau, gv], [ga], node)
