"""What the walk, the rules and an estimator's context call while a node is lowered: emitting
lines and kernel calls, allocating buffers, parameters and state, and checking a law's parameters
(ContextHelpers, both lowerings'); the array estimator context's buffers, noise and kept values
(ArrayHelpers, the array lowering's)."""
from __future__ import annotations

import importlib

import numpy as np

from ..calls import KERNELS, Buf, Head, KernelRef, call, prefix, template
from ..distributions import DISTRIBUTIONS
from ..estimators.protocol import NO_GRAD
from ..estimators.context import Kernel
from ..errors import ModelError
from ..analysis import graph as G
from ..language.expressions import expression
from ..language.nodes import Node
from ..targets import CPU_MODULES
from .ir import PerStep
from .layout import _ident


# a philox block's values per dtype: noise of fewer columns takes the narrow fills (cpu/noise_narrow.py)
NARROW_LANES = {"float32": 4, "float64": 2}

# constraint -> the array test of a parameter's values (kernels/families/checks.py), and the error's
# words after "<law> '<node>': <param> '<its node>'"
CONSTRAINT_TESTS = {k: template(t) for k, t in {
    "unit": KERNELS.core.all_unit.on("v"), "unit_positive": KERNELS.core.all_unit_positive.on("v"),
    "count": KERNELS.core.all_counts.on("v"), "weights": KERNELS.core.all_weight_groups.on("v", "K"),
    "nonnegative": KERNELS.core.all_nonnegative.on("v")}.items()}


CONSTRAINT_ERRORS = {
    "unit": "has values outside [0, 1] or NaN; give probabilities, e.g. {p}=ppl.sigmoid(...), or logits instead",
    "unit_positive": ("has values outside (0, 1] or NaN (a success probability of 0 never ends the count); give "
                      "probabilities, e.g. {p}=ppl.sigmoid(...), or logits instead"),
    "count": ("has values that are not non-negative integers (negative, fractional, inf or NaN); give counts, e.g. "
              "a number, an input of counts or another count node"),
    "weights": ("has a group of {K} classes with a negative, inf or NaN value or a sum of 0; give non-negative "
                "weights with a positive sum per group (they are normalised), e.g. {p}=ppl.exp(...), or logits "
                "instead"),
    "nonnegative": "has values < 0, inf or NaN; make it non-negative, e.g. {p}=ppl.softplus(...) or ppl.relu(...)",
}


class ContextHelpers:
    """What both lowerings' walks and estimator contexts call: emitting, buffers, parameters,
    state, the noise a draw used, a node's law and its parameters' checks."""

    def _init_context(self):
        self.noise_of: dict = {}    # stochastic node -> its base noise buffer(s) (record_noise)
        self._names: dict = {}      # a state value's view name -> its offset in state (state_value)

    def record_noise(self, node: Node, noise):
        """Record the base noise a node's draw used (a buffer, or a tuple of buffers), for the
        node's own backward and for estimators above it (REBAR relaxes it)."""
        self.noise_of[node] = noise

    def recorded_noise(self, node: Node):
        """The base noise record_noise recorded for the node's draw (None: none yet)."""
        return self.noise_of.get(node)

    def statement(self, line: str):
        """The typed statement of an emitted line (ir.Stmt: its owner, kernel call and names)."""
        return self.builder.statement(line)

    def emit(self, line: str):
        self.builder.emit(line)

    def emit_if(self, test, then=(), orelse=None, negate: bool = False):
        """`if <test>:` over the lines of `then`, `else:` over `orelse` (None: none), as one
        statement (ir.If)."""
        self.builder.emit_if(test, then, orelse, negate)

    def emit_check(self, test, message: str):
        """The check `if not <test>: raise ModelError_("<message>")`: `test` a kernel call
        (calls.Call) or the row code's (calls.Code); the message names the node, the problem and
        the fix."""
        self.builder.emit_check(test, message)

    def emit_for(self, var: str, count, body):
        """`for <var> in range(<count>):` over the lines of `body`, as one statement (ir.For)."""
        self.builder.emit_for(var, count, body)

    def emit_at_start(self, line: str):
        """A line run once at the top of the step, before the forward pass."""
        self.builder.emit_at_start(line)

    def buf2(self, name: str, width, rows="R") -> Buf:
        """A (rows, width) workspace buffer (in a loop's body: every step's rows, loops.py); the
        name its code uses, typed (calls.Buf: its rows in a step, its width)."""
        name = _ident(name)
        head, all_rows = self.per_step_rows(name, rows)
        self.builder.L.ws2.append((name, all_rows, int(width)))
        self.builder.bind(head, "ws2", len(self.builder.L.ws2) - 1)
        return self.builder.declare(Buf(name, rows, int(width)))

    def buf1(self, name: str, rows="R") -> Buf:
        """A workspace buffer of one value per row (as buf2)."""
        name = _ident(name)
        head, all_rows = self.per_step_rows(name, rows)
        self.builder.L.ws1.append((name, all_rows))
        self.builder.bind(head, "ws1", len(self.builder.L.ws1) - 1)
        return self.builder.declare(Buf(name, rows))

    def state_slot(self, name: str, size: int, init=0.0):
        """The offset in `state` of `size` numbers (in a loop's body: one set per step index, the
        offset of the step's, as code)."""
        steps = self.open_steps()
        off = self.builder.L.n_state
        self.builder.L.state.append((name, off, size * steps, np.full(size * steps, init)))
        self.builder.L.n_state += size * steps
        return self.per_step_offset(off, size)

    def state_value(self, name: str, init: float) -> str:
        """The view of a one-number state value; in a loop's body a per-step buffer of the loop
        (`step_state`), each step's number its own."""
        ident = "st_" + _ident(name)
        if ident not in self._names:
            off = self.state_slot(name, 1, init)
            if isinstance(off, PerStep):   # in a loop's body (of any length): the step's number
                self.step_state(ident, off.off, self.open_steps())
            else:
                self.builder.bind(ident, "view", expr=f"rows.flat_view(state, {off}, (1,))")
            self._names[ident] = off
        return ident

    def state_offset(self, name: str, init: float) -> int:
        """The offset in `state` of a one-number state value (its view: state_value)."""
        return self._names[self.state_value(name, init)]

    def param(self, name: str, shape: tuple, init) -> tuple:
        """The views (p, gp) of the parameter `name` in theta and grad, allocated at its first
        use; nodes sharing an op's parameters (attribute params_of) get the same views."""
        for q, off, shp, _ in self.builder.L.params:
            if q == name:
                if shp != tuple(shape):
                    raise ValueError(f"parameter {name!r} is used with shapes {shp} and {tuple(shape)}")
                return "p_" + _ident(name), "gp_" + _ident(name)
        size = int(np.prod(shape))
        off = self.builder.L.n_theta
        init = np.broadcast_to(np.asarray(init, dtype=np.float64), shape).copy()
        self.builder.L.params.append((name, off, tuple(shape), init))
        self.builder.L.n_theta += size
        p, gp = "p_" + _ident(name), "gp_" + _ident(name)
        shp = ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "")
        self.builder.bind(p, "view", expr=f"rows.flat_view(theta, {off}, ({shp}))")
        self.builder.bind(gp, "view", expr=f"rows.flat_view(grad, {off}, ({shp}))")
        return p, gp

    def dist(self, node: Node):
        return DISTRIBUTIONS[node.kind]

    def dist_of(self, kind: str):
        return DISTRIBUTIONS[kind]

    def branch_hint(self, node: Node) -> str:
        """Where a node whose estimator has rows of other values (mvd's branches, DisARM's and
        ARMS's partners, stochastic derivatives' alternative) lies above `node` or in its loop's
        body, the values a check refuses may come from those rows, not the model's draws: which
        node and estimator, and the fix."""
        info, anc = self.an.loop_of(node), G.ancestors(self.an.graph, node.name)
        for x, (ch, _) in self.choices.items():
            shape = self.plan.shapes.get(x)
            if shape is not None and shape.branches and (
                    x.name in anc or (info is not None and x in info.body)):
                return (f" (or a row of estimator '{ch.estimator}' of '{x.name}', which evaluates the graph with "
                        f"another value of '{x.name}' than its draw and may reach values the model never does: "
                        f"bound the expression, e.g. ppl.clip or ppl.maximum, or give '{x.name}' another estimator)")
        return ""

    def emit_param_checks(self, node: Node, is_positive, is_finite=None, law=None, params=None):
        """Raise in the step, naming the node, the parameter and the fix, when a parameter of the
        node's distribution is NaN or +-inf, or one that must be > 0 (a Normal's scale) is not,
        or one of the law's `constraints` (probabilities within [0, 1], counts, ...: the test
        `constraint_test` gives, which NaN and inf fail too, so such a parameter takes no test of
        finiteness) does not hold; is_positive(p) / is_finite(p) give the tests' source. Without
        this a NaN would vanish into a hard sample (noise + NaN > 0 is False) or a select; every
        estimator reads the values checked here, so one check per node covers all."""
        d = law if law is not None else self.dist(node)
        for pname, p in zip(d.params, node.inputs if params is None else params):
            shown = _shown(p)
            if pname in d.positive:
                self.emit_check(is_positive(p),
                                f"{d.name} '{node.name}': {pname} {shown} has values <= 0 or NaN; make it "
                                f"positive, e.g. {pname}=ppl.softplus(...) or ppl.exp(...)")
            if pname in d.constraints:
                kind = d.constraints[pname]
                self.emit_check(self.constraint_test(kind, p, node.attrs.get('K')),
                                f"{d.name} '{node.name}': {pname} {shown} "
                                f"{CONSTRAINT_ERRORS[kind].format(p=pname, K=node.attrs.get('K'))}"
                                f"{self.branch_hint(node)}")
            if is_finite is not None and pname not in d.constraints:   # every constraint's test fails on NaN, inf
                self.emit_check(is_finite(p),
                                f"{d.name} '{node.name}': {pname} {shown} has NaN or inf values; check the "
                                f"parameters (prog.params) and the layers feeding '{p.name}' (overflow, a "
                                f"learning rate too high)")


def _shown(p) -> str:
    """A parameter node in a message: its name, and the user's expression for one ppl named."""
    e = expression(p)
    return f"'{p.name}'" if e == p.name else f"'{p.name}' (= {e})"


class ArrayHelpers:
    """What the array lowering's estimator context (estimators.context.EstimatorContext) calls
    beyond the shared helpers: a step's shared buffers and lines, a node's parameter buffers, a
    user's kernels, the sigma a cost keeps for its VJP, noise buffers and the baselines' inputs."""

    def _init_array_helpers(self):
        self.shared_buffers: dict = {}   # the estimators' buffers of the step (ctx.buffer(shared=True))
        self.shared_lines: set = set()   # the lines they emitted once (ctx.emit(once=True))
        self.log_prob_weights: dict = {}   # node -> cost weights its estimator's VJP absorbs
        self.kept: dict = {}               # cost head -> buffer its forward keeps for its VJP
        self.kept_rep: set = set()         # keys of `kept` whose buffer has one row per data row (_rep kernels)

    def shared_buffer(self, name: str, width=None) -> str:
        """One workspace of the step for every estimator that asks for it (made on first use)."""
        if name not in self.shared_buffers:
            self.shared_buffers[name] = self.buf1(name) if width is None else self.buf2(name, width)
        return self.shared_buffers[name]

    def first_time(self, line) -> bool:
        """Whether no estimator emitted this line with once=True before (and mark it emitted)."""
        if line in self.shared_lines:
            return False
        self.shared_lines.add(line)
        return True

    def param_values(self, node: Node) -> list:
        return [self.v(p) for p in node.inputs]

    def param_grads(self, node: Node) -> list:
        return [self.g_or_empty(p) for p in node.inputs]

    def kernel_ref(self, kernel, node: Node) -> KernelRef:
        """How the step calls `kernel`: a kernel of the modules the step binds (a KernelRef, or its
        @njit function), or a user's estimator's kernel (an @njit function or
        estimators.context.Kernel), bound as a global of the step (a KernelRef without a module)
        and recorded (`user_kernels`) for the target checks."""
        if isinstance(kernel, KernelRef):
            return kernel
        name = getattr(kernel, "__name__", None)
        if not isinstance(kernel, Kernel):
            for alias, mod in CPU_MODULES.items():
                if name and getattr(importlib.import_module(f"ppl.kernels.{mod}"), name, None) is kernel:
                    return KernelRef(alias, name)
            if not hasattr(kernel, "py_func"):
                raise ModelError(f"node '{node.name}': a kernel must be an @njit function or a ppl.Kernel, "
                                 f"got {kernel!r}")
            kernel = Kernel(kernel)
        for g, k in self.builder.user_kernels.items():
            if k[0] == kernel:
                return KernelRef(None, g)
        g = f"uk{len(self.builder.user_kernels)}_{kernel.name}"
        self.builder.user_kernels[g] = (kernel, node)
        self.builder.globals[g] = kernel.cpu
        return KernelRef(None, g)

    def keep_sigma(self, key, name: str, logits: Node) -> str:
        """The buffer a cost's forward keeps sigma(logits) in for its VJP (`key`: the cost head, or
        ("log_prob", node)), made on first use: on the rows its `_row_constant` kernel writes."""
        if key not in self.kept:
            self.kept[key] = self.buf2(name, logits.width, rows=self.kept_rows(logits))
            if self.reads_rep(logits):
                self.kept_rep.add(key)
        return self.kept[key]

    def kept_sigma(self, key) -> tuple:
        """(the buffer keep_sigma made for `key`, or None; whether it has one row per data row)."""
        return self.kept.get(key), key in self.kept_rep

    def absorb_log_prob_weight(self, node: Node, cw: str):
        """Cost weights a log_prob(node) cost adds to its estimator's own VJP of log p (one call)."""
        self.log_prob_weights.setdefault(node, []).append(cw)

    def log_prob_weights_of(self, node: Node) -> list:
        return self.log_prob_weights.get(node, [])

    def log_prob_kept(self, node: Node) -> tuple:
        """(the buffer a log_prob(node) cost's forward kept for its VJP, or None; whether it has
        one row per data row, the `_rep` kernels')."""
        return self.kept_sigma(("log_prob", node))

    def log_prob_vjp(self, node: Node, weights: str, gx: str, params: bool = True):
        """Row-weighted VJP of log p(node | params) into the params' gradients (params=False: not
        into them) and gx, from the sigma(logits) a log_prob cost kept in the forward pass when
        there is one."""
        d = self.dist(node)
        keep, per_data_row = self.log_prob_kept(node)
        gp = self.param_grads(node) if params else [NO_GRAD] * len(node.inputs)
        if keep is not None and per_data_row:
            (a,) = node.inputs
            self.emit(call(d.kernels['log_prob_kept_bwd'].variant("_rep"), *self.per_data_row(a), self.v(node), keep,
                           weights, *gp, gx))
        elif keep is not None:
            self.emit(call(d.kernels['log_prob_kept_bwd'], *self.param_values(node), self.v(node), keep, weights,
                           *gp, gx))
        else:
            self.call(d.kernels["log_prob_bwd"], [*self.param_values(node), self.v(node)], [weights, *gp, gx], node)

    def noise(self, node: Node, kind: str, k: int = 0, width=None) -> str:
        """Base noise of a node, one draw per drawn row (i, k): every enumeration / antithetic
        configuration of a drawn row shares it (common random numbers; ARM's pairs need it).
        `width` columns (default the node's: Gumbel-Rao takes several draws per unit); rows
        narrower than a philox block take the narrow fills (the same values)."""
        width = node.width if width is None else width
        name = self.buf2(f"n{k}_{node.name}", width)
        self.builder.L.noise.append(len(self.builder.L.ws2) - 1)
        stream = self.stream(node, k)
        fill = KernelRef("noise", f"fill_{kind}" + ("_narrow" if width < NARROW_LANES[self.dtype] else ""))
        # a global node: data row 0's K draws (row0 0: every shard's), on every data row
        if node in self.an.global_nodes:
            drawn = name if self.plan.S == 1 else Head(name, self.plan.S)
            self.emit(call(fill, prefix(name, self.samples), "seed", stream, "t", 0))
            self.emit(call(KERNELS.rows.gather_rows, drawn, 0, self.row_map(tuple(range(self.samples))), drawn))
            if self.plan.S > 1:
                self.emit(call(KERNELS.rows.expand_rows, name, self.plan.S))
        # a node of a plate of groups: its group's rows (the group's number), every shard's
        elif node in self.an.group_of:
            drawn = name if self.plan.S == 1 else Head(name, self.plan.S)
            self.emit(call(KernelRef("noise", f"fill_{kind}_at"), drawn, "seed", stream, "t",
                           self.group_index(self.an.group_of[node]), self.samples))
            if self.plan.S > 1:
                self.emit(call(KERNELS.rows.expand_rows, name, self.plan.S))
        elif self.plan.S == 1:
            self.emit(call(fill, name, "seed", stream, "t", "row0"))
        else:
            self.emit(call(fill, Head(name, self.plan.S), "seed", stream, "t", "row0"))
            self.emit(call(KERNELS.rows.expand_rows, name, self.plan.S))
        return name

    def group_index(self, plate: str) -> str:
        """The index input of a plate of groups on one row per data row (each row's group)."""
        return self.values_on(self.model.nodes[self.model.groups[plate].index], self.plan.D1)
