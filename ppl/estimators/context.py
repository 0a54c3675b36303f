"""The estimator context: `EstimatorContext`, what every estimator's draw and estimate see, with
`Kernel` and `register_estimator` (exported as ppl.EstimatorContext, ...; the `Estimator` base
class is protocol.py's).

An estimator decides two things for its stochastic node: how the node is drawn on each row of
the step (`draw`), and what reaches the node's distribution parameters (`estimate`). Both emit
kernel calls through the context; a kernel is an @njit function of arrays (the CPU target), or a
`Kernel` with a CUDA launcher of the same arguments too. `rows` may turn each drawn row into
several configuration rows (as an antithetic pair or an enumeration does): the graph below the
node is then evaluated on every one of them in the same fused pass, and `downstream_cost()` gives
each row's sum of the costs below the node. examples/user_estimator.py writes one.

Every estimator, built-in or a user's, sees the same `EstimatorContext` and nothing else of the
lowering: also REBAR, whose extra rows re-evaluate the graph below its node (`evaluates_below`),
and Price, which differentiates that graph twice (`below()`, `value(node)`, `cost_seeds(head)`).
On a graph of width-1 nodes the same draw and estimate run on the context over one row
(ppl/lowering/rowcontext.py) when every kernel they call has a row form (a body ppl can read:
its own declared kernels and the laws'); otherwise the array kernels run, as they always can.
"""
from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass

import numpy as np

from ..analysis import graph as G
from ..calls import KERNELS, Call, Const, KernelRef, Name, parse
from ..errors import ModelError
from .protocol import NO_GRAD, REGISTRY, Estimator

NOISE_KINDS = ("uniform", "normal", "logistic", "gumbel")   # kernels/cpu/noise.py's fills
MAX_NOISE = 16   # noise streams per node


@dataclass(frozen=True)
class Rows:
    """The rows of the step as an estimator sees them (`ctx.rows`): every buffer has one row per
    (data row, draw, configuration)."""

    samples: int    # K draws per data row
    configs: int    # S configuration rows per drawn row (every node's digits)
    # (stride, size) of the node's configuration digit: row r is configuration (r // stride) % size
    # of its drawn row (size = the estimator's rows(); (1, 1) when it has one row per draw)
    digit: tuple
    # 1D buffer: each row's weight in the objective, summing to 1 over the step's rows; 1 / (batch
    # x samples) on every row before the draws, configuration rows included: an estimator with
    # rows() > 1 splits its drawn row's weight over its rows itself
    weights: str
    # None, or (strides, sizes) as tuple literals of code: the configuration digits of the
    # enumerated nodes below the node. Their rows carry p(c | the node's value) in `weights`, so an
    # estimate that compares the costs of the node's configuration rows must first marginalise
    # each over those digits (sum w L / sum w); row by row it is biased.
    enumerated_below: tuple | None = None
    # (strides, sizes) as tuple literals of code: the configuration digits of every stochastic
    # node below (enumerated, antithetic, REBAR's), or the neutral digit "(1, )", "(1, )" if none
    digits_below: tuple = (Const("(1, )"), Const("(1, )"))
    zeros: str = ""   # 1D buffer of zeros (a baseline of none)
    # an estimator that evaluates_below: the nodes of such estimators share one digit (`digit`),
    # whose rows add up rather than multiply; the node's configuration c >= 1 is that digit's
    # local index offset + c - 1 (its configuration 0, the drawn row, is local index 0). 0 else
    offset: int = 0
    # objective 'iwae': 1D, each row's total cost, -log w of its draw (the bound's terms), set
    # once the loss is lowered (read it in `estimate`); None under the ELBO
    totals: str | None = None

    # whether the node's configurations sit in the digit that several nodes' extra rows share:
    # its extra rows are local indices offset .. offset + size - 2 of that digit (in a loop's body,
    # `offset` is code: its step's), the drawn row keeps its weight and the others weigh 0
    # (kernels/families/branches.py)
    shared: bool = False
    # the alternative row the nodes of estimators with `alternative_row = True` share
    # (ppl/lowering/alternative.py): its 1D buffers W (the jumps' weights' running sum), count (the
    # jumps kept so far) and D (its costs minus the drawn row's), its `slot` (stride, off, span);
    # None when no node draws one
    alternative: object = None

    @property
    def slot(self) -> tuple:
        """(stride, off, span): configuration 0 of the node at local index 0 of its digit (stride,
        span), configuration c >= 1 at local index off + c - 1; (stride, 1, size) for a digit of
        its own (kernels/math/scalar.slot_config)."""
        stride, span = self.digit
        return stride, (self.offset if self.shared else 1), span


class Noise(Name):
    """A noise buffer (a name of the step's code, as every buffer) that knows its kind ("uniform",
    ...)."""

    def __init__(self, name, kind: str):
        self.text, self.kind = str(name), kind


@dataclass(frozen=True)
class Kernel:
    """A kernel of a user's estimator: `cpu`, an @njit function; `cuda`, optionally, a host-side
    function of the same arguments over CUDA device arrays (without one, the estimator is refused
    on target='cuda' with an error naming the kernel)."""

    cpu: object
    cuda: object = None

    @property
    def name(self) -> str:
        """The CPU function's name."""
        return getattr(self.cpu, "__name__", "kernel")


def full_name(estimator, node, tag: str, name=None) -> str:
    """The name of an estimator's parameter or state: `<estimator>.<node>.<tag>`, or `name`."""
    return name or f"{estimator.name}.{node.name}.{tag}"


class EstimatorContext:
    """What an estimator sees while its node is lowered (one context per node, the same in its
    draw and its estimate). Buffers are the step's arrays, named by records of its code (calls.Buf,
    Noise: `str()` gives the name the step's code uses): a node's values have one row per row of
    the step (data row x sample x configuration), `width` columns.

    node, options, law, estimator                        what is estimated, and by what
    rows                                                 the rows of the step (Rows: samples, configs,
                                                         digit, offset, weights, enumerated_below,
                                                         digits_below, zeros, totals)
    value(), cotangent(), params(), param_grads()        the node's buffers
    data_inputs()                                        the data inputs above the node
    downstream_cost(), learning_signal(), cost_seeds()   per row, what the node's draw costs
    below()                                              the graph below the node
    noise(), drawn_noise(), buffer()                     base noise, workspaces
    parameter(), state()                                 learnable parameters, running state
    call(), law_call(), emit(), sample()                 emitting
    log_prob_vjp(), log_prob_kept()                      the node's log-probability
    """

    def __init__(self, estimator, lowering, node, options):
        self._lowering = lowering               # ppl.lowering.ArrayLowering: no part of the contract
        self.node = node                        # the stochastic node: .name, .width, .inputs, .attrs
        self.options = options                  # its options, defaults filled in
        self.law = lowering.dist(node)          # its Distribution entry: .name, .params, .kernels, flags
        self.estimator = estimator              # its Estimator (flags: passes_value_grad, hard_forward ...)
        self._streams = 0                       # noise streams used
        self._made = {}                         # name -> the buffer, parameter or state made under it
        self._rows = None                       # Rows, made again only when the loss's totals appear
        self._own_draw = False                  # whether draw emitted its own code (call / emit), not only sample()

    @property
    def rows(self) -> Rows:
        """The rows of the step (Rows), as the lowering knows them when read."""
        lowering, node = self._lowering, self.node
        totals = lowering.iwae_totals() if lowering.objective == "iwae" else None
        if self._rows is None or self._rows.totals != totals:
            enumerated, every = _digits_below(lowering, node)
            self._rows = Rows(lowering.samples, lowering.plan.S, lowering.plan.row_digit.get(node, (1, 1)), lowering.rw,
                              enumerated, every, lowering.zero_rows,
                              offset=lowering.plan.slot_offset(node), totals=totals, shared=node in lowering.plan.shared,
                              alternative=lowering.alternative())
        return self._rows

    # ----- the node's buffers
    def value(self, node=None) -> str:
        """The node's values (rows x width): `draw` writes them, `estimate` reads them. `node`:
        another node's values on this node's rows (a node of below(), or one of their inputs)."""
        return self._lowering.v(self.node if node is None else node)

    def cotangent(self):
        """The cotangent of the node's values, for an estimator with `passes_value_grad = True`
        (it reads df/dvalue) and for a node below an estimator that evaluates the graph below it
        (REBAR's relaxed rows); else NO_GRAD."""
        g = self._lowering.g(self.node)
        return NO_GRAD if g is None else g

    def params(self) -> list:
        """The values of the law's parameters (its logits, loc and scale, ...), rows x width each."""
        return self._lowering.param_values(self.node)

    def param_grads(self) -> list:
        """Their cotangents, where `estimate` adds the gradient; NO_GRAD where none is needed."""
        return self._lowering.param_grads(self.node)

    def data_inputs(self) -> list:
        """(values, width) of each data input the node depends on: the features of a learned
        baseline or control variate (they do not depend on the node's draw). `values()` returns
        the input's buffer on every row; call it where the line using it is emitted (the first
        read may emit a copy of the input onto the step's rows)."""
        lowering = self._lowering
        return [(lambda x=x: lowering.v(x), x.width) for x in lowering.an.ancestors_inputs[self.node]]

    # ----- learning signals
    def downstream_cost(self) -> str:
        """1D, per row: the sum of the costs the node reaches (its learning signal)."""
        return self._lowering.downstream_L(self.node)

    def learning_signal(self) -> tuple:
        """(L, weights), 1D each: the signal a score-function estimate multiplies d log p by, and
        each row's weight in the estimate. ELBO: downstream_cost() and row_weights; IWAE: the
        bound of the row's data row (every cost of the draw enters it) and 1 / B per row."""
        return self._lowering.learning_signal(self.node)

    def cost_seeds(self, head=None) -> str:
        """1D, per row: the seeds of the costs' cotangents, the row weights except on the extra
        rows of an estimator that `evaluates_below` (its `seed_weights` sets them there; a
        control variate's rows have loss weight 0 but seed +-eta). `head`: that cost head's own
        seeds (a per-row cost of a plate scales them)."""
        lowering = self._lowering
        return lowering.cw if head is None else lowering.head_cw(head)

    def below(self) -> list:
        """The nodes below the node (those its value reaches), in the order the step computes
        them: each has .name, .kind, .width, .inputs, .attrs (.attrs["is_head"]: a cost)."""
        lowering = self._lowering
        desc = G.descendants(lowering.an.graph, self.node.name)
        return [n for n in lowering.an.order if n.name in desc]

    # ----- new buffers
    def noise(self, kind: str = "uniform", width=None) -> str:
        """Base noise of kind "uniform", "normal", "logistic" or "gumbel", one draw per drawn row,
        shared by its configuration rows (common random numbers); `width` columns (default the
        node's). Each call draws a stream of its own (16 per node, sample() included)."""
        if kind not in NOISE_KINDS:
            raise ModelError(f"estimator '{self.estimator.name}' of node '{self.node.name}': noise kind {kind!r} is "
                             f"not one of {', '.join(map(repr, NOISE_KINDS))}")
        return self._noise(kind, width)

    def _noise(self, kind, width):
        k, lowering = self._streams, self._lowering
        if k >= MAX_NOISE:
            raise ModelError(f"estimator '{self.estimator.name}' of node '{self.node.name}': at most {MAX_NOISE} noise "
                             f"buffers per node")
        self._streams = k + 1
        buf = Noise(lowering.noise(self.node, kind, k=k, width=width), kind)
        if lowering.in_draw():   # the draw's noise (drawn_noise)
            old = lowering.recorded_noise(self.node)
            both = buf if old is None else (*old, buf) if isinstance(old, tuple) else (old, buf)
            lowering.record_noise(self.node, both)
        return buf

    def drawn_noise(self):
        """The noise the draw used (noise() and sample() in `draw`): one buffer, a tuple of them
        in the order drawn, or None when it drew none. Each buffer's `.kind` is its kind."""
        return self._lowering.recorded_noise(self.node)

    def buffer(self, tag: str, width=None, shared: bool = False) -> str:
        """A workspace named `<tag>_<node>`: 1D (one value per row) when width is None, else rows x
        width. The same tag gives the same buffer (`draw` may leave one for `estimate`).
        shared=True: one buffer `<tag>_` for every node of the step that asks for it (a quantity
        computed once per step: fill it with emit(..., once=True))."""
        name = f"{tag}_" if shared else f"{tag}_{self.node.name}"
        if shared:
            return self._lowering.shared_buffer(name, width)
        if name not in self._made:
            self._made[name] = self._lowering.buf1(name) if width is None else self._lowering.buf2(name, width)
        return self._made[name]

    def parameter(self, tag: str, shape: tuple, init=0.0, name=None) -> tuple:
        """A parameter trained with the model's by the same optimiser: (its values, its gradient).
        Named `<estimator>.<node>.<tag>` in prog.params (`name`: that full name instead). `init`:
        a number, an array of the shape, or a function of a numpy Generator returning one (a
        random initialisation). The same name gives the same parameter."""
        name = full_name(self.estimator, self.node, tag, name)
        if name not in self._made:
            if callable(init):
                init = init(self._lowering.rng)
            a = np.asarray(init)
            if a.ndim and a.shape != tuple(shape):
                raise ModelError(f"estimator '{self.estimator.name}' of node '{self.node.name}': parameter '{name}' "
                                 f"has shape {tuple(shape)} but its init has shape {a.shape}; give a number or an "
                                 f"array of shape {tuple(shape)}")
            self._made[name] = self._lowering.param(name, tuple(shape), init)
        return self._made[name]

    def state(self, tag: str, init: float = 0.0, size=None, name=None):
        """Running state kept between steps, named `<estimator>.<node>.<tag>` (`name`: that full
        name instead): one number as a 1-element buffer, or with `size`, the offset of `size`
        numbers in the step's `state` vector (for a kernel that takes `state, offset`)."""
        name = full_name(self.estimator, self.node, tag, name)
        if size is None:
            return self._lowering.state_value(name, float(init))
        if name not in self._made:
            self._made[name] = self._lowering.state_slot(name, int(size), init)
        return self._made[name]

    # ----- emitting
    def call(self, kernel, *args, at_start: bool = False, once: bool = False) -> None:
        """Emit a call of `kernel` on buffers, numbers and strings of code: a kernel of the modules
        the step binds (`ppl.KERNELS.rows.zero1`, or its @njit function), a user's @njit
        function or `Kernel`; or, with no args, a call made already (`ppl.calls.render` of a
        template). `at_start` / `once`: as `emit`'s."""
        if isinstance(kernel, Call):
            if args:
                raise ModelError(f"estimator '{self.estimator.name}' of node '{self.node.name}': ctx.call of a "
                                 f"rendered call ({kernel}) takes no more arguments; got {len(args)}")
            line = kernel
        else:
            self._check_arity(kernel, args)
            line = Call(self._lowering.kernel_ref(kernel, self.node), args)
        self._put(line, at_start, once)

    def _check_arity(self, kernel, args) -> None:
        """A ModelError naming the estimator, node and kernel when `args` do not fit its signature
        (else Numba's typing error, far from the call)."""
        try:
            fn = kernel.cpu if isinstance(kernel, (Kernel, KernelRef)) else kernel
        except AttributeError as e:
            raise ModelError(f"estimator '{self.estimator.name}' of node '{self.node.name}': {e}; name a kernel "
                             f"of the step's modules (ppl.KERNELS) or pass an @njit function") from None
        fn = getattr(fn, "py_func", fn)
        sig = _signature(fn)
        if sig is None:   # no Python signature to read (a compiled built-in)
            return
        try:
            sig.bind(*args)
        except TypeError as e:
            raise ModelError(f"estimator '{self.estimator.name}' of node '{self.node.name}': kernel "
                             f"'{getattr(fn, '__name__', fn)}{sig}' called with {len(args)} argument(s) "
                             f"({', '.join(map(str, args))}): {e}; pass one argument per parameter") from None

    def law_call(self, key: str, ins: list, outs: list) -> None:
        """Emit a call of the kernel `key` of this (estimator, law) pair (the estimator's
        `kernels[law.kind][key]`), else of the law's own (`law.kernels[key]`), on `ins`, then its
        group size for a grouped law (a Categorical's classes), then `outs`."""
        self._lowering.call(self.estimator.law_kernel(self.law, key), ins, outs, self.node)

    def emit(self, line: str, at_start: bool = False, once: bool = False) -> None:
        """Emit one line of the step's code where the estimator is (kernel calls: `call`; a line
        of text calling a kernel of the step's modules is read into its call record);
        `at_start`: at the top of the step, before the forward pass (once-per-step set-up);
        `once`: not again if a node emitted the same line with once=True before (the fill of a
        shared buffer)."""
        self._put(parse(line) or line, at_start, once)

    def _put(self, line, at_start: bool, once: bool) -> None:
        self._own_draw = self._own_draw or self._lowering.in_draw()
        if once and not self._lowering.first_time(line):
            return
        if at_start:
            self._lowering.emit_at_start(line)
        else:
            self._lowering.emit(line)

    def sample(self, reads_noise: bool = True) -> str:
        """Emit the law's ordinary draw into value(); returns the noise buffer it used.

        reads_noise=False: the estimate never reads the noise, so a node whose logits are the same
        on a data row's drawn rows may be drawn by the law's `sample_rep` kernel (uniform noise
        against sigma(-a) once per data row: the same draws as the logistic noise's)."""
        lowering, d = self._lowering, self.law
        rep = lowering.per_data_row(self.node.inputs[0]) if not reads_noise and "sample_rep" in d.kernels else None
        if rep is not None:
            noise = self._noise("uniform", None)
            lowering.emit(Call(d.kernels['sample_rep'], (*rep, noise, self.value())))
            return noise
        noise = self._noise(d.noise, None if d.noise_draws == 1 else d.noise_draws * self.node.width)
        self.law_call("sample", [*self.params(), noise], [self.value()])
        return noise

    def log_prob_vjp(self, weights: str, value_grad=NO_GRAD) -> None:
        """Emit param_grads() += weights * d log p(value | params) / d params per row (and
        value_grad += its gradient in the value, when one is given). An estimator that declares
        `fuses_log_prob` takes the weights of the log_prob(node) costs into `weights` first (one
        VJP for both)."""
        for cw in self._lowering.log_prob_weights_of(self.node):
            self.call(KERNELS.rows.add_rows, cw, weights)
        self._lowering.log_prob_vjp(self.node, weights, value_grad)

    def log_prob_kept(self):
        """What a log_prob(node) cost's forward kept on every row for its VJP (a logit-link law's
        sigma(logits)), to reuse instead of computing it again; NO_GRAD when no such cost keeps
        one on every row."""
        keep, per_data_row = self._lowering.log_prob_kept(self.node)
        return NO_GRAD if keep is None or per_data_row else keep


@functools.lru_cache(maxsize=None)
def _signature(fn):
    """inspect.signature of a kernel's Python function, read once per function; None when it has
    none."""
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError):
        return None


def _digits_below(lowering, node):
    """(Rows.enumerated_below, Rows.digits_below) of `node`'s context: the configuration digits of
    the enumerated nodes below it (None if there are none), and of every stochastic node below it
    (the neutral digit if there are none), as tuple literals of code."""
    below = G.descendants(lowering.an.graph, node.name)
    every, enumerated = [], []
    for e, digit in lowering.plan.row_digit.items():
        if e.name in below:
            every.append(digit)
            if REGISTRY[lowering.choices[e][0].estimator].weights_configurations:
                enumerated.append(digit)

    def literal(digits):   # each digit once: REBAR's nodes share one
        digits = list(dict.fromkeys(digits))
        return (Const("(" + "".join(f"{s}, " for s, _ in digits) + ")"),
                Const("(" + "".join(f"{z}, " for _, z in digits) + ")"))
    return (literal(enumerated) if enumerated else None), literal(every or [(1, 1)])


BUILT_IN: set = set()   # the built-in estimators' names (filled when ppl.estimators has loaded them)


def register_estimator(cls):
    """Register a subclass of ppl.Estimator under its `name` (usable as a class decorator).
    A built-in estimator's name is refused; registering a user's name again replaces it."""
    if not (isinstance(cls, type) and issubclass(cls, Estimator)):
        raise ModelError(f"register_estimator takes a subclass of ppl.Estimator, got {cls!r}")
    name = cls.name
    if not isinstance(name, str) or not name.isidentifier():
        raise ModelError(f"estimator class {cls.__name__}: set `name` to an identifier (the name compile() "
                         f"takes), got {name!r}")
    if name in BUILT_IN:
        raise ModelError(f"estimator name {name!r} is built in; give {cls.__name__} another name")
    if not isinstance(cls.options, dict):
        raise ModelError(f"estimator '{name}': `options` must be a dict of option name -> default")
    if cls.estimate is Estimator.estimate:
        raise ModelError(f"estimator '{name}': define estimate(self, ctx), what reaches the node's parameters")
    if not any("param_prefixes" in vars(c) for c in cls.__mro__ if c is not Estimator):
        cls.param_prefixes = (f"{name}.",)   # its parameters: `<name>.<node>.<tag>` (ctx.parameter)
    REGISTRY[name] = cls()
    return cls
