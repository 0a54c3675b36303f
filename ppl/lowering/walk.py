"""Passes "lower forward" and "lower backward": the one walk both lowerings run. Every node's
storage and forward code in topological order, the loss, then every node's backward code in
reverse order, each node's code chosen here once: a rule (rules.py), an estimator's draw or
estimate, or the op table's templates (ops.py).

What differs between the targets is where a node's values live and how a kernel call becomes
code, and each target class answers that (neither overrides the other, nor this walk):
ArrayLowering (arrays.py: buffers over the step's rows, a call as one kernel call) and
RowFusedLowering (rowfused.py: the locals of one row, a call as its kernel's body over them).
Their hooks, by what the walk asks:

    storage     before_walk, allocate, read_input, node_inputs, value_out, cost_out, input_cotangents,
                value_cotangent, collect_cotangent, rows_here
    code        rules (the kind -> Rule table), emit_call, op_values, constraint_test, call, downstream_L
    estimators  draw_node, estimate_node
    cost heads  after_forward, cost_seed (None: no backward)
    the loss    lower_loss, zero_cotangents, row_code
"""
from __future__ import annotations

from ..language.nodes import Node
from ..estimators import NO_GRAD
from ..estimators.context import BUILT_IN
from ..calls import render
from ..ops import OPS


class Walk:
    def _init_walk(self):
        self.drawing = True         # the forward walk (the estimators' draws), not the backward
        self.cbuf: dict = {}        # cost head -> its per-row cost buffer (on its rows)

    # ----- passes: lower forward, lower backward
    def lower_forward(self):
        """Every node's storage and forward code in topological order (once per configuration
        the lowering unrolls), then the loss."""
        self.before_walk()
        for n in self.an.order:
            self.walk_to(n)   # a loop's body: inside its block (loops.py)
            self.builder.owner, self.builder.here = n, self.plan.lay.get(n, self.plan.FULL)
            self.allocate(n)
            for self.builder.cfg in self.configs:
                self.forward_node(n)
        self.walk_to(None)
        self.builder.cfg, self.builder.here = 0, self.plan.FULL
        self.builder.section, self.builder.owner = self.builder.fwd, None
        self.step_totals()
        self.lower_loss()

    def lower_backward(self):
        """Zero the cotangents, then every node's backward code in reverse topological order
        (node-major, configuration-minor: a node's cotangents are complete before it reads them)."""
        self.builder.section, self.builder.owner, self.drawing = self.builder.bwd, None, False
        self.zero_cotangents()
        for n in reversed(self.an.order):
            self.walk_to(n, reverse=True)
            self.builder.owner, self.builder.here = n, self.plan.lay.get(n, self.plan.FULL)
            for self.builder.cfg in self.configs:
                self.backward_node(n)
        self.walk_to(None, reverse=True)
        self.builder.cfg, self.builder.here = 0, self.plan.FULL

    def forward_node(self, n: Node):
        """A node's forward code: its rule's, its estimator's draw, or its op's templates; then
        what the target does after it (a cost's scaling, a value's store)."""
        if n.kind == "input":
            self.read_input(n)
            return
        head = bool(n.attrs.get("is_head"))
        ins = self.node_inputs(n)
        out = self.cost_out(n) if head else self.value_out(n)
        rule = self.rules.get(n.kind)
        if rule is not None:
            rule.forward(self, n, ins, out)
        elif n.is_stochastic:
            self.draw_node(n)
        else:
            op = OPS[n.kind]
            if op.fwd:
                self.emit_call(render(op.fwd, **{"c" if head else "out": out}, **self.op_values(n, ins)))
            off = 0
            for x, xj in zip(n.inputs, ins) if op.fwd_each else ():
                self.emit_call(render(op.fwd_each, xj=xj, off=off, out=out))
                off += x.width
        self.after_forward(n, out)

    def backward_node(self, n: Node):
        """A node's backward code: a cost's VJP seeded by its cost cotangents, a stochastic node's
        estimate, or a layer's VJP of its value's cotangent into its inputs'."""
        if n.kind == "input":
            return
        self.collect_cotangent(n)
        ins, gins = self.node_inputs(n), self.input_cotangents(n)
        gs = {f"g{j}": g for j, g in enumerate(gins)}
        rule = self.rules.get(n.kind)
        if n.attrs.get("is_head"):
            seed = self.cost_seed(n, gins)
            if seed is None:
                return
            if rule is not None:
                rule.backward(self, n, ins, gins, seed, self.cost_rows(n), self.rows_here())
            elif any(g is not NO_GRAD for g in gins):
                self.emit_call(render(OPS[n.kind].bwd, cw=seed, **gs, **self.op_values(n, ins)))
            return
        if n.is_stochastic:
            self.estimate_node(n)
            return
        gout = self.value_cotangent(n)
        if gout is None:
            return
        if rule is not None:
            rule.backward(self, n, ins, gins, gout, self.value_out(n), self.rows_here())
            return
        op = OPS[n.kind]
        off = 0
        for x, gj in zip(n.inputs, gins) if op.bwd_each else ():
            if gj is not NO_GRAD:
                self.emit_call(render(op.bwd_each, gout=gout, off=off, gj=gj))
            off += x.width
        if op.bwd is None or (op.bwd_if_input_grad and gins[0] is NO_GRAD):
            return
        self.emit_call(render(op.bwd, out=self.value_out(n), gout=gout, **gs, **self.op_values(n, ins)))

    def check_user_draw(self, n: Node, finite):
        """A user's estimator whose draw emitted code of its own: its values checked in the step
        (`finite`: the test), refusing NaN and inf by the estimator's and node's names."""
        est = self.choices[n][0].estimator
        if est not in BUILT_IN and self.estimator_context(n)._own_draw:
            self.emit_check(finite, f"estimator '{est}' drew NaN or inf values for node '{n.name}' (its draw(ctx)); "
                                    f"check its kernels and the parameters they read")

    def in_draw(self) -> bool:
        """Whether the walk is in the forward pass (the estimators' draws), not the backward."""
        return self.drawing

    def cost_buffer(self, head: Node, rows=None) -> str:
        """A cost head's per-row costs (c_<name>), named in the layout's costs (loss_parts reads
        them); with `rows` (a layout's rows, not all) the head's code writes its rows there
        (cB_<name>), which `cost_rows` then gives."""
        c = self.buf1(f"c_{head.name}")
        self.builder.L.costs.append((head.attrs["cost_name"], len(self.builder.L.ws1) - 1))
        self.cbuf[head] = c if rows is None else self.buf1(f"cB_{head.name}", rows=rows)
        return c

    def cost_rows(self, head: Node) -> str:
        """The buffer of a cost head's per-row costs (on all rows, or on its row classes: cB_)."""
        return self.cbuf[head]
