"""Stochastic derivatives weighed along the model's parameters (estimators/stochastic_derivative.py,
kernels/families/stochastic_derivative.py): forward-mode tangents of the jumping laws' parameters.

A jump of a unit whose law parameter q has the weight w per unit of q adds w (dq / dtheta_d)
(f(y) - f(x)) to the derivative along the parameter entry theta_d. Weighed per unit of q (the
reverse-mode form), the pruning keeps jumps whose q does not move with theta as often as those
that do; weighed by w sum_d |dq / dtheta_d| (Arya et al. weigh by the tangent along their one
direction), it keeps them in proportion to what they add, and the kept jump's
W_total w (dq / dtheta_d) / weight (f(y) - f(x)) is each direction's estimate, unbiased for every
entry. The estimate is then forward: added to the parameters' gradient at the start of the
backward pass, so the layers between the parameters and q need no reverse pass for it.

With a few directions (at most MAX_PATHS) each has an alternative path of its own, a reservoir
weighing the jumps by w |dq / dtheta_d| alone: a jump that moves only another direction is never
kept for this one, and each direction's estimate has the variance of a one-parameter model's,
for one more row per direction (grads.alternative_paths; the kernels' path a weighs the
directions d with d % paths == a).

In a `ppl.scan`, where the alternative path has met the drawn one again at the end of a step
(every carry equal), its contribution is final: banked, and the reservoir restarts empty (the
pruned triples drop a perturbation that has become zero the same way).

Learned importance (option importance="learned", the default): the pruning keeps one jump among
all of a sample's, and that choice is most of the estimate's variance where the jumps' effects
D = f(y) - f(x) differ by orders of magnitude (an epidemic's early infections against its late
ones). Each jumping node has a cell per step; a jump is also weighed by its cell's importance h,
and the kept jump's estimate divides by it (S = w tan / m, m including h), so the estimate stays
unbiased for any h fixed before the step's draws. h is learned along the run from the kept
jumps' D (the root mean square per cell, kernels' sd_importance) and updated at the end of each
step. Each path also sums its jumps' weights under the weighing it does not use (1, or the
candidate h), so that every step estimates its estimate's second moment under both; a path
weighs by h only where that measured lower (where D's scale hardly moves from step to step, a
noisy h costs more than it gains, and weight 1 stays).

Score control variates (option control="score", the default): the derivative along a direction of
the log-likelihood of a node's draws at a step, its score s (the law's d log p(x) / d q times q's
tangent), has mean zero, so E + sum c s stays unbiased for coefficients fixed before the step's
draws. Scores of different steps are uncorrelated, so each node and step has its own coefficient,
-Cov(E, s) / Var(s) learned from earlier steps' drawn rows and shrunk where its noise would cost more
than it gains (kernels' sd_control). The jumps carry
where the draw's outcome matters; the score carries how likely the path was, which the pruned
estimate leaves out.

`plan_tangents` decides it (pass "requires grad"): every jumping node's parameter must depend on
at most MAX_DIRECTIONS parameter entries (`ppl.param` vectors) through ops with a forward rule
here (elementwise arithmetic, activations, concatenations, slices, row sums) within a step, a
parameter reaching no carry; a stochastic node on the way cuts the tangent (its draw does not
move with theta) unless its estimator passes a value cotangent (then: the per-unit form). The
meeting test needs one loop holding every jumping node and no per-step outputs.
"""
from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from ..calls import KERNELS, call, render
from ..errors import ModelError
from ..estimators.protocol import NO_GRAD, NO_GRAD_1D, REGISTRY, joined_by
from ..kernels.families.sd_control import CELL
from ..ops import OPS
from .ir import per_step

# the learned importance: its sums' decay a step, its floor (x a path's largest), its prior's weight (jumps)
DECAY, FLOOR, PRIOR = 0.99, 0.01, 4.0
MAX_DIRECTIONS = 16   # parameter entries a tangent carries (a simulation's calibration); more: per unit
MAX_PATHS = 4   # directions given an alternative path each (their rows: 1 + paths); more: one path for all
_FORWARD = {"add", "mul", "div", "pow", "minimum", "maximum", "scale_shift", "rowsum", "concat", "slice"}


@dataclass(frozen=True)
class TangentPlan:
    """`directions`: (param node, entry) per direction; `reach[node]`: the directions whose tangent
    of the node is not zero (sorted), for the nodes between the parameters and the jumping laws'
    parameters; `merge`: the name of the loop whose steps end with the meeting test, or None."""

    directions: tuple
    reach: MappingProxyType
    merge: str | None


def jumping_nodes(an, choices) -> list:
    """The nodes whose estimator draws the alternative row (stochastic derivatives), in order."""
    return joined_by(an.order, choices, "alternative")


def learns_importance(an, choices) -> bool:
    """Whether the jumps weighed along the parameters are weighed by a learned importance too
    (the option importance of every jumping node "learned")."""
    nodes = jumping_nodes(an, choices)
    return bool(nodes) and all(choices[n][0].options.get("importance", "learned") == "learned" for n in nodes)


def scored_nodes(an, choices) -> list:
    """The jumping nodes whose estimates along the parameters get their scores as control variates
    (the option control "score", the default)."""
    return [n for n in jumping_nodes(an, choices) if choices[n][0].options.get("control", "score") == "score"]


def plan_tangents(model, an, choices, param_index) -> TangentPlan | None:
    """The tangent plan of a graph whose stochastic-derivative nodes may weigh their jumps along
    the parameters, or None (per unit). `param_index(node)`: the input of a jumping node its
    jumps are weighed in."""
    nodes = jumping_nodes(an, choices)
    if not nodes:
        return None
    above, stack = set(), [n.inputs[param_index(n)] for n in nodes]
    while stack:   # the deterministic ancestors of the jumping parameters
        n = stack.pop()
        if n in above:
            continue
        above.add(n)
        if n.is_stochastic:
            if REGISTRY[choices[n][0].estimator].passes_value_grad:
                return None
            continue
        if n.kind == "carry":
            info = an.loop_of(n)
            stack.extend([info.loop.carry_out[n.attrs["index"]], *n.inputs])
            continue
        stack.extend(n.inputs)
    reach = {}
    for n in an.order:   # topological: a node's directions from its inputs'
        if n not in above or n.is_stochastic or n.kind == "carry":
            continue
        if n.kind == "param":
            reach[n] = [(n, e) for e in range(n.width)]
        elif n.kind in OPS and OPS[n.kind].params:
            return None   # a layer's own parameters (a network's: per unit)
        elif any(i in reach for i in n.inputs):
            if not (n.kind in _FORWARD or (n.kind in OPS and OPS[n.kind].unary)):
                return None   # no forward rule here
            reach[n] = sorted({d for i in n.inputs for d in reach.get(i, ())}, key=lambda d: (d[0].name, d[1]))
    for c in above:   # a parameter's function carried across steps: per unit
        if c.kind == "carry" and (c.inputs[0] in reach or an.loop_of(c).loop.carry_out[c.attrs["index"]] in reach):
            return None
    directions = tuple(sorted({d for ds in reach.values() for d in ds}, key=lambda d: (d[0].name, d[1])))
    if not directions or len(directions) > MAX_DIRECTIONS:
        return None
    index = {d: k for k, d in enumerate(directions)}
    loops = {an.loop_of(n) for n in nodes}
    merge = None
    if len(loops) == 1 and None not in loops:
        (info,) = loops
        if not info.loop.ys:
            merge = info.loop.name
    return TangentPlan(directions, MappingProxyType({n: tuple(index[d] for d in ds) for n, ds in reach.items()}),
                       merge)


def describe(an, choices, plan, paths: int, cpu: bool) -> str:
    """explain()'s line on the stochastic derivatives' weights (empty without such a node): along
    which parameter entries, on how many paths, with or without the learned importance; or per
    unit, and why."""
    nodes = jumping_nodes(an, choices)
    if not nodes:
        return ""
    names = ", ".join(f"'{n.name}'" for n in nodes)
    if plan is None:
        why = ("the CUDA target weighs per unit" if not cpu else
               f"more than {MAX_DIRECTIONS} parameter entries, a layer's own parameters, a parameter carried "
               f"across steps or a pathwise node move their laws' parameters")
        return (f"stochastic derivatives ({names}): each jump weighed per unit of its law's parameter, the "
                f"estimate the reverse-mode gradient of every parameter ({why})")
    entries = ", ".join(f"{p.name}[{e}]" for p, e in plan.directions)
    way = (f"an alternative path per entry ({paths} + 1 rows)" if paths > 1 else
           "one alternative path for every entry, weighed by the tangents' norm" if len(plan.directions) > 1 else
           "one alternative path")
    imp = ("; each jump also by an importance of its node and step learned along the run, on a path whose "
           "measured second moment it lowers" if learns_importance(an, choices) else "")
    scored = scored_nodes(an, choices)
    cv = (f"; the draws' scores along them ({', '.join(repr(n.name) for n in scored)}) added as control variates, "
          f"a coefficient per node and step learned along the run" if scored else "")
    return (f"stochastic derivatives ({names}): each jump weighed by its derivative along {entries}, {way}, "
            f"the estimate added forward{imp}{cv}")


class Tangents:
    """The array lowering's part for the tangents (made by the forward walk after each node)."""

    def _init_tangents(self):
        self.tan: dict = {}        # node -> {direction: its tangent buffer (R, width)}
        self._jumps = None         # (S, acc): the kept jump's direction weights, the banked estimates
        self._packed: dict = {}    # jumping node -> its parameter's tangents side by side
        self._importance = None    # (state offset, cells, learn, each jumping node's first cell's offset)
        self._scores = None        # (state offset, cells, {node: [its scores' buffer, steps, first cell's offset]})

    def tangent_forward(self, n):
        """The tangents of node n's value along each direction that reaches it."""
        plan = self.needs.tangent
        if plan is None or n not in plan.reach:
            return
        dirs = plan.reach[n]
        with self.outside():   # one step's buffers
            out = {d: self.buf2(f"t{d}_{n.name}", n.width) for d in dirs}
        self.tan[n] = out
        if n.kind == "param":
            for d in dirs:
                self.emit(call(KERNELS.core.tangent_seed, out[d], plan.directions[d][1]))
            return
        op, ins = OPS[n.kind], [self.v(i) for i in n.inputs]
        vals = dict(self.op_values(n, ins), out=self.v(n))
        for d in dirs:
            ts = [self.tan.get(i, {}).get(d) for i in n.inputs]
            t = out[d]
            if n.kind == "add":
                self.emit(call(KERNELS.core.add_fwd, *ts, t) if None not in ts
                          else call(KERNELS.core.copy_fwd, next(x for x in ts if x is not None), t))
            elif n.kind in ("rowsum", "slice"):
                self.emit(render(op.fwd, **dict(vals, x0=ts[0], out=t)))
            elif n.kind == "concat":
                self.emit(call(KERNELS.rows.zero2, t))
                off = 0
                for i, x in zip(n.inputs, ts):
                    if x is not None:
                        self.emit(render(op.fwd_each, xj=x, off=off, out=t))
                    off += i.width
            else:   # the VJP's terms of each input, seeded by its tangent, add up to the tangent
                self.emit(call(KERNELS.rows.zero2, t))
                for j, x in enumerate(ts):
                    if x is not None:
                        gs = {f"g{k}": (t if k == j else NO_GRAD) for k in range(len(ts))}
                        self.emit(render(op.bwd, **dict(vals, gout=x, **gs)))

    def jump_buffers(self, node, index: int):
        """(the tangents of the jumping node's parameter `index` side by side, S): the alternative
        row's `along` where the plan weighs the jumps along the parameters."""
        D = len(self.needs.tangent.directions)
        if self._jumps is None:
            with self.outside():
                self._jumps = (self.buf2("sd_S_", self.plan.paths * D), self.buf2("sd_acc_", D))
            for b in self._jumps:
                self.emit_at_start(call(KERNELS.rows.zero2, b))
        p = node.inputs[index]
        if D == 1:   # one direction: its tangent is the packed one (or zeros: no jump moves with theta)
            t = self.tan.get(p, {}).get(0)
            if t is not None:
                return t, self._jumps[0]
        if node not in self._packed:
            with self.outside():
                self._packed[node] = self.buf2(f"tp_{node.name}", p.width * D)
            self.emit_at_start(call(KERNELS.rows.zero2, self._packed[node]))
        packed = self._packed[node]
        for d, t in self.tan.get(p, {}).items():
            self.emit(call(KERNELS.rows.put_cols, t, d * p.width, packed))
        return packed, self._jumps[0]

    def importance_cell(self, node):
        """(state, the offset in it of the node's cell at this step, learn): the learned importance
        its jumps are weighed by. Every jumping node has a cell per step (its loop's length, or 1)
        of 6 x paths numbers (kernels' sd_importance); learn[r, a]: the cell of path a's kept jump on
        a drawn row, learn[r, paths + a]: its jumps' weights summed under the weighing not in use."""
        A = self.plan.paths
        if self._importance is None:
            nodes = jumping_nodes(self.an, self.choices)
            steps = [self.an.loop_of(n).loop.length if self.an.loop_of(n) is not None else 1 for n in nodes]
            with self.outside():
                base = self.state_slot("stochastic_derivative.importance", 6 * A * sum(steps))
                learn = self.buf2("sd_learn_", 2 * A)
            if self.dtype == "float32" and base + 6 * A * sum(steps) > 2 ** 24:   # cells kept as float32 numbers
                raise ModelError(f"stochastic derivatives of {', '.join(repr(n.name) for n in nodes)}: the learned "
                                 f"importance's {6 * A * sum(steps)} numbers lie beyond float32's exact integers "
                                 f"in the step's state; compile with dtype=np.float64, or give the nodes the "
                                 f"option importance='none'")
            self.emit_at_start(call(KERNELS.rows.zero2, learn))
            starts, at = {}, base
            for n, k in zip(nodes, steps):
                starts[n], at = at, at + 6 * A * k
            self._importance = (base, sum(steps), learn, starts)
        _, _, learn, starts = self._importance
        off = starts[node]
        return "state", (off if self.an.loop_of(node) is None else per_step(6 * A, off)), learn

    def score_buffer(self, node):
        """The buffer (R, directions) of the node's draws' scores along the parameters (a loop's
        body's: every step's, read at the backward's start), or NO_GRAD where its option control is
        "none". Every scored node has a cell per step of CELL x directions numbers in the step's state
        (kernels' sd_control: the coefficients in use, the sums they are learned from)."""
        nodes = scored_nodes(self.an, self.choices)
        if node not in nodes:
            return NO_GRAD
        ND = len(self.needs.tangent.directions)
        if self._scores is None:
            steps = [self.an.loop_of(n).loop.length if self.an.loop_of(n) is not None else 1 for n in nodes]
            with self.outside():
                base = self.state_slot("stochastic_derivative.score_cv", CELL * ND * sum(steps))
            cells, at = {}, base
            for n, k in zip(nodes, steps):
                cells[n], at = [None, k, at], at + CELL * ND * k
            self._scores = (base, sum(steps), cells)
        cell = self._scores[2][node]
        if cell[0] is None:
            cell[0] = self.buf2(f"sc_{node.name}", ND)
        return cell[0]

    def _score_control(self, alt, stride, span):
        """The scored nodes' cells learn against the drawn rows' estimates without control variates
        (sd_estimate, sd_score_learn), then each node's control variates join the banked estimates (sd_score_apply,
        by the coefficients in use) and the coefficients are learned for the next step (sd_cv_update)."""
        base, cells, nodes = self._scores
        S, acc = self._jumps
        stored = {node: (sc if self.an.loop_of(node) is None else self.storage_of(sc), steps, off)
                  for node, (sc, steps, off) in nodes.items() if sc is not None}
        with self.outside():
            E = self.buf2("sd_E_", len(self.needs.tangent.directions))
        self.emit(call(KERNELS.core.sd_estimate, alt.W, alt.D, S, acc, E, stride, span))
        for sc, steps, off in stored.values():
            self.emit(call(KERNELS.core.sd_score_learn, E, sc, steps, "state", off))
        for sc, steps, off in stored.values():
            self.emit(call(KERNELS.core.sd_score_apply, sc, steps, "state", off, acc, stride, span))
        self.emit(call(KERNELS.core.sd_cv_update, "state", base, cells, len(self.needs.tangent.directions), DECAY))

    def _learned(self):
        """(learn, state) for sd_bank: empty without the learned importance."""
        return (self._importance[2], "state") if self._importance is not None else (NO_GRAD, NO_GRAD_1D)

    def end_of_step(self, info):
        """At a forward step's end, in the loop with the meeting test: where every carry of the
        alternative row equals the drawn row's, bank the kept jump's estimate (sd_bank)."""
        plan = self.needs.tangent
        if plan is None or plan.merge != info.loop.name or self._jumps is None:
            return
        alt = self.alternative()
        stride, off, span = alt.slot
        with self.outside():
            flag = self.buf2("sd_met_", alt.paths)
        self.emit(call(KERNELS.rows.zero2, flag))
        for o in info.loop.carry_out:
            self.emit(call(KERNELS.core.alt_differs, self.v(o), flag, stride, off, span))
        self.emit(call(KERNELS.core.sd_bank, flag, stride, span, alt.W, alt.D, *self._jumps, *self._learned()))

    def tangent_grads(self):
        """The jumps' estimates added to the parameters' gradients (the backward's start)."""
        plan = self.needs.tangent
        if plan is None or self._jumps is None:
            return
        alt = self.alternative()
        stride, _, span = alt.slot
        if self._importance is not None:   # the step's kept jumps learned from, for the next step
            base, cells, learn, _ = self._importance
            self.emit(call(KERNELS.core.sd_learn_final, alt.W, alt.D, learn, "state", stride, span))
            self.emit(call(KERNELS.core.sd_importance, "state", base, cells, alt.paths, DECAY, FLOOR, PRIOR))
        if self._scores is not None:
            self._score_control(alt, stride, span)
        for d, (p, e) in enumerate(plan.directions):
            gp = self.op_params[p][0][1]
            self.emit(call(KERNELS.core.sd_tangent_grad, alt.W, alt.D, *self._jumps, self.rw, stride, span, d, e,
                           gp))
