"""The alternative row of stochastic derivatives (estimators/stochastic_derivative.py): one row
of the shared digit, whatever the nodes, widths and loop steps, holding the path that took the
one jump the pruning keeps (kernels/families/stochastic_derivative.py).

With a few parameter directions, `paths` alternative rows, one per direction (lowering/
tangents.py); every buffer and copy below is then one per path. The lowering's share:
- the per-drawn-row buffers W (the jumps' weights' running sum), the count of kept jumps and D
  (the alternative's costs minus the draw's), one column per path, zeroed at the start of the
  step (`alternative`);
- D's terms: after each cost's forward, its alternative row minus its drawn row (`cost_diff`);
- when a node keeps a jump on a drawn row, the alternative row must be the draw with that jump
  and nothing else: the values computed before the node that a later node reads (`live`) are
  copied from the drawn row (`reset_alternative`); in a loop's body, also the earlier steps of
  the loop's outputs (read after the loop). Costs need no copy: D restarts at the jump.
Nodes the alternative row can change (below a stochastic-derivative node, or in a loop's body
that has one) are computed on every row (lowering.rows.plan_rows), so the copy is a row's.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..calls import KERNELS, call
from ..analysis import graph as G
from .ir import STEP_INDEX
from .tangents import jumping_nodes, learns_importance


@dataclass(frozen=True)
class AlternativeRow:
    W: str          # (R, paths): the running sum of the jumps' weights (on the drawn rows)
    count: str      # (R, paths): the number of jumps kept so far (the kept one's tag)
    D: str          # (R, paths): the alternative's costs minus the draw's, since the kept jump
    slot: tuple     # (stride, off, span): the first path's place in the shared digit (the others follow)
    along: object = None   # (node, input index) -> (its parameter's tangents, S): the jumps weighed along the
                           # parameters (lowering/tangents.py), or None: per unit of the law's parameter
    paths: int = 1  # the alternative rows (RowPlan.paths)
    directions: int = 0   # the parameter directions the jumps are weighed along (0: per unit)
    learned: object = None   # node -> (state, its cell's offset, learn): the jumps' learned importance
                             # (lowering/tangents.py), or None
    scores: object = None    # node -> its draws' scores' buffer (or NO_GRAD): the control variate
                             # (lowering/tangents.py), or None


def affected_by_alternative(an, choices) -> set:
    """The names of the nodes whose values the alternative row can change: those below a node
    drawing it, and every node of a loop body holding one (the carry carries it to the later
    steps), with what the loop's outputs lead to."""
    nodes = jumping_nodes(an, choices)
    out = set()
    for n in nodes:
        out.add(n.name)
        out |= G.descendants(an.graph, n.name)
    for info in an.loops:
        if any(n in info.body for n in nodes):
            out |= {m.name for m in info.loop.body}
            for o in (*info.loop.last, *info.loop.stacked):
                out |= {o.name} | G.descendants(an.graph, o.name)
    return out


class Alternative:
    def _init_alternative(self):
        self._alternative = None    # the alternative row's buffers, made once

    def alternative(self) -> AlternativeRow | None:
        """The alternative row's buffers and place (made once, zeroed at the step's start), or None
        when no node's estimator draws one."""
        nodes = jumping_nodes(self.an, self.choices)
        if not nodes:
            return None
        if self._alternative is None:
            paths = self.plan.paths
            with self.outside():
                W, count, D = (self.buf2(f"alt_{k}_", paths) for k in ("W", "count", "D"))
            for b in (W, count, D):
                self.emit_at_start(call(KERNELS.rows.zero2, b))
            stride, span = self.plan.row_digit[nodes[0]]
            off = self.plan.cv_slot[nodes[0]][0] if nodes[0] in self.plan.cv_slot else 1
            along = self.jump_buffers if self.needs.tangent is not None else None
            dirs = len(self.needs.tangent.directions) if self.needs.tangent is not None else 0
            learned = self.importance_cell if along is not None and learns_importance(self.an, self.choices) else None
            scores = self.score_buffer if along is not None else None
            self._alternative = AlternativeRow(W, count, D, (stride, off, span), along, paths, dirs, learned, scores)
        return self._alternative

    def cost_diff(self, head, full_rows: str):
        """D += the cost's alternative row minus its drawn row."""
        alt = self.alternative()
        if alt is not None:
            stride, off, span = alt.slot
            self.emit(call(KERNELS.core.alt_cost_diff, full_rows, stride, off, span, alt.D))

    def live(self, node) -> list:
        """The values computed before `node` that a node after it reads, which the alternative
        row can change: (node, whether every earlier step of a loop's output must be copied too)."""
        order = self.an.order
        pos = {m: i for i, m in enumerate(order)}
        affected = affected_by_alternative(self.an, self.choices)
        info = self.an.loop_of(node)
        out = []
        for m in order:
            if m.name not in affected or m.kind == "input" or m.attrs.get("is_head"):
                continue
            if m is node:   # its draw writes its alternative row; a loop's output: its earlier steps
                if info is not None and m in info.loop.ys:
                    out.append((m, True, False))
                continue
            readers = [self.model.nodes[k] for k in self.an.graph.successors(m.name)]
            earlier = pos[m] < pos[node]
            if info is not None and m in info.body:
                read_later = earlier and (any(pos[r] > pos[node] and r in info.body for r in readers)
                                          or m in info.loop.carry_out)
                steps = m in info.loop.ys   # read after the loop, every step
                if read_later or steps:
                    out.append((m, steps, earlier))
            elif earlier and (any(pos[r] > pos[node] for r in readers)
                              or (info is not None and any(r in info.body for r in readers))):
                out.append((m, False, True))
        return out

    def reset_alternative(self, node, switched: str):
        """After `node`'s draw: where it kept a jump, the alternative row takes the drawn row's
        values of what is read after it (`live`)."""
        stride, off, span = self.alternative().slot
        for m, steps, now in self.live(node):
            v = self.stored_values(m)
            if now:
                self.emit(call(KERNELS.core.alt_reset, v, switched, stride, off, span))
            if steps:   # the loop's earlier steps of an output
                self.emit(call(KERNELS.core.alt_reset_steps, self.storage_of(v), STEP_INDEX, switched, stride, off, span))
