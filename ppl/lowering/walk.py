"""Passes "lower forward" and "lower backward": every node's storage and forward code in
topological order, the loss, then every node's backward code in reverse order. The row-fused
lowering overrides the per-node hooks (allocate, forward_node, backward_node, ...).

The loss (`lower_loss`): objective "elbo" is the mean over rows of the costs weighted by `rw`
(rows.weighted_total). Objective "iwae" (K >= 2 samples, Burda et al. 2016) adds each draw's costs
into `tot_` (C_ik = -log w_ik); rows.iwae_bound returns the mean over data rows of
-log (1/K sum_k exp(-C_ik)), writes it to every row of its data row (`ell_`) and overwrites `rw` by
the normalised weights / B, so the backward pass below is the ELBO's and carries the bound's
gradient unchanged. An estimator states the objectives it estimates (`Estimator.objectives`);
`applies` refuses the others with the reason.
"""
from __future__ import annotations

from . import ir
from ..errors import ModelError
from ..language.nodes import Node
from ..estimators import NO_GRAD
from ..estimators.context import BUILT_IN
from .rules import ARRAY_RULES
from ..calls import KERNELS, Call, Column, call, render
from ..ops import OPS
from .context import _unless
from .layout import _ndist, _rowmap


class Walk:
    def _init_walk(self):
        self.drawing = True         # the forward walk (the estimators' draws), not the backward
        self.op_params: dict = {}   # layer node -> [(param view, its gradient view)] (ops.OPS)
        self.cbuf: dict = {}        # cost head -> its per-row cost buffer
        self.totals = self.ell = self.uw = None   # IWAE (lower_loss): rows' cost totals, bound, 1 / B weights
        self.cw_plate, self.cw_group = None, {}   # plates: the cost cotangent seeds N cw, and per group
        self.cfull: dict = {}       # cost head -> its rows spread to all R
        self.group_w: dict = {}     # plate -> its rows' share of the group's terms on all R rows

    # ----- passes: lower forward, lower backward (the walk both lowerings share; the per-node
    # hooks allocate / forward_node / lower_loss / zero_cotangents / backward_node are theirs)
    def lower_forward(self):
        """Every node's storage and forward code in topological order (once per configuration
        the lowering unrolls), then the loss."""
        self.group_weights()
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

    def group_weights(self):
        """Per plate of groups with terms: each row's share of its group's terms, 1 / (the group's
        rows in the data set), on all R rows (`w_<plate>`): the hidden input `_w_<plate>` (one row
        per data row, Program's inputs compute it) repeated over a data row's rows."""
        for plate in dict.fromkeys(self.an.cost_group.values()):
            j = len(self.builder.L.inputs)
            self.builder.L.inputs.append(f"_w_{plate}")
            self.builder.bind(f"wB_{plate}", "inputs", j, width=1)
            w = self.group_w[plate] = self.buf1(f"w_{plate}_")
            self.emit(call(KERNELS.rows.repeat_rows, f'wB_{plate}', self.plan.reps, _column(w)))

    def check_user_draw(self, n: Node, finite: str):
        """A user's estimator whose draw emitted code of its own: its values checked in the step
        (`finite`: the test's source), refusing NaN and inf by the estimator's and node's names."""
        est = self.choices[n][0].estimator
        if est not in BUILT_IN and self.estimator_context(n)._own_draw:
            self.emit_block(_unless(finite),
                            ir.Raise(f"estimator '{est}' drew NaN or inf values for node '{n.name}' (its draw(ctx)); "
                                     f"check its kernels and the parameters they read"))

    def in_draw(self) -> bool:
        """Whether the walk is in the forward pass (the estimators' draws), not the backward."""
        return self.drawing

    def iwae_totals(self):
        """The rows' cost totals of the IWAE bound (None before the loss is lowered, or for the ELBO)."""
        return self.totals

    def cost_buffer(self, head: Node) -> str:
        """A cost head's per-row costs (c_<name>), named in the layout's costs (loss_parts reads them)."""
        c = self.cbuf[head] = self.buf1(f"c_{head.name}")
        self.builder.L.costs.append((head.attrs["cost_name"], len(self.builder.L.ws1) - 1))
        return c

    def cost_rows(self, head: Node) -> str:
        """The buffer of a cost head's per-row costs (on all rows, or on its row classes: cB_)."""
        return self.cbuf[head]

    def cw_seed(self, scale) -> str:
        """The cost cotangent seeds on all rows of a head of weight `scale` (head_scale): cw, N cw
        for a per-row cost of a plate (cw_plate), or a plate of groups' (cw_group)."""
        if isinstance(scale, tuple):
            return self.cw_group[scale[1]]
        return self.cw if scale == 1.0 else self.cw_plate

    def learning_signal(self, node: Node) -> tuple:
        """(L, weights) of a score-function node: the ELBO's is the sum of the costs downstream of
        the node per row, weighted by rw; the IWAE bound's, the row's bound ell_i (every cost of
        the draw enters it through the weights), each row weighted 1 / B."""
        if self.objective == "iwae":
            return self.ell, self.uw
        return self.downstream_L(node), self.rw

    def head_scale(self, n: Node):
        """A cost head's weight: 1 (a global term), N (a per-row cost of a plate) or (N, the plate
        of groups) for a per-group term (N times each row's share of its group's terms)."""
        return ("group", self.an.cost_group[n]) if n in self.an.cost_group else self.an.cost_scale.get(n, 1.0)

    def lower_loss(self):
        if self.needs.evaluating:
            self.emit(call(KERNELS.rebar.copy1, self.rw, self.cw))
            for n in self.needs.evaluating:
                self._estimator(n).seed_weights(self.estimator_context(n))
        tot = self.totals = self.buf1("tot_")
        self.emit(call(KERNELS.rows.zero1, tot))
        if self.objective == "iwae":
            # -C of a draw is its log weight; rw becomes the cotangents of the draws' totals
            for c in self.model.costs:
                self.emit(call(KERNELS.rows.add_rows, f'c_{c.name}', tot))
            self.ell, self.uw = self.buf1("ell_"), self.buf1("uw_")
            self.emit(call(KERNELS.rows.config_weights, self.plan.S, 0, 0, '1.0 / B', self.uw))
            self.emit(Call(KERNELS.rows.iwae_bound, (tot, self.samples, self.plan.S, self.rw, self.ell), wrap="loss = {}"))
            return
        self.emit(ir.Define("loss", "0.0"))
        for c in self.model.costs:
            self.emit(Call(KERNELS.rows.weighted_total, (self.rw, self.summed_over_steps(c) or f"c_{c.name}", tot),
                           wrap="loss += {}"))
        if set(self.an.cost_scale.values()) - {1.0}:   # the per-row costs' cotangent seeds, N cw (plates)
            (N,) = set(self.an.cost_scale.values())
            self.cw_plate = self.buf1("cwp_")
            self.emit(call(KERNELS.rows.scale_shift_fwd, _column(self.cw), _literal(N), 0.0, _column(self.cw_plate)))
        for plate, w in self.group_w.items():   # a per-group term's seeds: N cw times the row's share
            cw = self.cw_group[plate] = self.buf1(f"cwg_{plate}_")
            self.emit(call(KERNELS.rows.scale_shift_fwd, _column(self.cw_plate or self.cw, cw), 1.0, 0.0, _column(cw)))
            self.emit(call(KERNELS.rows.mul_rows, _column(cw), w, 1.0))

    def zero_cotangents(self):
        self.emit(call(KERNELS.rows.zero1, 'grad'))
        for n in self.an.order:
            if self.stored_cotangent(n) is not None and not n.attrs.get("is_head"):
                self.emit(call(KERNELS.rows.zero2, self.storage(self.stored_cotangent(n))))
                for P in sorted(self.plan.gcopy.get(n, ())):
                    self.emit(call(KERNELS.rows.zero2, self.cotangent_on(n, P)))

    def allocate(self, n: Node):
        """The node's input slot, value / cotangent buffers, layer parameters or cost rows."""
        P = self.plan.lay.get(n, self.plan.FULL)
        pre, rows = ("vB_" if P != self.plan.FULL else "v_"), self._rows(P)
        if n.kind == "input":
            j = len(self.builder.L.inputs)
            self.builder.L.inputs.append(n.name)
            self.builder.bind(f"{pre}{n.name}", "inputs", j, width=n.width)
            self.builder.L.values[n.name] = ("input", j, P)
            return
        if n.attrs.get("is_head"):
            c = self.cost_buffer(n)
            if P != self.plan.FULL:   # computed once per row class, spread to all rows (forward_node)
                self.cbuf[n] = self.buf1(f"cB_{n.name}", rows=rows)
                self.cfull[n] = c
            return
        self.buf2(f"{pre}{n.name}", n.width, rows=rows)
        self.builder.L.values[n.name] = ("ws2", len(self.builder.L.ws2) - 1, P)
        if self.needs.req[n]:
            self.buf2(f"{'gB_' if P != self.plan.FULL else 'g_'}{n.name}", n.width, rows=rows)
            for Q in sorted(self.plan.gcopy.get(n, ())):
                self.buf2(self._at_name("g", n, Q), n.width, rows=self._rows(Q))
        if n.kind in OPS and not OPS[n.kind].head and not OPS[n.kind].user:
            self.op_params[n] = [self.param(n.name + q.suffix, q.shape(n), q.init(n, self.rng))
                                 for q in OPS[n.kind].params]

    def forward_node(self, n: Node):
        k = n.kind
        if k == "input":
            return
        P = self.builder.here
        ins = [self.values_on(i, P) for i in n.inputs]
        out = self.stored_values(n) if not n.attrs.get("is_head") else None
        if k in ARRAY_RULES:
            ARRAY_RULES[k].forward(self, n, ins, self.cbuf.get(n, out))
        elif k in OPS and not OPS[k].head:
            op = OPS[k]
            if op.fwd:
                self.emit(render(op.fwd, out=out, **self._op_values(n, ins)))
            off = 0
            for x, xj in zip(n.inputs, ins) if op.fwd_each else ():
                self.emit(render(op.fwd_each, xj=xj, off=off, out=out))
                off += x.width
        elif n.is_stochastic:
            self.emit_param_checks(n, lambda p: call(KERNELS.rows.all_positive, self.v(p)),
                                      lambda p: call(KERNELS.rows.all_finite2, self.stored_values(p)))
            self._estimator(n).draw(self.estimator_context(n))
            self.check_user_draw(n, call(KERNELS.rows.all_finite2, self.v(n)))
            if self._estimator(n).alternative_row:   # where it kept a jump (lowering/alternative.py)
                self.reset_alternative(n, self.estimator_context(n).buffer("switched"))
        elif n.attrs.get("is_head"):
            self.emit_template_fwd(n, ins, self.cbuf[n])
        else:  # pragma: no cover - the DSL builds no other kinds
            raise ModelError(f"node '{n.name}': unknown kind {k!r}")
        scale, group = self.an.cost_scale, self.an.cost_group
        if n.attrs.get("is_head") and scale.get(n, 1.0) != 1.0 and n not in group:   # N / batch
            c = self.cbuf[n]
            self.emit(call(KERNELS.rows.scale_shift_fwd, _column(c), _literal(self.an.cost_scale[n]), 0.0, _column(c)))
        if n.attrs.get("is_head") and P != self.plan.FULL:
            self.emit(call(KERNELS.rows.gather1, self.cbuf[n], _ndist(P), self.row_map(P), self.cfull[n]))
        if n in self.an.cost_group:   # a per-group term: N times each row's share of it, in one pass
            c = self.cfull.get(n, self.cbuf[n])
            self.emit(call(KERNELS.rows.mul_rows, _column(c), self.group_w[self.an.cost_group[n]],
                           _literal(self.an.cost_scale[n])))
        if n.attrs.get("is_head") and n.is_cost:   # its share of the alternative row's cost difference
            self.cost_diff(n, self.cfull.get(n, self.cbuf[n]))
        if n in self.needs.evaluated_by:   # the estimator above owns what its rows do to this node
            self._estimator(self.needs.evaluated_by[n][0]).forward_below(self.estimator_context(n), self._above(n))

    def _above(self, n: Node) -> list:
        """The contexts of the nodes above n whose estimator evaluates the graph below again,
        outermost first (what forward_below / backward_below receive)."""
        return [self.estimator_context(s) for s in self.needs.evaluated_by[n]]

    def emit_template_fwd(self, n: Node, ins: list, c: str):
        """A cost head's forward from its op-table template (c: its cost rows)."""
        self.emit(render(OPS[n.kind].fwd, c=c, **self._op_values(n, ins)))

    def emit_template_bwd(self, n: Node, ins: list, gins: list):
        """A cost head's VJP from its op-table template, seeded by the cost cotangents cw."""
        gs = {f"g{j}": g for j, g in enumerate(gins)}
        cw = self.cw_at(self.builder.here, self.head_scale(n))
        self.emit(render(OPS[n.kind].bwd, cw=cw, **gs, **self._op_values(n, ins)))

    def backward_node(self, n: Node):
        k = n.kind
        if k == "input":
            return
        Q = self.builder.here
        if self.stored_cotangent(n) is not None:   # the cotangents its readers left on their rows, summed into its own
            for P in sorted(self.plan.gcopy.get(n, ())):
                if max(Q) == 0:
                    self.emit(call(KERNELS.rows.fold_rows, self.cotangent_on(n, P), _ndist(P), self.stored_cotangent(n)))
                else:
                    self.emit(call(KERNELS.rows.fold_into, self.cotangent_on(n, P), self.row_map(_rowmap(P, Q)), _ndist(Q),
                                   self.stored_cotangent(n)))
        ins = [self.values_on(i, Q) for i in n.inputs]
        gins = [self.g_or_empty(i) for i in n.inputs]
        if n.attrs.get("is_head"):
            if all(gi is NO_GRAD for gi in gins):
                return
            if k in ARRAY_RULES:
                ARRAY_RULES[k].backward(self, n, ins, gins, self.cw_at(Q, self.head_scale(n)), self.cbuf[n], self._rows(Q))
            else:
                self.emit_template_bwd(n, ins, gins)
            return
        if n.is_stochastic:
            if n in self.needs.evaluated_by:
                self._estimator(self.needs.evaluated_by[n][0]).backward_below(self.estimator_context(n), self._above(n))
            self._estimator(n).estimate(self.estimator_context(n))
            return
        self._backward_kinds(n, ins, gins, self.stored_cotangent(n), self.stored_values(n), self._rows(Q))

    def _backward_kinds(self, n: Node, ins: list, gins: list, gout, out: str, rows: str):
        """VJP of a deterministic layer: gout (its value cotangent) into gins."""
        if gout is None:
            return
        if n.kind in ARRAY_RULES:
            ARRAY_RULES[n.kind].backward(self, n, ins, gins, gout, out, rows)
            return
        op = OPS[n.kind]
        off = 0
        for x, gj in zip(n.inputs, gins) if op.bwd_each else ():
            if gj is not NO_GRAD:
                self.emit(render(op.bwd_each, gout=gout, off=off, gj=gj))
            off += x.width
        if op.bwd is None or (op.bwd_if_input_grad and gins[0] is NO_GRAD):
            return
        gs = {f"g{j}": g for j, g in enumerate(gins)}
        self.emit(render(op.bwd, out=out, gout=gout, **gs, **self._op_values(n, ins)))

    def _op_values(self, n: Node, ins: list) -> dict:
        """The names an op's array templates read: input values, parameters, attributes."""
        vals = dict(n.attrs)
        vals.update({f"x{j}": x for j, x in enumerate(ins)})
        for j, (p, gp) in enumerate(self.op_params.get(n, ())):
            vals[f"p{j}"], vals[f"gp{j}"] = p, gp
        return vals


def _literal(x: float) -> str:
    """A float as step source: np.nan for NaN (an unsized plate's N until fit sets it)."""
    return "np.nan" if x != x else repr(x)


def _column(x: str, rows_of: str | None = None) -> Column:
    """A 1D row buffer as the (rows, 1) array a two-dimensional kernel takes (the rows of
    `rows_of`, the same count)."""
    return Column(x, rows_of)
