"""An estimator's own draw and estimate, lowered row-fused: the estimator context over one row.

`RowEstimatorContext` answers the members of `estimators.context.EstimatorContext` an estimate
that reads its drawn row only needs, with the row code's locals in place of buffers: the node's
value, its parameters and their cotangents, its downstream cost (the ELBO's learning signal),
the rows' weights and its configuration digit (`rows`), its noise (the same streams, so the same
draws), one-value scratch, state, the log-density's VJP and the kernel calls of `law_call`,
`call` and `emit`, each rewritten into row code by the row-fused rewrite (kernels/rowcode.py); a
kernel that folds over the rows (score's moving-average baseline) runs in parts before, in and
after the row loop, one fold for every configuration's code. A value, cost or weight is a local
per configuration of the drawn row (`ConfigNames`), so a kernel body that reads its pair's other
row reads the other configuration's local. So an estimator written once, for the array lowering
(pathwise, straight-through, Concrete, ARM, DisARM, score, a user's), runs in the row-fused step
unchanged. Any other member (the graph below, a kernel over other rows, a trained parameter,
emitting at the start of the step) raises `rowcode.NoRowForm`, and the compiler lowers the graph
with array kernels (pipeline.run_passes).
"""
from __future__ import annotations

from ..calls import Call, parse
from ..records import Name
from ..estimators.protocol import NO_GRAD
from ..estimators.context import MAX_NOISE, NOISE_KINDS, Noise, full_name
from ..kernels.rowcode import NoRowForm


class ConfigNames(Name):
    """A local of the row code with one name per configuration of the drawn row: it prints as the
    current configuration's (`text`); `at[c]` is configuration c's (None where it has none)."""

    def __init__(self, at, cfg: int):
        self.at = tuple(at)
        self.text = str(self.at[cfg] if self.at[cfg] is not None else "")


class _RowsOfRow:
    """`ctx.rows` in the row code: the node's configuration digit, its place in it and the rows'
    weights, one local per configuration; nothing over the step's rows."""

    def __init__(self, ctx):
        sl, node = ctx._sl, ctx.node
        plan = sl.plan
        self._ctx = ctx
        self.samples, self.configs = sl.samples, plan.S
        self.digit = plan.row_digit.get(node, (1, 1))
        self.shared = node in plan.shared
        self.offset = plan.cv_slot[node][0] if self.shared else 0
        self.enumerated_below = None
        self.weights = ctx._per_config(sl.weight)

    @property
    def slot(self) -> tuple:
        stride, span = self.digit
        return stride, (self.offset if self.shared else 1), span

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        self._ctx._refuse(f"ctx.rows.{name}")


class RowEstimatorContext:
    """The estimator context of `node` in the row code (see the module): one per node, its draw
    started in each configuration's code and its estimate after it (`_begin`)."""

    def __init__(self, estimator, lowering, node, options):
        self._sl = lowering                 # the RowFusedLowering: no part of the contract
        self.node, self.options, self.estimator = node, options, estimator
        self.law = lowering.dist(node)
        self._streams = 0       # noise streams taken so far in this pass
        self._drawn = 0         # ... by the draw: an estimate's noise takes the streams after them
        self._drawing = True
        self._own_draw = False   # whether draw emitted its own code (call / emit), not only sample()
        self._calls = 0          # kernel calls so far in this configuration's draw or estimate
        self._made = {}          # state name -> its offset (one set of numbers for every configuration)

    def _begin(self, drawing: bool):
        """Start the draw (in the code of each configuration: the same streams, common random
        numbers) or the estimate (its noise on the streams after the draw's, as the array
        context's one counter per node gives)."""
        self._drawing = drawing
        self._streams = 0 if drawing else self._drawn
        self._calls = 0

    def __getattr__(self, name):   # a member the row code cannot answer
        if name.startswith("_"):
            raise AttributeError(name)
        raise NoRowForm(f"estimator '{self.estimator.name}' of node '{self.node.name}' reads ctx.{name}, "
                        f"which the row-fused lowering does not have")

    def _refuse(self, what):
        raise NoRowForm(f"estimator '{self.estimator.name}' of node '{self.node.name}': {what} "
                        f"has no row-fused form")

    # ----- the node's values: locals of the row, one per configuration
    def _per_config(self, name_of):
        return ConfigNames([name_of(cfg=c) for c in self._sl.configs], self._sl.builder.cfg)   # the code's

    def _cotangent_of(self, node):
        if self._sl.cot(node) is None:
            return NO_GRAD
        return self._per_config(lambda cfg: self._sl.cot(node, cfg))

    def value(self, node=None):
        if node is not None and node is not self.node and node not in self.node.inputs:
            self._refuse("the value of another node")
        node = self.node if node is None else node
        return self._per_config(lambda cfg: self._sl.val(node, cfg))

    def cotangent(self):
        return self._cotangent_of(self.node)

    def params(self) -> list:
        return [self.value(p) for p in self.node.inputs]

    def param_grads(self) -> list:
        return [self._cotangent_of(p) for p in self.node.inputs]

    @property
    def rows(self):
        return _RowsOfRow(self)

    def downstream_cost(self):
        """The sum of the costs below the node, a local per configuration, each defined before the
        first row call that reads it."""
        return self._per_config(lambda cfg: self._sl.downstream_L(self.node, cfg))

    def learning_signal(self) -> tuple:
        """The ELBO's (the row-fused step lowers no other objective): the downstream cost and the
        rows' weights."""
        return self.downstream_cost(), self.rows.weights

    # ----- noise, scratch and state
    def noise(self, kind: str = "uniform", width=None) -> str:
        if kind not in NOISE_KINDS or self._streams >= MAX_NOISE:
            self._refuse(f"noise {kind!r}")
        if width not in (None, 1):
            self._refuse(f"noise of width {width}")
        k, self._streams = self._streams, self._streams + 1
        old = self._sl.recorded_noise(self.node)
        buf = Noise(self._sl.noise_scalar(self.node, kind, k), kind)
        if not self._drawing:   # the estimate's own noise is no part of the draw's
            self._sl.record_noise(self.node, old)
            return buf
        self._drawn = max(self._drawn, self._streams)
        if k > 0 and old is not None:   # the draw's noise: one local, or a tuple of them in the order drawn
            self._sl.record_noise(self.node, (*old, buf) if isinstance(old, tuple) else (old, buf))
        return buf

    def drawn_noise(self):
        return self._sl.recorded_noise(self.node)

    def buffer(self, tag: str, width=None, shared: bool = False) -> str:
        if shared or width not in (None, 1):
            self._refuse("a shared or wide workspace")
        return self._sl.local(tag, self.node)

    def state(self, tag: str, init: float = 0.0, size=None, name=None):
        name = full_name(self.estimator, self.node, tag, name)
        if size is None:
            return f"state[{self._sl.state_offset(name, float(init))}]"
        if name not in self._made:   # the offset of `size` numbers, for a kernel of (state, offset)
            self._made[name] = self._sl.state_slot(name, int(size), init)
        return self._made[name]

    # ----- emitting: kernel calls, rewritten into the row's code
    def sample(self, reads_noise: bool = True) -> str:
        noise = self.noise(self.law.noise)
        self.law_call("sample", [*self.params(), noise], [self.value()])
        return noise

    def law_call(self, key: str, ins: list, outs: list) -> None:
        self._sl.law_call(self.node, key, ins, outs)

    def call(self, kernel, *args) -> None:
        self._own_draw = self._own_draw or self._drawing
        self._calls += 1
        if isinstance(kernel, Call):   # a rendered template
            self._sl.row_call(kernel)
        else:   # a fold over the rows (rowcode.FOLDS): one for every configuration's call here
            self._sl.row_kernel(kernel, list(args), fold=(self.node, self._drawing, self._calls))

    def log_prob_vjp(self, weights, value_grad=NO_GRAD) -> None:
        if value_grad is not NO_GRAD:
            self._refuse("the log-density's gradient in the value")
        self._sl.log_prob_vjp_row(self.node, weights, with_value=False)

    def emit(self, line: str, at_start: bool = False, once: bool = False) -> None:
        self._own_draw = self._own_draw or self._drawing
        if at_start or once:
            self._refuse("a line at the start of the step")
        self._sl.row_call(parse(line) or line)
