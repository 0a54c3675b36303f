"""The public protocol for estimators written outside ppl: `Estimator`, `EstimatorContext`,
`Kernel`, `NO_GRAD` and `register_estimator` (exported as ppl.Estimator, ...).

An estimator decides two things for its stochastic node: how the node is drawn on each row of
the step (`draw`), and what reaches the node's distribution parameters (`estimate`). Both emit
kernel calls through the context; a kernel is an @njit function of arrays (the CPU target), or a
`Kernel` with a CUDA launcher of the same arguments too. `rows` may turn each drawn row into
several configuration rows (as an antithetic pair or an enumeration does): the graph below the
node is then evaluated on every one of them in the same fused pass, and `downstream_cost()` gives
each row's sum of the costs below the node. examples/user_estimator.py writes one.

The built-in estimators still speak the lowering's fuller internal context (estimators/base.py);
a user's estimator sees only the members below.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import ModelError
from .base import REGISTRY
from .base import Estimator as _Base
from .base import enumerated_below, sample_hard


class _NoGrad(str):
    """The marker of a gradient nobody needs (an empty buffer: kernels skip it)."""

    def __repr__(self):
        return "NO_GRAD"


NO_GRAD = _NoGrad("empty2")   # printed as the step's empty 2D buffer, which every kernel skips
NOISE_KINDS = ("uniform", "normal", "logistic", "gumbel")   # kernels/cpu_noise.py's fills


@dataclass(frozen=True)
class Kernel:
    """A kernel of a user's estimator: `cpu`, an @njit function; `cuda`, optionally, a host-side
    function of the same arguments over CUDA device arrays (without one, the estimator is refused
    on target='cuda' with an error naming the kernel)."""

    cpu: object
    cuda: object = None

    @property
    def name(self) -> str:
        return getattr(self.cpu, "__name__", "kernel")


class EstimatorContext:
    """What an estimator sees while its node is lowered. Buffers are the step's arrays: a node's
    values have one row per row of the step (data row x sample x configuration), `width` columns.

    node, options, law, samples, digit, row_weights    what is known
    value(), cotangent(), params(), param_grads()      the node's buffers
    downstream_cost()                                  per row, the sum of the costs below the node
    enumerated_below()                                 the digits whose rows weigh p(c | the node's value)
    noise(kind, width), buffer(tag, width)             new buffers
    parameter(tag, shape, init), state(tag, init)      learnable parameters, running state
    call(kernel, *args), sample()                      emitting
    draws()                                            (K, S): where a data row's draws lie
    """

    def __init__(self, estimator, lowering, node, options):
        self._est, self._lw = estimator, lowering
        self.node = node                        # the stochastic node: .name, .width, .attrs
        self.options = options                  # its options, defaults filled in
        self.law = lowering.dist(node)          # its Distribution entry: .name, .params, flags
        self.samples = lowering.samples         # K draws per data row
        # (stride, size) of the node's configuration digit: row r is configuration (r // stride) % size
        # of its drawn row (size = the estimator's rows(); (1, 1) when it has one row per draw)
        self.digit = lowering.row_digit.get(node, (1, 1))
        self.row_weights = lowering.rw          # 1D: each row's weight in the objective (1 / rows of a batch)

    def value(self) -> str:
        """The node's values (rows x width): `draw` writes them, `estimate` reads them."""
        return self._lw.v(self.node)

    def cotangent(self) -> str:
        """The cotangent of the node's values, for an estimator with `passes_value_grad = True`
        (it reads df/dvalue); else NO_GRAD."""
        g = self._lw.g(self.node)
        return NO_GRAD if g is None else g

    def params(self) -> list:
        """The values of the law's parameters (its logits, loc and scale, ...), rows x width each."""
        return self._lw.param_values(self.node)

    def param_grads(self) -> list:
        """Their cotangents, where `estimate` adds the gradient; NO_GRAD where none is needed."""
        return [NO_GRAD if g == self._lw.empty2 else g for g in self._lw.param_grads(self.node)]

    def downstream_cost(self) -> str:
        """1D, per row: the sum of the costs the node reaches (its learning signal)."""
        return self._lw.downstream_L(self.node)

    def enumerated_below(self):
        """None, or (strides, sizes) as tuple literals of code: the configuration digits of the
        enumerated nodes below this one. Their rows carry p(c | this node's value) in row_weights,
        so an estimate that compares the costs of this node's configuration rows must first
        marginalise each over those digits (sum rw L / sum rw); row by row it is biased."""
        return enumerated_below(self._lw, self.node)

    def noise(self, kind: str = "uniform", width=None) -> str:
        """Base noise of kind "uniform", "normal", "logistic" or "gumbel", one draw per drawn row,
        shared by its configuration rows (common random numbers)."""
        if kind not in NOISE_KINDS:
            raise ModelError(f"estimator '{self._est.name}' of node '{self.node.name}': noise kind {kind!r} is not one "
                             f"of {', '.join(map(repr, NOISE_KINDS))}")
        key = ("custom.noise", self.node)   # each call a stream of its own (16 per node)
        k = self._lw.scratch.get(key, 0)
        if k >= 16:
            raise ModelError(f"estimator '{self._est.name}' of node '{self.node.name}': at most 16 noise buffers per node")
        self._lw.scratch[key] = k + 1
        buf = self._lw.noise(self.node, kind, k=k, width=width)
        self._lw.record_noise(self.node, buf, kind)
        return buf

    def buffer(self, tag: str, width=None) -> str:
        """A new workspace: 1D (one value per row) when width is None, else rows x width."""
        name = f"{tag}_{self.node.name}"
        return self._lw.buf1(name) if width is None else self._lw.buf2(name, width)

    def parameter(self, tag: str, shape: tuple, init=0.0) -> tuple:
        """A parameter trained with the model's by the same optimiser: (its values, its gradient).
        Named `<estimator>.<node>.<tag>` in prog.params."""
        return self._lw.param(f"{self._est.name}.{self.node.name}.{tag}", tuple(shape), init)

    def state(self, tag: str, init: float = 0.0) -> str:
        """One number of running state kept between steps (a 1-element buffer)."""
        return self._lw.state_value(f"{self._est.name}.{self.node.name}.{tag}", float(init))

    def call(self, kernel, *args) -> None:
        """Emit a call of `kernel` (an @njit function, a `Kernel`, or a kernel of ppl.kernels the
        step already calls) on buffers, numbers and strings of code."""
        self._lw.emit(f"{self._lw.kernel_name(kernel, self.node)}({', '.join(str(a) for a in args)})")

    def sample(self) -> str:
        """Emit the law's ordinary draw into value(); returns the noise buffer it used."""
        return sample_hard(self._lw, self.node)

    def draws(self) -> tuple:
        """(K, S): row r of the step is data row r // (K S), draw (r // S) % K of it, configuration
        r % S (every estimator's configuration digits together; `digit` is this node's): the K
        draws of a data row, in one configuration, are S rows apart (what a leave-one-out reads)."""
        return self.samples, self._lw.S


class Estimator(_Base):
    """Subclass to write a gradient estimator. Set `name` (and `about`, `cite`, `options`,
    `unbiased` / `bias`), then override:

    check(info) -> None or why not    whether it applies to a node (info.dist, info.node, info.samples)
    rows(info, options) -> int        configuration rows per drawn row (default 1)
    draw(ctx)                         the node's values on every row (default: the ordinary draw)
    estimate(ctx)                     add the gradient of the objective into ctx.param_grads()

    `passes_value_grad = True` asks for the cotangent of the node's values (ctx.cotangent()).
    Register it with ppl.register_estimator; then m.compile(estimators={"h": name}) uses it.
    """

    @property
    def param_prefixes(self) -> tuple:
        """Its parameters are named `<name>.<node>.<tag>` (EstimatorContext.parameter)."""
        return (f"{self.name}.",)

    def rows(self, info, options) -> int:
        return 1

    def draw(self, ctx: EstimatorContext) -> None:
        ctx.sample()

    def estimate(self, ctx: EstimatorContext) -> None:
        raise TypeError(f"estimator '{self.name}' defines no estimate(ctx)")

    # the compiler's side of the protocol (estimators/base.Estimator)
    def expansion(self, info, opts):
        n = self.rows(info, opts)
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ModelError(f"estimator '{self.name}': rows() must return an int >= 1 for node "
                             f"'{info.node.name}', got {n!r}")
        return n

    def forward(self, lw, node, opts):
        self.draw(EstimatorContext(self, lw, node, opts))

    def backward(self, lw, node, opts):
        self.estimate(EstimatorContext(self, lw, node, opts))


def register_estimator(cls):
    """Register a subclass of ppl.Estimator under its `name` (usable as a class decorator).
    A built-in estimator's name is refused; registering a user's name again replaces it."""
    if not (isinstance(cls, type) and issubclass(cls, Estimator)):
        raise ModelError(f"register_estimator takes a subclass of ppl.Estimator, got {cls!r}")
    name = cls.name
    if not isinstance(name, str) or not name.isidentifier():
        raise ModelError(f"estimator class {cls.__name__}: set `name` to an identifier (the name compile() "
                         f"takes), got {name!r}")
    old = REGISTRY.get(name)
    if old is not None and not isinstance(old, Estimator):
        raise ModelError(f"estimator name {name!r} is built in; give {cls.__name__} another name")
    if not isinstance(cls.options, dict):
        raise ModelError(f"estimator '{name}': `options` must be a dict of option name -> default")
    if cls.estimate is Estimator.estimate:
        raise ModelError(f"estimator '{name}': define estimate(self, ctx), what reaches the node's parameters")
    REGISTRY[name] = cls()
    return cls
