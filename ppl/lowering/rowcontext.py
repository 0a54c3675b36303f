"""An estimator's own draw and estimate, lowered row-fused: the estimator context over one row.

`RowEstimatorContext` answers the members of `estimators.context.EstimatorContext` an estimate
that reads its own row only needs, with the row code's locals in place of buffers: the node's
value, its parameters and their cotangents, its noise (the same streams, so the same draws),
one-value scratch, one-number state, and the kernel calls of `law_call`, `call` and `emit`,
each rewritten into row code by the row-fused rewrite (kernels/rowcode.py). So an estimator written
once, for the array lowering (pathwise, straight-through, Concrete, a user's), runs in the
row-fused step unchanged. Any other member (the step's rows, the graph below, a learning
signal over rows, a trained parameter, emitting at the start of the step) raises
`rowcode.NoRowForm`, and the compiler lowers the graph with array kernels (pipeline.run_passes).
"""
from __future__ import annotations

from ..calls import Call, parse
from ..estimators.protocol import NO_GRAD
from ..estimators.context import MAX_NOISE, NOISE_KINDS, Noise, full_name
from ..kernels.rowcode import NoRowForm


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

    def _begin(self, drawing: bool):
        """Start the draw (in the code of each configuration: the same streams, common random
        numbers) or the estimate (its noise on the streams after the draw's, as the array
        context's one counter per node gives)."""
        self._drawing = drawing
        self._streams = 0 if drawing else self._drawn

    def __getattr__(self, name):   # a member the row code cannot answer
        if name.startswith("_"):
            raise AttributeError(name)
        raise NoRowForm(f"estimator '{self.estimator.name}' of node '{self.node.name}' reads ctx.{name}, "
                        f"which the row-fused lowering does not have")

    def _refuse(self, what):
        raise NoRowForm(f"estimator '{self.estimator.name}' of node '{self.node.name}': {what} "
                        f"has no row-fused form")

    # ----- the node's values: locals of the row
    def value(self, node=None) -> str:
        if node is not None and node is not self.node and node not in self.node.inputs:
            self._refuse("the value of another node")
        return self._sl.val(self.node if node is None else node)

    def cotangent(self):
        return self._sl.cot(self.node) or NO_GRAD

    def params(self) -> list:
        return self._sl.params_of(self.node)

    def param_grads(self) -> list:
        return [self._sl.cot(p) or NO_GRAD for p in self.node.inputs]

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
        if size is not None:
            self._refuse("state of several numbers")
        return f"state[{self._sl.state_offset(full_name(self.estimator, self.node, tag, name), float(init))}]"

    # ----- emitting: kernel calls, rewritten into the row's code
    def sample(self, reads_noise: bool = True) -> str:
        noise = self.noise(self.law.noise)
        self.law_call("sample", [*self.params(), noise], [self.value()])
        return noise

    def law_call(self, key: str, ins: list, outs: list) -> None:
        self._sl.law_call(self.node, key, ins, outs)

    def call(self, kernel, *args) -> None:
        self._own_draw = self._own_draw or self._drawing
        if isinstance(kernel, Call):   # a rendered template
            self._sl.row_call(kernel)
        else:
            self._sl.row_kernel(kernel, [str(a) for a in args])

    def emit(self, line: str, at_start: bool = False, once: bool = False) -> None:
        self._own_draw = self._own_draw or self._drawing
        if at_start or once:
            self._refuse("a line at the start of the step")
        self._sl.row_call(parse(line) or line)
