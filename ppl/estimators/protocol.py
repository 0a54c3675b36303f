"""The estimator interface and its registry.

An estimator is small and stateless: it says whether it applies to a stochastic node, whether
it is unbiased, and emits how the node is drawn (`draw`) and what reaches the node's parameters
(`estimate`) through the one context every estimator sees, estimators.context.EstimatorContext
(`ctx`; the same for the built-ins and a user's). Learnable state (baselines, temperatures) is
declared through the context, so it lives in the program's parameter set.

The row-fused lowering runs the same `draw` and `estimate` on a context over one row's locals
(ppl/lowering/rowcontext.py). An estimator reads, calls and records through the context's
members only (tests/compiler/test_compiler.py checks every `ctx.` use in ppl/estimators/).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..calls import kernel_table
from ..errors import ModelError


class NoGrad:
    """The marker of a gradient nobody needs: an estimator or a lowering rule gets it in place of
    a cotangent buffer and compares it with `is`. It is no string: a line of the step's code
    holds it as its name (`NO_GRAD`), and only the printer writes there the step's empty buffer
    it stands for (`buffer`: 2D `empty2`, 1D `empty1`), which every kernel skips (lowering/ir.py,
    SPELLING). One instance per rank (NO_GRAD, NO_GRAD_1D)."""

    __slots__ = ("name", "buffer")

    def __init__(self, name: str, buffer: str):
        self.name, self.buffer = name, buffer

    def __str__(self):
        return self.name

    def __format__(self, spec):
        return format(self.name, spec)

    def __repr__(self):
        return self.name

    def __reduce__(self):   # a copy is the same marker
        return self.name


NO_GRAD = NoGrad("NO_GRAD", "empty2")           # no cotangent of a 2D buffer (a node's values, its parameters)
NO_GRAD_1D = NoGrad("NO_GRAD_1D", "empty1")     # no gradient of a 1D output (a temperature's, per row)


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


JOINS = ("product", "branches", "relaxed", "alternative")


@dataclass(frozen=True)
class RowShape:
    """The rows an estimator gives each drawn row of its node (`Estimator.row_shape`), what the
    row plan (lowering/rows.py) reads of it: `configs` rows per drawn row, the drawn one included;
    how they sit with other nodes' rows (`joins`):
      "product"      a digit of its own: every other digit's rows repeat for each (an enumeration);
      "branches"     rows only its own estimate reads, its drawn row's branches (an antithetic
                     pair, measure-valued branches): with other such nodes one shared digit, where
                     rows add up rather than multiply;
      "relaxed"      rows that evaluate the graph below with other values than the drawn one
                     (REBAR's control variate): always the shared digit;
      "alternative"  branches of which one, the alternative row, every such node shares
                     (stochastic derivatives);
    and whether the readers of its values may merge its rows that hold equal values (`merges`)."""

    configs: int = 1
    joins: str = "product"
    merges: bool = True

    @property
    def branches(self) -> bool:
        """Whether its extra rows are branches of its own draw that carry no objective weight
        (joins "branches", or "alternative": the alternative row is such a branch too)."""
        return self.joins in ("branches", "alternative")

    def __post_init__(self):
        if self.joins not in JOINS:
            raise ValueError(f"a row shape joins by one of {', '.join(JOINS)}, not {self.joins!r}")


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
    # the estimators chosen for its stochastic ancestors, node name -> (estimator name, options)
    # (selection walks the graph from the top); None where nothing is chosen yet
    above: dict | None = None

    @property
    def differentiable(self) -> bool:
        return self.blocked_by is None


class Estimator:
    """Subclass to write a gradient estimator (ppl's own are written on it too). Set `name` (and
    `about`, `cite`, `options`, `option_words` -- {option: {word: what it asks for}}, the strings a
    `train` option takes beside True / False --, `unbiased` / `bias`), then override:

    check(info) -> None or why not    whether it applies to a node (info.dist, info.node, info.samples,
                                      info.above: the estimators chosen above it)
    rows(info, options) -> int        configuration rows per drawn row (default 1)
    row_shape(info, options)          its rows as the row plan reads them (RowShape: rows() and
                                      how they join other nodes', from the flags below)
    draw(ctx)                         the node's values on every row (default: the ordinary draw)
    estimate(ctx)                     add the gradient of the objective into ctx.param_grads()

    `passes_value_grad = True` asks for the cotangent of the node's values (ctx.cotangent()).
    Register it with ppl.register_estimator; then m.compile(estimators={"h": name}) uses it. Its
    parameters (ctx.parameter) are named `<name>.<node>.<tag>`: `param_prefixes` says so (a
    registered estimator that declares none gets `(name + ".",)`).

    An estimator whose extra rows evaluate the graph below its node with other values than the
    drawn one (REBAR's relaxed rows: ppl/estimators/rebar.py) sets `evaluates_below = True`; its
    rows then share one digit with every such node's (ctx.rows.offset), and it overrides

    seed_weights(ctx)                 the cost cotangents' seeds on its rows (ctx.cost_seeds())
    forward_below(ctx, above)         after the draw of each stochastic node below: what its rows
                                      do to that node (ctx: that node's context; above: the
                                      contexts of the nodes above it with such an estimator)
    backward_below(ctx, above)        the backward of forward_below, before that node's estimate

    The flags and tables below are what the compiler reads of it (capabilities, not names).
    """

    name = ""
    unbiased = True
    bias = ""                  # a biased estimator: where its bias comes from (explain() prints it)
    passes_value_grad = False  # True when the cotangent of the node's value reaches its parameters
    # True when the estimate ends in the node's own log-probability VJP with per-row weights
    # (ctx.log_prob_vjp): a log_prob(node) cost then adds its weights there, not a second VJP call
    fuses_log_prob = False
    hard_forward = True        # the forward value is a hard (discrete) sample
    # True when a log_prob(node) cost's gradient must not reach the node's distribution
    # parameters directly, only through the node's value (DReG)
    stops_log_prob_params = False
    # True when its extra rows re-evaluate the graph below the node (REBAR's control variate):
    # it then seeds those rows' cost cotangents (seed_weights) and owns what they do to the
    # stochastic nodes below it (forward_below / backward_below)
    evaluates_below = False
    # True when its configuration 0 is the node's ordinary draw and its other configurations are
    # branches only its own estimate reads (antithetic partners, measure-valued branches): with
    # other such nodes its rows then join the digit they share (lowering.rows.plan_rows), where rows add
    # up rather than multiply: it is drawn plainly on the others' rows, and its draw and estimate
    # take their place from ctx.rows.slot (and leave the weights of a shared digit alone)
    branch_rows = False
    # True when its extra row is the one alternative row every such node shares (stochastic
    # derivatives with pruning: ppl/lowering/alternative.py): one row per drawn row in all
    alternative_row = False
    # True when its drawn row is a coupled draw of its own, not the law's draw from the node's
    # noise (ARMS's copula draws): the measured choice measures it in a program of its own
    # rather than beside candidates that share one drawn row
    own_draws = False
    # True when its configuration rows carry each configuration's probability in the rows'
    # weights (exact enumeration): an estimate above it that compares its own rows' costs must
    # first marginalise them over this node's digit (ctx.rows.enumerated_below)
    weights_configurations = False
    # Whether readers may merge the node's rows that hold equal values (lowering.rows.plan_rows):
    # True when its estimate reads the value's cotangent, if at all, as a sum over rows of the
    # same linear map on rows whose values are equal (the cotangent of a merged row then reaches
    # the parameters whole from any one of them). None: True when it reads no value cotangent.
    shares_rows = None
    options: dict = {}         # option name -> default
    # option name -> {word: what it asks for}: the strings an option takes beside True / False
    option_words: dict = {}
    # law kind -> {role: kernel}: its kernels for one law each, those of this (estimator, law)
    # pair (a law's entry, ppl/laws/, keeps the law's own): a name of ppl.kernels' core module,
    # called by ctx.law_call(role, ...), or a template rendered over the names it gives
    kernels: dict = {}
    about = ""                 # one line: what it computes (`ppl list`)
    cite = ""                  # the paper(s) it implements (authors, year, venue), shown by `ppl list`
    objectives = ("elbo",)     # the objectives whose gradient it estimates (compile's objective)
    # the name prefixes of the parameters it declares (ctx.parameter: learned baselines, control
    # variates, eta and temperature): trained with the model, not the model's (estimator_params)
    param_prefixes: tuple = ()
    rules: tuple = ()          # Rule entries: when a policy picks it by default (selection.RULES)
    # False for an estimator the compiler composes itself (`candidates`, the measured choice's):
    # never suggested where an error names the estimators that apply
    suggested = True

    def __init_subclass__(cls, **kw):   # its per-law kernels as objects (calls.kernel_table)
        super().__init_subclass__(**kw)
        if "kernels" in vars(cls):
            cls.kernels = {kind: kernel_table(table) for kind, table in cls.kernels.items()}

    def not_measured(self, info: NodeInfo) -> str | None:
        """Why the "autotune" policy neither compiles nor measures it for this node (its
        variance at the initial parameters is no guide, or a better twin applies), else None."""
        return None

    def applies(self, info: NodeInfo) -> str | None:
        """None when the estimator applies to the node under the program's objective, else why
        not; its check() held to its contract (None or a string; an exception of its own code is
        named, with its own error)."""
        if info.objective not in self.objectives:
            return (f"it estimates the gradient of the {' and '.join(repr(o) for o in self.objectives)} "
                    f"objective, not of {info.objective!r}")
        try:
            why = self.check(info)
        except ModelError:
            raise
        except Exception as e:
            raise ModelError(f"estimator '{self.name}': its check(info) raised {type(e).__name__}: {e} (node "
                             f"'{info.node.name}'); check returns None when it applies, else a string saying why "
                             f"not") from e
        if why is not None and not isinstance(why, str):
            raise ModelError(f"estimator '{self.name}': check(info) returned {why!r} for node '{info.node.name}'; "
                             f"return None when it applies, else a string saying why not")
        return why

    def check(self, info: NodeInfo) -> str | None:
        """None when the estimator applies to the node (whatever the objective), else why not."""
        return None

    def form(self, info: NodeInfo):
        """None, or (name, why): the registered estimator that runs in this one's place at the node,
        for the reason `why` (explain() prints it), where the estimator's forms differ in what the
        compiler reads of them (rows, flags: 'relax' behind a black box runs as 'relax_blackbox').
        The options given for this one are checked against that one's."""
        return None

    def resolve(self, info: NodeInfo, opts: dict) -> dict:
        """The options with their defaults that depend on the node made concrete (the score
        estimator's baseline); a ValueError names an option that cannot apply."""
        return opts

    def law_kernel(self, law, key: str):
        """The kernel `key` of this (estimator, law) pair (`kernels[law.kind][key]`), else the
        law's own (`law.kernels[key]`): what ctx.law_call calls, in both lowerings."""
        return self.kernels.get(law.kind, {}).get(key) or law.kernels[key]

    def rows(self, info, options) -> int:
        """Configuration rows per drawn row (ctx.rows.digit); 1 by default."""
        return 1

    def expansion(self, info: NodeInfo, opts: dict) -> int:
        """How many rows each drawn row becomes (its `rows`, checked: an int >= 1)."""
        n = self.rows(info, opts)
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ModelError(f"estimator '{self.name}': rows() must return an int >= 1 for node "
                             f"'{info.node.name}', got {n!r}")
        return n

    def row_shape(self, info: NodeInfo, opts: dict) -> RowShape:
        """Its node's rows as the row plan reads them: `rows` (checked, `expansion`) and how they
        join the other nodes' (its flags: `evaluates_below` relaxed, `alternative_row`
        alternative, `branch_rows` branches, else a product), merged where `shares_rows` (by
        default where it reads no value cotangent)."""
        joins = ("relaxed" if self.evaluates_below else "alternative" if self.alternative_row
                 else "branches" if self.branch_rows else "product")
        merges = self.shares_rows if self.shares_rows is not None else not self.passes_value_grad
        return RowShape(self.expansion(info, opts), joins, bool(merges))

    def checked_shape(self, info: NodeInfo, opts: dict) -> RowShape:
        """Its `row_shape`, held to its contract: a RowShape whose rows are "relaxed" exactly when
        it `evaluates_below` (its hooks act on those rows) and "alternative" exactly when it draws
        the `alternative_row`."""
        shape = self.row_shape(info, opts)
        node = getattr(info.node, "name", info.node)
        if not isinstance(shape, RowShape):
            raise ModelError(f"estimator '{self.name}': row_shape() must return a ppl.estimators.RowShape for node "
                             f"'{node}', got {shape!r}")
        for joins, flag in (("relaxed", "evaluates_below"), ("alternative", "alternative_row")):
            if (shape.joins == joins) != bool(getattr(self, flag)):
                raise ModelError(f"estimator '{self.name}': its row shape for node '{node}' joins by {shape.joins!r} "
                                 f"but {flag} is {bool(getattr(self, flag))}; rows that join by {joins!r} come with "
                                 f"{flag} = True (and its hooks), and only those")
        return shape

    def draw(self, ctx) -> None:
        """Emit the node's values on every row of the step (ctx: estimators.context.EstimatorContext);
        by default the law's ordinary draw."""
        ctx.sample()

    def estimate(self, ctx) -> None:
        """Emit what reaches the node's parameters: their gradient added into ctx.param_grads()."""
        raise TypeError(f"estimator '{self.name}' defines no estimate(ctx)")

    # Estimators that evaluate the graph below their node on extra rows (evaluates_below); ctx is
    # the context of the node they act on, `above` the contexts of this estimator's nodes above
    # it, outermost first
    def seed_weights(self, ctx) -> None:
        """Set cw (the cost cotangent seeds, a copy of rw) on the node's extra rows."""

    def forward_below(self, ctx, above: list) -> None:
        """Emit, after the node's own draw, what the extra rows of the nodes `above` do to it."""

    def backward_below(self, ctx, above: list) -> None:
        """The backward of forward_below, emitted before the node's own estimate."""

    # Row-fused lowering (ppl/lowering/rowfused.py) of a width-1 node: the draw and the estimate as
    # straight-line code for one row. The estimator's own draw and estimate run on a context over
    # the row's locals (ppl/lowering/rowcontext.py): each kernel call is rewritten into row code
    # (kernels/rowcode.py), a body that reads its configuration's other rows (an antithetic
    # pair's) or folds over the rows (score's running baseline) included, and where a member or a
    # kernel has no row form the graph is lowered with array kernels instead. Why a row form at
    # all: on width-1 graphs the array form's kernel calls cost several times the row-fused
    # estimate (docs/benchmarks/against-pytorch-pyro.md, "toy estimate").
    def scalar_support(self, node, opts: dict) -> str | None:
        """None when the estimator may have a row-fused form for this node, else why not."""
        return None


def row_shapes(order, choices) -> dict:
    """node -> its chosen estimator's RowShape (`Estimator.checked_shape`: its rows and how they
    join others'), for the nodes of `order` with a choice (`choices`: node -> (choice, info))."""
    return {n: REGISTRY[choices[n][0].estimator].checked_shape(choices[n][1], choices[n][0].options)
            for n in order if n in choices}


def joined_by(order, choices, joins: str) -> list:
    """The nodes of `order` whose chosen estimator's rows join by `joins` (one of JOINS), in order."""
    return [n for n, shape in row_shapes(order, choices).items() if shape.joins == joins]


def estimator_params() -> tuple:
    """Every registered estimator's parameter name prefixes (Estimator.param_prefixes), for
    str.startswith: what Program.model_param_names and the diagnostics leave out."""
    return tuple(sorted({p for est in REGISTRY.values() for p in est.param_prefixes}))


def register(cls):
    REGISTRY[cls.name] = cls()
    return cls


class HardSampleSurrogate(Estimator):
    """A biased estimator whose forward pass is the node's ordinary hard draw and whose backward
    pass is one kernel (`kernel`, its role in the estimator's `kernels`: logit-link Bernoulli and
    Categorical have it) of the logits, the value, the temperature and the value's cotangent
    (ReinMax, Gumbel-Rao, gapped straight-through); a subclass whose kernel takes more arguments
    overrides call_backward."""

    objectives = ("elbo", "iwae")
    unbiased = False
    passes_value_grad = True
    kernel = ""   # the backward kernel's role in its `kernels`
    title = ""    # the estimator's name in the check's message

    def check(self, info):
        if info.dist.kind not in self.kernels:
            return f"{info.dist.name} has no {self.title} backward (logit-link Bernoulli and Categorical do)"
        if not info.differentiable:
            return f"a path to its costs goes through the gradient-free black box '{info.blocked_by}'"
        return None

    def draw(self, ctx):
        ctx.sample(reads_noise=False)

    def estimate(self, ctx):
        gv = ctx.cotangent()
        (ga,) = ctx.param_grads()
        if gv is NO_GRAD or ga is NO_GRAD:
            return
        tau = ctx.state("temperature", float(ctx.options["temperature"]), name=f"{ctx.node.name}.temperature")
        (a,) = ctx.params()
        self.call_backward(ctx, self.kernel, a, tau, gv, ga)

    def call_backward(self, ctx, kernel, a, tau, gv, ga):
        """Emit the backward kernel's call, ga += its gradient of the logits (this form:
        kernel(logits, value, temperature, value's cotangent) -> ga)."""
        ctx.law_call(kernel, [a, ctx.value(), tau, gv], [ga])
