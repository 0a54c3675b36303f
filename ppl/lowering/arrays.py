"""The array lowering: every node's values in a buffer over the step's rows, each node's code one
kernel call per pass (the walk's hooks, walk.py), on the rows of its classes of equal rows (views.py).

The loss (`lower_loss`): objective "elbo" is the mean over rows of the costs weighted by `rw`
(rows.weighted_total). Objective "iwae" (K >= 2 samples, Burda et al. 2016) adds each draw's costs
into `tot_` (C_ik = -log w_ik); rows.iwae_bound returns the mean over data rows of
-log (1/K sum_k exp(-C_ik)), writes it to every row of its data row (`ell_`) and overwrites `rw` by
the normalised weights / B, so the backward pass below is the ELBO's and carries the bound's
gradient unchanged. An estimator states the objectives it estimates (`Estimator.objectives`);
`applies` refuses the others with the reason.

Plates: a per-row cost's rows are scaled by its weight N in the forward (`after_forward`) and its
VJP seeded by N cw (`cw_seed`); a per-group term by N times each row's share of its group's terms.
"""
from __future__ import annotations

from . import ir
from .alternative import Alternative
from .tangents import Tangents
from .core import Lowering
from .context import CONSTRAINT_TESTS, ArrayHelpers
from .layout import _ndist, _rowmap
from .rules import ARRAY_RULES
from .views import Views
from ..calls import KERNELS, Call, Column, Const, call, per_row, render
from ..estimators import NO_GRAD, EstimatorContext
from ..language.nodes import Node
from ..ops import OPS


class ArrayLowering(Lowering, ArrayHelpers, Views, Alternative, Tangents):
    """Emits the array step: one kernel call per node and pass over the rows of the node's layout."""

    rules = ARRAY_RULES   # the ops whose array code is more than their templates
    merge_rows = True     # layers computed once per class of equal rows (rows.plan_rows)
    one_layout = False
    unrolls = False       # the configurations are rows of the same buffers
    context_class = EstimatorContext   # what estimator_context makes, one per node

    def _init_target(self):
        self._init_array_helpers()
        self._init_views()
        self._init_alternative()
        self._init_tangents()
        self.op_params: dict = {}   # layer node -> [(param view, its gradient view)] (ops.OPS)
        self.totals = self.ell = self.uw = None   # IWAE (lower_loss): rows' cost totals, bound, 1 / B weights
        self.cw_plate, self.cw_group = None, {}   # plates: the cost cotangent seeds N cw, and per group
        self.cfull: dict = {}       # cost head -> its rows spread to all R
        self.group_w: dict = {}     # plate -> its rows' share of the group's terms on all R rows
        self._Lcache: dict = {}     # (costs, future, in a loop) -> the buffer of a downstream sum (downstream_L)

    def row_code(self):
        return None   # an array step has no row code of its own

    # ----- storage
    def before_walk(self):
        """Per plate of groups with terms: each row's share of its group's terms, 1 / (the group's
        rows in the data set), on all R rows (`w_<plate>`): the hidden input `_w_<plate>` (one row
        per data row, Program's inputs compute it) repeated over a data row's rows."""
        for plate in dict.fromkeys(self.an.cost_group.values()):
            j = len(self.builder.L.inputs)
            self.builder.L.inputs.append(f"_w_{plate}")
            self.builder.bind(f"wB_{plate}", "inputs", j, width=1)
            w = self.group_w[plate] = self.buf1(f"w_{plate}_")
            self.emit(call(KERNELS.rows.repeat_rows, f'wB_{plate}', self.plan.reps, Column(w)))

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
            if P != self.plan.FULL:   # computed once per row class, spread to all rows (after_forward)
                self.cfull[n] = self.cost_buffer(n, rows=rows)
            else:
                self.cost_buffer(n)
            return
        self.buf2(f"{pre}{n.name}", n.width, rows=rows)
        self.builder.L.values[n.name] = ("ws2", len(self.builder.L.ws2) - 1, P)
        if self.needs.req[n]:
            self.buf2(f"{'gB_' if P != self.plan.FULL else 'g_'}{n.name}", n.width, rows=rows)
            for Q in sorted(self.plan.gcopy.get(n, ())):
                self.buf2(self._at_name("g", n, Q), n.width, rows=self._rows(Q))
        if n.kind in OPS and not OPS[n.kind].head and not OPS[n.kind].user:
            self.op_params[n] = [self.param(n.attrs.get("params_of", n.name) + q.suffix, q.shape(n), q.init(n, self.rng))
                                 for q in OPS[n.kind].params]

    def read_input(self, n: Node):
        pass   # a data input is an argument of the step

    def node_inputs(self, n: Node) -> list:
        return [self.values_on(i, self.builder.here) for i in n.inputs]

    def value_out(self, n: Node) -> str:
        return self.stored_values(n)

    def cost_out(self, n: Node) -> str:
        return self.cost_rows(n)

    def input_cotangents(self, n: Node) -> list:
        return [self.g_or_empty(i) for i in n.inputs]

    def value_cotangent(self, n: Node):
        return self.stored_cotangent(n)

    def collect_cotangent(self, n: Node):
        """The cotangents its readers left on their rows, summed into the node's own."""
        if self.stored_cotangent(n) is None:
            return
        Q = self.builder.here
        for P in sorted(self.plan.gcopy.get(n, ())):
            if max(Q) == 0:
                self.emit(call(KERNELS.rows.fold_rows, self.cotangent_on(n, P), _ndist(P), self.stored_cotangent(n)))
            else:
                self.emit(call(KERNELS.rows.fold_into, self.cotangent_on(n, P), self.row_map(_rowmap(P, Q)), _ndist(Q),
                               self.stored_cotangent(n)))

    def rows_here(self) -> str:
        return self._rows(self.builder.here)

    # ----- code
    def emit_call(self, line):
        self.emit(line)

    def op_values(self, n: Node, ins: list) -> dict:
        """The names an op's array templates read: input values, parameters, attributes."""
        vals = dict(n.attrs)
        vals.update({f"x{j}": x for j, x in enumerate(ins)})
        for j, (p, gp) in enumerate(self.op_params.get(n, ())):
            vals[f"p{j}"], vals[f"gp{j}"] = p, gp
        return vals

    def call(self, kernel, ins: list, outs: list, node: Node | None = None):
        """Emit kernel(*ins, K, *outs): a law's kernel (a KernelRef, or the name of a `core`
        kernel), with the group size K of a grouped node between its inputs and outputs."""
        k = [node.attrs["K"]] if node is not None and "K" in node.attrs else []
        self.emit(call(kernel, *ins, *k, *outs))

    def constraint_test(self, kind: str, p: Node, K) -> str:
        """The source of the test that every value of the parameter node p meets the constraint
        (ppl/laws/law.py's CONSTRAINTS; K: the group size of a grouped law), on the arrays."""
        return render(CONSTRAINT_TESTS[kind], v=self.v(p), K=K)

    def downstream_L(self, node: Node) -> str:
        """1D, per row: the sum of the costs downstream of the node. A node of a loop's body: its
        step's, and (when it reaches the carry or an output) the running sum of the later steps'
        and those after the loop (loops.py); a node outside a loop: a body's costs summed over the
        steps."""
        costs = self.an.downstream_costs[node]
        info = self.an.loop_of(node)
        future = self.future_of(info) if info is not None and node in info.future else None
        key = (frozenset(c.name for c in costs), future, info is not None)
        if key not in self._Lcache:
            L = self.buf1(f"L_{node.name}")
            self.emit(call(KERNELS.rows.zero1, L))
            base = self._L_below(key) if info is None else None
            if base is not None:   # a sum made already of some of these costs: it, then the others
                self.emit(call(KERNELS.rows.add_rows, self._Lcache[base], L))
            for c in costs:
                if base is None or c.name not in base[0]:
                    total = self.summed_over_steps(c) if info is None else None
                    self.emit(call(KERNELS.rows.add_rows, total or f'c_{c.name}', L))
            if future is not None:
                self.emit(call(KERNELS.rows.add_rows, future, L))
            self._Lcache[key] = L
        return self._Lcache[key]

    def _L_below(self, key):
        """The key of the largest sum of costs made already (outside loops) whose costs are all
        among key's: a stack of layers sums each layer's costs once (the backward pass makes the
        last layer's sum first), not every downstream cost again at every layer."""
        below = [k for k in self._Lcache if not k[2] and k[1] is None and k[0] and k[0] <= key[0]]
        return max(below, key=lambda k: len(k[0]), default=None)

    # ----- estimators
    def draw_node(self, n: Node):
        """The node's parameters checked, its estimator's draw (a user's checked), and where it
        kept a jump the alternative row reset (lowering/alternative.py)."""
        self.emit_param_checks(n, lambda p: call(KERNELS.rows.all_positive, self.v(p)),
                                  lambda p: call(KERNELS.rows.all_finite2, self.stored_values(p)))
        self._estimator(n).draw(self.estimator_context(n))
        self.check_user_draw(n, call(KERNELS.rows.all_finite2, self.v(n)))
        if self.plan.shapes[n].joins == "alternative":
            self.reset_alternative(n, self.estimator_context(n).buffer("switched", self.plan.paths))

    def estimate_node(self, n: Node):
        if n in self.needs.evaluated_by:
            self._estimator(self.needs.evaluated_by[n][0]).backward_below(self.estimator_context(n), self._above(n))
        self._estimator(n).estimate(self.estimator_context(n))

    def _above(self, n: Node) -> list:
        """The contexts of the nodes above n whose estimator evaluates the graph below again,
        outermost first (what forward_below / backward_below receive)."""
        return [self.estimator_context(s) for s in self.needs.evaluated_by[n]]

    def learning_signal(self, node: Node) -> tuple:
        """(L, weights) of a score-function node: the ELBO's is the sum of the costs downstream of
        the node per row, weighted by rw; the IWAE bound's, the row's bound ell_i (every cost of
        the draw enters it through the weights), each row weighted 1 / B."""
        if self.objective == "iwae":
            return self.ell, self.uw
        return self.downstream_L(node), self.rw

    def iwae_totals(self):
        """The rows' cost totals of the IWAE bound (None before the loss is lowered, or for the ELBO)."""
        return self.totals

    # ----- cost heads
    def after_forward(self, n: Node, out: str):
        """A cost's rows scaled by its plate's weight, spread from its row classes to all rows,
        its share of the alternative row's cost difference; what the estimators above a node
        that evaluate the graph below again do to it."""
        head = n.attrs.get("is_head")
        scale, group = self.an.cost_scale, self.an.cost_group
        if head and scale.get(n, 1.0) != 1.0 and n not in group:   # a plate's cost rows x N (rw holds 1 / batch)
            c = self.cost_rows(n)
            self.emit(call(KERNELS.rows.scale_shift_fwd, Column(c), _literal(scale[n]), 0.0, Column(c)))
        if head and self.builder.here != self.plan.FULL:
            self.emit(call(KERNELS.rows.gather1, self.cost_rows(n), _ndist(self.builder.here),
                           self.row_map(self.builder.here), self.cfull[n]))
        if n in group:   # a per-group term: N times each row's share of it, in one pass
            c = self.cfull.get(n, self.cost_rows(n))
            self.emit(call(KERNELS.rows.mul_rows, Column(c), self.group_w[group[n]], _literal(scale[n])))
        if head and n.is_cost:   # its share of the alternative row's cost difference
            self.cost_diff(n, self.cfull.get(n, self.cost_rows(n)))
        if n in self.needs.evaluated_by:   # the estimator above owns what its rows do to this node
            self._estimator(self.needs.evaluated_by[n][0]).forward_below(self.estimator_context(n), self._above(n))
        self.tangent_forward(n)

    def cost_seed(self, n: Node, gins: list):
        """A cost's cotangent seeds on its rows (cw, N cw, ...), or None when no input needs one."""
        if all(gi is NO_GRAD for gi in gins):
            return None
        return self.cw_at(self.builder.here, self.head_scale(n))

    def cw_seed(self, scale) -> str:
        """The cost cotangent seeds on all rows of a head of weight `scale` (head_scale): cw, N cw
        for a per-row cost of a plate (cw_plate), or a plate of groups' (cw_group)."""
        if isinstance(scale, tuple):
            return self.cw_group[scale[1]]
        return self.cw if scale == 1.0 else self.cw_plate

    def head_scale(self, n: Node):
        """A cost head's weight: 1 (a global term), N (a per-row cost of a plate) or (N, the plate
        of groups) for a per-group term (N times each row's share of its group's terms)."""
        return ("group", self.an.cost_group[n]) if n in self.an.cost_group else self.an.cost_scale.get(n, 1.0)

    # ----- the loss
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
            self.emit(call(KERNELS.rows.config_weights, self.plan.S, 0, 0, per_row(1.0), self.uw))
            self.emit(Call(KERNELS.rows.iwae_bound, (tot, self.samples, self.plan.S, self.rw, self.ell), assign=("loss", "=")))
            return
        self.emit(ir.Define("loss", Const("0.0")))
        for c in self.model.costs:
            self.emit(Call(KERNELS.rows.weighted_total, (self.rw, self.summed_over_steps(c) or f"c_{c.name}", tot),
                           assign=("loss", "+=")))
        if set(self.an.cost_scale.values()) - {1.0}:   # the per-row costs' cotangent seeds, N cw (plates)
            (N,) = set(self.an.cost_scale.values())
            self.cw_plate = self.buf1("cwp_")
            self.emit(call(KERNELS.rows.scale_shift_fwd, Column(self.cw), _literal(N), 0.0, Column(self.cw_plate)))
        for plate, w in self.group_w.items():   # a per-group term's seeds: N cw times the row's share
            cw = self.cw_group[plate] = self.buf1(f"cwg_{plate}_")
            self.emit(call(KERNELS.rows.scale_shift_fwd, Column(self.cw_plate or self.cw, cw), 1.0, 0.0, Column(cw)))
            self.emit(call(KERNELS.rows.mul_rows, Column(cw), w, 1.0))

    def zero_cotangents(self):
        self.emit(call(KERNELS.rows.zero1, 'grad'))
        self.tangent_grads()
        for n in self.an.order:
            if self.stored_cotangent(n) is not None and not n.attrs.get("is_head"):
                self.emit(call(KERNELS.rows.zero2, self.storage(self.stored_cotangent(n))))
                for P in sorted(self.plan.gcopy.get(n, ())):
                    self.emit(call(KERNELS.rows.zero2, self.cotangent_on(n, P)))


def _literal(x: float) -> Const:
    """A float as step source: np.nan for NaN (an unsized plate's N until fit sets it)."""
    return Const("np.nan" if x != x else repr(x))
