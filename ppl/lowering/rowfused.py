"""Row-fused lowering: the step of a graph whose every node has width 1, as ONE loop
over rows of straight-line scalar code.

The array lowering (``lowering.ArrayLowering``) emits one kernel call per node and pass; on width-1
arrays each call is call, loop and view overhead around one or two flops, so a scalar estimate
(the REBAR / RELAX toy, a scalar estimator inside a user's @njit simulation) is mostly overhead.
Here every node's value is a local variable of the row loop, and the row's backward pass follows
its forward pass in the same iteration. The code of each node is its array code rewritten: the
kernel calls the array lowering renders from the op table (``ops.OPS``), the laws' kernels and
an estimator's own calls are row calls (``ir.RowCall``: the kernel on the row's locals), which the
printer (``printer.print_rows``) writes as the kernels' bodies over those locals (the row-fused
rewrite, ``kernels/rowcode.py``), so an op's, a law's or an estimator's formula is written once,
in its kernel. The noise is the array path's, drawn per row by the addressed scalar functions of
``kernels/math/rng.py`` (the same philox counter, so the same draws), so the two lowerings give
the same samples and, up to float rounding, the same loss, gradient and estimator state;
``tests/lowering/test_rowfused_lowering.py`` and ``tests/lowering/test_rowfused_user_functions.py`` check that
against the array lowering.

Antithetic pairs (ARM, DisARM) are configurations of a drawn row, as in the array lowering
(r = d S + c): the loop runs over drawn rows d and the code of each node is emitted once per
configuration c (locals suffixed _c, each configuration's row weight `w_c` among them). An
estimator's value, parameters, cotangents, costs and weights are then one local per configuration
(`rowcontext.ConfigNames`), and a kernel body that reads its pair's other row (`r + off * stride`)
reads the other configuration's local (kernels/rowcode.py), so ARM's and DisARM's declared kernels
are their row form too.

A user's black box (``ppl.blackbox``) or layer (``ppl.layer``) has no kernel body to rewrite: its
@njit functions are called once per row (``rules.ROW_RULES``), as the array rules call them on a
row of values, here on one-value workspace rows filled from the row's locals (``scratch_row``);
its gradient (``grad`` / ``vjp``) writes the inputs' gradients into such rows, added into their
cotangents by the array rules' kernels, rewritten. The user's functions are globals of the
step's module, so such a program is not cached on disk, as in the array lowering.

It applies when every node has width 1 and every kernel its ops and laws call has a row form
(``applies`` says why not). Estimators: a draw and an estimate run on the estimator context over
the row's locals (``rowcontext.py``: pathwise, straight-through, Concrete, ReinMax, gapped ST,
ARM, DisARM, MVD, score, a user's); a kernel that folds over every row of the step (score's
moving-average baseline) runs its parts before, in and after the row loop (``rowcode.FOLDS``).
Code with no row form raises ``rowcode.NoRowForm`` and the compiler lowers the graph with array
kernels (``compiler.pipeline.run_passes``).
The step's signature, layout and buffers are the array program's: a
forward-only call (mode 0) writes node values, per-row costs and row weights to the same
workspace rows, so ``sample``, ``loss_parts`` and a user's @njit loop see no difference; a
gradient call (mode 1) writes only ``grad`` and the estimator state.
"""
from __future__ import annotations

import functools
from types import MappingProxyType

import numpy as np

from . import _ident, ir
from .core import Lowering
from ..language.nodes import Node
from ..distributions import DISTRIBUTIONS
from ..estimators import REGISTRY
from ..estimators.protocol import NO_GRAD, NO_GRAD_1D, row_shapes
from .rowcontext import RowEstimatorContext
from .rows import shared_members, shared_span
from ..analysis import graph as G
from .rules import ROW_RULES
from .printer import qualify, row_lines_of
from ..kernels import rowcode
from ..kernels.families import checks
from ..kernels.math import rng
from ..calls import Call, Code, Flat, Template, call, code, ref, template
from ..statements import Assign, Expr, add, as_float, cast, expr, floordiv, index, mul, scalar_call
from ..ops import OPS

_SKIPPED = {NO_GRAD.name, NO_GRAD_1D.name}   # a skipped gradient: an array of 0 rows to the row-fused rewrite
MAX_CONFIGS = 8  # antithetic configurations per drawn row unrolled into the loop body


def applies(model, an, choices) -> str | None:
    """None when the graph can be lowered row-fused, else the reason it cannot (`an`: the model's
    analysis, its graph)."""
    if getattr(model, "plates", None):
        return "the model has a plate (its global nodes and scaled costs are lowered by the array kernels)"
    if getattr(model, "loops", None):
        return "the model has a ppl.scan (its loop block is lowered by the array kernels)"
    shapes = row_shapes([n for n in model.order if n.is_stochastic], choices)
    sizes = {n: shape.configs for n, shape in shapes.items()}
    shared = shared_members(model.order, shapes, lambda n: G.descendants(an.graph, n.name))
    configs = shared_span(shared, shapes)
    for n in model.order:
        if n.attrs.get("is_head"):
            if any(i.width != 1 for i in n.inputs):
                return f"cost '{n.name}' reads a node wider than 1"
            why = _op_row_form(n)
            if why:
                return f"cost '{n.name}' ({n.kind}): {why}"
            continue
        if n.width != 1:
            return f"node '{n.name}' has width {n.width}"
        if n.is_stochastic:
            ch, _ = choices[n]
            est = REGISTRY[ch.estimator]
            why = est.scalar_support(n, ch.options) or _law_row_form(DISTRIBUTIONS[n.kind])
            if why:
                return f"'{n.name}': {why}"
            if n not in shared:
                configs *= sizes[n]
            if configs > MAX_CONFIGS:
                return f"more than {MAX_CONFIGS} antithetic configurations per drawn row"
        elif n.kind != "input":
            why = _op_row_form(n)
            if why:
                return f"node '{n.name}' ({n.kind}): {why}"
    return None


def _row_arg(a):
    """A row call's argument: None for a skipped gradient, a tuple of texts for a local per
    configuration (None where it has none; None when it has none anywhere), else its text."""
    at = getattr(a, "at", None)
    if at is not None:
        at = tuple(None if t is None or str(t) in _SKIPPED else str(t) for t in at)
        return None if all(t is None for t in at) else at
    return None if str(a) in _SKIPPED else str(a)


def _kernel(kernel):
    """The CPU kernel of a template (its record's), a KernelRef or a law's kernel entry (a
    `core` kernel's name); None when there is none."""
    if isinstance(kernel, Template) or (isinstance(kernel, str) and "(" in kernel):
        kernel = template(kernel).kernel
    kernel = ref(kernel)
    try:
        return kernel.cpu
    except AttributeError:
        return None


def _op_row_form(n: Node) -> str | None:
    """Why the op's kernels have no row form (None: they have one)."""
    if n.kind == "log_prob":
        return _law_row_form(DISTRIBUTIONS[n.inputs[0].kind], ("log_prob", "log_prob_bwd"))
    op = OPS.get(n.kind)   # a rule (lowering/rules.py) beside templates computes what they do
    if n.kind in ROW_RULES:
        return None   # its row code is a rule's (a user's @njit functions called per row)
    if op is None or op.fwd_each or not op.fwd:
        return "it has no kernel template (its array code is a rule) for the row-fused lowering to rewrite"
    for t in (op.fwd, op.bwd):
        if t and not rowcode.has_row_form(_kernel(t)):
            return f"the kernel of {template(t).kernel} has no row form"
    return None


def _law_row_form(law, keys=("sample", "log_prob", "log_prob_bwd")) -> str | None:
    """Why the law's kernels every row code of its nodes calls have no row form (None: they
    have one); an estimator's other kernels are rewritten when its code is (NoRowForm there)."""
    if getattr(rng, f"{law.noise}_f32", None) is None or law.noise_draws != 1 or law.grouped:
        return f"{law.name} draws its noise in a way the row code does not"
    for key in keys:
        name = law.kernels.get(key)
        if name is None:
            return f"{law.name} has no {key} kernel"
        if not rowcode.has_row_form(_kernel(name)):
            return f"the {key} kernel of {law.name} has no row form"
    return None


class RowFusedLowering(Lowering):
    """Emits the row-fused step: the walk's hooks (walk.py) over one row's locals, each node's
    kernel calls (op templates, law kernels) rewritten by the row-fused rewrite. An estimator's
    draw and estimate run on `row_context`."""

    rules = ROW_RULES   # a user's functions, called per row; a log_prob cost's law kernels
    merge_rows = False  # (one layout: every node on every row)
    one_layout = True   # every node is computed per row: a width-1 value costs nothing to redo
    unrolls = True      # each configuration's code is unrolled into the row loop
    context_class = RowEstimatorContext   # estimator_context: the context over the row's locals

    def _init_target(self):
        self.fdtype, self.prec = ("np.float32", "f32") if self.dtype == "float32" else ("np.float64", "f64")
        self.builder.L.lowering = "row-fused: one loop of scalar code (every node has width 1)"
        # self.builder.fwd / self.builder.bwd: the forward / backward code of one row (backward: mode != 0)
        self.pre: list = []         # before the row loop: a fold's first part (ir.RowCall), reading state
        self.post: list = []        # after the row loop: a fold's last part, updating state (mode != 0)
        self.offset: dict = {}      # param / affine node -> its offset in theta
        self.inputs: list = []      # the inner functions' names of the data inputs
        self.calls = 0              # kernel calls rewritten so far (their locals' suffix)
        self.imports: dict = {}     # alias -> module of ppl.kernels the row code calls beyond the step's
        self.scratch: dict = {}     # name -> ws1 index of the one-value rows of scratch_row (_gradient's arguments)
        self.defines: dict = {}     # local -> its statement, emitted before the first row call that reads it
        self.folds: dict = {}       # a fold's call site -> the tag of its locals (row_kernel)

    # ----- helpers estimators use
    def weighs(self, cfg=None) -> bool:
        """Whether configuration cfg carries the objective's weight (RowPlan.weighs)."""
        return self.plan.weighs(self.builder.cfg if cfg is None else cfg)

    def weight(self, cfg=None) -> str:
        """The local holding configuration cfg's row weight (default: the current one's): the drawn
        row's `w_`, 0 on the extra rows of the shared digit, halved by each antithetic pair of a
        digit of its own (its draw's `scale_rows`)."""
        return "w_" if self.plan.S == 1 else f"w_{self.builder.cfg if cfg is None else cfg}"

    def row(self, cfg=None) -> Expr:
        """The workspace row of drawn row d in configuration cfg (default: the current one)."""
        return expr("d") if self.plan.S == 1 else add(mul("d", self.plan.S), self.builder.cfg if cfg is None else cfg)

    def local(self, prefix: str, node: Node, cfg=None, per_config=True) -> str:
        """The name of a local of the row code for node: <prefix>_<node>, suffixed with the
        configuration (when there are several) unless it is shared by all of them."""
        sfx = "" if self.plan.S == 1 else f"_{self.builder.cfg if cfg is None else cfg}"
        return f"{prefix}_{_ident(node.name)}" + (sfx if per_config else "")

    def val(self, node: Node, cfg=None) -> str:
        return self.local("s", node, cfg)

    def cot(self, node: Node, cfg=None):
        """The local holding the cotangent of the node's value, or None when none is needed."""
        return self.local("d", node, cfg) if self.needs.req[node] and node.kind != "input" else None

    def cost_local(self, head: Node, cfg=None) -> str:
        return self.local("cs", head, cfg)

    def put(self, stmt, store: bool = False):
        """A statement of the row code (statements.Assign or Do: this lowering's own, or its
        rules' for a user's functions). `store`: a write of a row's value to the workspace, which
        only the forward-only step keeps (ir.Store; the gradient step needs none)."""
        for line in stmt.lines():
            self.emit(ir.Store(line, line.names) if store else line)

    def noise_scalar(self, node: Node, kind: str, k: int = 0) -> str:
        """The node's base noise of drawn row d, shared by its configurations (common random
        numbers): the value fill_<kind> writes at (row d, column 0)."""
        name = self.local(f"n{k}", node, per_config=False)
        if self.builder.cfg == 0:
            draw = getattr(rng, f"{kind}_{self.prec}")
            self.put(Assign(name, scalar_call(draw, "seed", self.stream(node, k), add("d", "row0"), 0, "t")))
        self.record_noise(node, name)
        return name

    def constraint_test(self, kind: str, p: Node, K) -> str:
        """The row's test of a parameter's constraint (the array form: lowering/context.py)."""
        test = checks.VALUE_TESTS.get(kind)
        if test is None:   # a grouped law's weights: no width-1 node is grouped
            raise rowcode.NoRowForm(f"the constraint {kind!r} has no row form")
        alias, _, name = qualify(test, self.imports).rpartition(".")
        return code("{m}." + name + "({x})", m=alias, x=self.val(p))

    def params_of(self, node: Node) -> list:
        return [self.val(p) for p in node.inputs]

    # ----- the row-fused rewrite: the array lowering's kernel calls, rewritten (kernels/rowcode.py)
    def row_call(self, line):
        """Emit the row code of a kernel call of the array lowering (its record, calls.Call),
        rendered over this row's locals: each argument is a local, a parameter's slot of theta or
        grad, a number, or the marker of a skipped gradient; a `Flat` buffer is the row's value."""
        kernel = _kernel(line.kernel) if isinstance(line, Call) and line.kernel.alias is not None else None
        if kernel is None:
            raise rowcode.NoRowForm(f"the line {str(line).strip()!r} is no kernel call of the step's modules")
        self.row_kernel(kernel, [a.buffer if isinstance(a, Flat) else a for a in line.args])

    def row_kernel(self, kernel, args: list, fold=None):
        """Emit the call kernel(*args) of the row code (ir.RowCall; its lines are the kernel's body
        over the row's locals, inlined by the printer): args as `row_call`'s (a marker's name:
        skipped), or a local per configuration (`rowcontext.ConfigNames`): the call is then the
        current configuration's, and its body may read the others' (kernels/rowcode.py). A local
        it reads that `defines` holds is defined first. A kernel that folds over the rows
        (rowcode.FOLDS) runs its part before the row loop and its part after it once, for the
        first call of key `fold` (one per call site: every configuration's code calls it)."""
        kernel = getattr(kernel, "cpu", kernel)
        args = [_row_arg(a) for a in args]
        row = self.builder.cfg if any(isinstance(a, tuple) for a in args) else None
        if rowcode.fold_of(kernel) is None:
            self.calls += 1
            st = ir.RowCall(kernel, args, self.calls, row)
        elif fold is None:
            raise rowcode.NoRowForm(f"{kernel.__name__} folds over the rows: only an estimator's call runs it")
        else:
            if fold not in self.folds:
                self.calls += 1
                self.folds[fold] = self.calls
                self.pre.append(ir.RowCall(kernel, args, self.calls, None, "before"))
                self.post.append(ir.RowCall(kernel, args, self.calls, None, "after"))
                for part in (self.pre[-1], self.post[-1]):
                    row_lines_of(part)   # NoRowForm here, in the lowering
            st = ir.RowCall(kernel, args, self.folds[fold], row, "each")
        _, _, reads = row_lines_of(st)   # a kernel or argument with no row form: NoRowForm here, in the lowering
        for name in sorted(reads & self.defines.keys()):
            self.put(self.defines.pop(name))
        self.builder.append(st)

    def scratch_row(self, name: str) -> str:
        """A 1D workspace row of one value (ws1, named once) whose array a function called from
        the row code reads or writes (ROW_RULES: a user's functions): the forward function binds
        it as the array kernels' step does, the gradient function takes it as an argument."""
        name = _ident(name)
        if name not in self.scratch:
            self.buf1(name, rows=1)
            self.scratch[name] = len(self.builder.L.ws1) - 1
        return name

    def row_context(self, node: Node):
        """The estimator context of the node over this row's locals (rowcontext.py): an
        estimator's own draw and estimate, lowered row-fused."""
        ctx = self.estimator_context(node)   # one per node: its draw's noise streams are counted
        ctx._begin(drawing=self.builder.section is self.builder.fwd)
        return ctx

    def call(self, kernel: str, ins: list, outs: list, node: Node | None = None):
        """The array lowering's `call` (a kernel of `core` on buffers), as row code."""
        self.row_call(call(kernel, *ins, *outs))

    def law_call(self, node: Node, key: str, ins: list, outs: list) -> None:
        """The row code of the kernel `key` of the node's (estimator, law) pair, the one the array
        form calls (EstimatorContext.law_call): the estimator's kernel for the law, else the law's."""
        self.call(self._estimator(node).law_kernel(self.dist(node), key), ins, outs)

    def log_prob_vjp_row(self, node: Node, weight: str, with_value: bool):
        """weight * d log p(node | params) into the params' cotangents (and the value's), for
        this row: the law's log_prob_bwd kernel."""
        gp = [self.cot(q) or NO_GRAD for q in node.inputs]
        gx = (self.cot(node) if with_value else None) or NO_GRAD
        if any(g is not NO_GRAD for g in (*gp, gx)):
            self.call(self.dist(node).kernels["log_prob_bwd"], [*self.params_of(node), self.val(node), weight], [*gp, gx])

    def downstream_L(self, node: Node, cfg=None) -> str:
        """A local holding the sum of the node's downstream costs in configuration cfg, defined
        before the first row call that reads it (`defines`)."""
        name = self.local("L", node, cfg)
        terms = [self.cost_local(c, cfg) for c in self.an.downstream_costs[node]]
        self.defines.setdefault(name, Assign(name, functools.reduce(add, terms) if terms else cast(0.0)))
        return name

    # ----- the walk's hooks (walk.py)
    def before_walk(self):
        self.buf1("tot_")
        if self.plan.S > 1:   # each configuration's row weight
            for c in self.configs:
                self.put(Assign(self.weight(c), "w_" if self.weighs(c) else cast(0.0)))

    def allocate(self, n: Node):
        """A node's parameters, input slot, value or cost rows: once, before its code is emitted
        for each configuration (parameters in topological order, as the array lowering does)."""
        if n.kind == "input":
            self.builder.L.values[n.name] = ("input", len(self.builder.L.inputs), self.plan.D1)
            self.builder.L.inputs.append(n.name)
            self.inputs.append(self.local("in", n, per_config=False))
        elif n.attrs.get("is_head"):
            self.cost_buffer(n)
        else:
            params = OPS[n.kind].params if n.kind in OPS else ()
            if params:   # theta / grad indexed directly (no reshaped views)
                self.offset[n] = self.builder.L.n_theta
            for q in params:
                self.param(n.attrs.get("params_of", n.name) + q.suffix, q.shape(n), q.init(n, self.rng))
            self.buf2(f"v_{n.name}", 1)
            self.builder.L.values[n.name] = ("ws2", len(self.builder.L.ws2) - 1, self.plan.FULL)

    def read_input(self, n: Node):
        self.put(Assign(self.val(n), index(self.local("in", n, per_config=False), floordiv("d", self.samples), 0)))

    def node_inputs(self, n: Node) -> list:
        return self.params_of(n)

    def value_out(self, n: Node) -> str:
        return self.val(n)

    def cost_out(self, n: Node) -> str:
        return self.cost_local(n)

    def input_cotangents(self, n: Node) -> list:
        return [self.cot(x) or NO_GRAD for x in n.inputs]

    def value_cotangent(self, n: Node):
        return self.cot(n)

    def collect_cotangent(self, n: Node):
        pass   # a cotangent is one local, every reader adds into it

    def rows_here(self) -> str:
        return "R"

    def emit_call(self, line):
        self.row_call(line)

    def op_values(self, n: Node, ins: list) -> dict:
        """The names an op's templates read, in the row: input values, its parameters' slots of
        theta and grad (p0, gp0, ...: each one number at width 1), attributes."""
        vals = dict(n.attrs)
        vals.update({f"x{j}": x for j, x in enumerate(ins)})
        o = self.offset.get(n)
        for j, q in enumerate(OPS[n.kind].params if n.kind in OPS else ()):
            vals[f"p{j}"], vals[f"gp{j}"] = f"theta[{o}]", f"grad[{o}]"
            o += int(np.prod(q.shape(n)))
        return vals

    def draw_node(self, n: Node):
        """The node's parameters checked, its estimator's row-fused draw (a user's checked)."""
        self.emit_param_checks(n, lambda p: code("{x} > 0", x=self.val(p)), self._finite)
        REGISTRY[self.choices[n][0].estimator].draw(self.row_context(n))
        self.check_user_draw(n, self._finite(n))

    def _finite(self, node: Node) -> Code:
        """The row's test that the node's value is finite."""
        return code("{np}.isfinite({x})", np="np", x=self.val(node))

    def estimate_node(self, n: Node):
        """The estimator's estimate on the context over the row's locals."""
        REGISTRY[self.choices[n][0].estimator].estimate(self.row_context(n))

    def after_forward(self, n: Node, out: str):
        """The row's value (or cost) stored to the workspace, for the forward-only step."""
        if n.attrs.get("is_head"):
            self.put(Assign(index(self.cost_rows(n), self.row()), out), store=True)
        else:
            self.put(Assign(index(f"v_{_ident(n.name)}", self.row(), 0), out), store=True)

    def cost_seed(self, n: Node, gins: list):
        """The row's weight, or None in a configuration without one (its cost cotangent is 0)."""
        return self.weight() if self.weighs() else None

    def lower_loss(self):
        for self.builder.cfg in self.configs:
            if not self.weighs():   # an extra row of the shared digit: no weight in the objective
                self.put(Assign(index(self.rw, self.row()), cast(0.0)), store=True)
            else:
                self.put(Assign(index(self.rw, self.row()), self.weight()), store=True)
                for c in self.model.costs:
                    self.put(Assign("loss", mul(as_float(self.weight()), as_float(self.cost_local(c))), "+="))
            costs = [self.cost_local(c) for c in self.model.costs]
            self.put(Assign(index("tot_", self.row()), functools.reduce(add, costs) if costs else 0.0), store=True)
        self.builder.cfg = 0

    def zero_cotangents(self):
        for n in self.an.order:
            for self.builder.cfg in self.configs:
                if self.cot(n) is not None and not n.attrs.get("is_head"):
                    self.put(Assign(self.cot(n), cast(0.0)))
        self.builder.cfg = 0

    def row_code(self) -> ir.RowCode:
        return ir.RowCode(tuple(self.pre), tuple(self.post), tuple(self.inputs), MappingProxyType(dict(self.scratch)),
                          MappingProxyType(dict(self.imports)), self.fdtype, self.samples)
