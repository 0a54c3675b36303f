"""Pass "plan rows": the configuration digits of the row layout and each node's classes of
equal rows (what it is computed on), returned as a frozen `RowPlan` that the other parts read."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from types import MappingProxyType

from ..analysis import graph as G
from ..errors import ModelError
from ..estimators.protocol import row_shapes
from .rules import ARRAY_RULES
from .ir import per_step
from .alternative import affected_by_alternative
from .layout import _canon
from .loops import check_loop_estimators

# rows per drawn row (data row and sample) the step may evaluate: enumeration multiplies them by
# its support, the shared digit adds each node's extra rows
MAX_ROWS = 1 << 16


def shared_members(order, shapes: dict, descendants, steps=None) -> list:
    """The nodes whose extra rows share one digit, in order: every node whose rows are "relaxed"
    (REBAR's: the graph below evaluated again) and, when there are two or more such nodes in all,
    every node whose rows are "branches" of its own draw (antithetic pairs, measure-valued
    branches) with no node of a digit of its own below it. A lone node of the latter kind keeps a
    digit of its own (its pair may split the drawn row's weight, as it always has), and so does one
    above an enumerated node (or any other digit of its own): its estimate compares its rows' costs
    marginalised over that node's configurations, weighted by their rows' weights, which a shared
    digit's extra rows do not carry. The nodes drawing the "alternative" row of stochastic
    derivatives always join (they share one row). `shapes`: node -> its RowShape (row_shapes);
    `descendants(node)`: the names below it; `steps`: node -> its loop's steps (a body node counts
    as one node per step)."""
    expanded = [n for n in order if n in shapes and shapes[n].configs > 1]
    own = [n for n in expanded if shapes[n].joins == "product"]
    relaxed = [n for n in expanded if shapes[n].joins == "relaxed"]
    alternative = [n for n in expanded if shapes[n].joins == "alternative"]
    members = [n for n in expanded if n in relaxed or n in alternative or (shapes[n].joins == "branches" and not (
        {m.name for m in own} & descendants(n)))]
    steps = steps or {}
    if sum(steps.get(n, 1) for n in members) > 1 or any(n in alternative for n in members):
        return members
    return relaxed


def shared_span(members, shapes: dict, steps=None, paths: int = 1) -> int:
    """The rows of the shared digit of `members` (shared_members): the drawn row, each member's
    extra rows (once per step of its loop), and the `paths` alternative rows every member that
    draws them shares (stochastic derivatives); 1 when there are none."""
    steps = steps or {}
    alt = [n for n in members if shapes[n].joins == "alternative"]
    return 1 + sum((shapes[n].configs - 1) * steps.get(n, 1) for n in members if n not in alt) + paths * bool(alt)


def _frozen(d: dict) -> MappingProxyType:
    return MappingProxyType(dict(d))


@dataclass(frozen=True)
class RowPlan:
    """What pass "plan rows" decides, read by every later part (never written after it).

    Rows are r = ((i K) + k) S + c; `reps` = K S rows per data row. `sizes[n]`: the node's
    configurations, `steps[n]`: its loop's steps (1 outside a loop); `shared`: the nodes whose
    extra rows share one digit, in order; `row_digit[n] = (stride, size)` of every expanded node's
    digit, `cv_slot[n] = (off, span)` of a shared-digit member; `branch_digit`: the shared
    digit's (stride, span) when its extra rows carry no objective weight, else None;
    `draws_alternative`: the nodes that draw the alternative rows, `paths` of them (local indices
    off .. off + paths - 1 of the shared digit). `FULL` / `D1`: the layouts of every
    row and of one row per data row; `lay[n]`: the layout a node is stored on, `inv`: the nodes
    stored once per data row; `gcopy[n]`: the other layouts its readers read its cotangent on;
    `shapes[n]`: the RowShape its estimator gave (estimators.protocol), which all of this is made from."""

    S: int
    reps: int
    sizes: MappingProxyType
    steps: MappingProxyType
    shared: tuple
    row_digit: MappingProxyType
    cv_slot: MappingProxyType
    branch_digit: tuple | None
    draws_alternative: frozenset
    FULL: tuple
    D1: tuple
    lay: MappingProxyType
    inv: frozenset
    gcopy: MappingProxyType
    paths: int = 1
    shapes: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))

    # ----- the configurations of a drawn row (the row-fused lowering emits each one's code)
    def digit(self, node, cfg: int) -> int:
        """The node's configuration in configuration cfg (antithetic: 0 = b, 1 = b~): its digit of
        its own, or its place in the shared digit (0 on the other members' rows)."""
        stride, span = self.row_digit[node]
        if node not in self.shared:
            return (cfg // stride) % span
        off, j = self.cv_slot[node][0], (cfg // stride) % span
        extra = self.paths if node in self.draws_alternative else self.sizes[node] - 1
        return j - off + 1 if off <= j < off + extra else 0

    def partner(self, node, cfg: int) -> int:
        """The configuration of the node's configuration 1 (its antithetic partner) on the rows of
        configuration cfg (where the node's configuration is 0)."""
        stride, _ = self.row_digit[node]
        return cfg + (self.cv_slot[node][0] if node in self.shared else 1) * stride

    def weighs(self, cfg: int) -> bool:
        """Whether configuration cfg carries the objective's weight w_: every one but the extra rows
        of the shared digit (kernels/families/branches.py)."""
        if self.branch_digit is None:
            return True
        stride, span = self.branch_digit
        return (cfg // stride) % span == 0

    def slot_offset(self, node):
        """Where the node's configuration 1 sits in the shared digit (Rows.offset): a local index;
        for a node of a loop's body, its step's, as code; 0 when it has a digit of its own."""
        if node not in self.cv_slot:
            return 0
        off = self.cv_slot[node][0]
        if self.steps.get(node, 1) == 1 or node in self.draws_alternative:
            return off
        return per_step(self.sizes[node] - 1, off)


def plan_rows(model, an, choices, samples: int, objective: str = "elbo", merge_rows: bool = True,
              one_layout: bool = False, paths: int = 1) -> RowPlan:
    """The row layout r = ((i K) + k) S + c, c a mixed-radix number: one digit per enumerated
    or antithetic node (its configurations, a product with the other digits), and one digit
    that every REBAR node (an estimator that `evaluates_below`) shares, whose rows are a sum,
    not a product: the drawn row (local index 0), then each node's control-variate rows after
    the previous node's. `cv_slot[n] = (off, span)`: configuration c >= 1 of n sits at local
    index off + c - 1 of that digit's span rows; `row_digit[n] = (stride, size)` of every node's
    digit. A REBAR node's estimate reads its own rows and the drawn row only (every other row
    has weight rw = 0 for it), so the product's other rows -- two nodes' control variates at
    once -- changed no expectation: below a REBAR node another one is relaxed in those rows,
    so its configuration rows there were equal and their seeds (1, eta, -eta ...) summed to 1;
    beside it, they only added zero-mean terms. Two REBAR layers take 5 rows instead of 9 (9
    instead of 25 with eta and the temperature trained). `merge_rows`: compute layers once per
    class of equal rows (`_layouts`); `one_layout`: every node, data inputs too, on every row (the
    row-fused lowering's: a width-1 value costs nothing to redo); `paths`: the alternative rows of
    stochastic derivatives (grads.alternative_paths)."""
    shapes = row_shapes(an.order, choices)
    row_digit, cv_slot, S = {}, {}, 1
    sizes = {n: shape.configs for n, shape in shapes.items()}
    check_loop_estimators(an, choices, objective)
    # a body node's configurations exist once per step of its loop
    steps = {n: (an.loop_of(n).loop.length if an.loop_of(n) else 1) for n in sizes}
    shared = shared_members(an.order, shapes, lambda n: G.descendants(an.graph, n.name), steps)
    alt = [n for n in shared if shapes[n].joins == "alternative"]   # one row for them all
    for n in alt:   # the alternative row's costs are compared row by row, never marginalised
        below = G.descendants(an.graph, n.name)
        for m in an.order:
            if m.name in below and sizes.get(m, 1) > 1 and m not in shared:
                raise ModelError(f"{n.kind} '{n.name}': estimator '{choices[n][0].estimator}' cannot sit "
                                 f"above '{m.name}' (estimator '{choices[m][0].estimator}', whose rows "
                                 f"multiply and weigh each configuration); choose 'score', 'disarm' or 'mvd' for "
                                 f"'{m.name}'")
    paths = paths if alt else 1
    span = shared_span(shared, shapes, steps, paths)
    for n in an.order:
        size = sizes.get(n, 1)
        if size <= 1:
            continue
        if n in shared:
            if n is shared[0]:
                T, off = S, 1
                S *= span
                for m in shared:
                    if m in alt and m is not alt[0]:   # the alternative row's first node placed it
                        row_digit[m], cv_slot[m] = (T, span), cv_slot[alt[0]]
                        continue
                    row_digit[m], cv_slot[m] = (T, span), (off, span)
                    off += paths if m in alt else (sizes[m] - 1) * steps[m]
            continue
        if steps[n] > 1:
            raise ModelError(f"{n.kind} '{n.name}' (in the body of ppl.scan '{an.loop_of(n).loop.name}'): "
                             f"estimator '{choices[n][0].estimator}' multiplies the rows by {size} at every "
                             f"step ({size}^{steps[n]} rows); choose an estimator whose extra rows add up "
                             f"('disarm', 'mvd', 'arms'), or 'score' (no extra rows)")
        row_digit[n] = (S, size)
        S *= size
    if S > MAX_ROWS:
        raise ModelError(_too_many_rows(S, span, row_digit, shared, choices))
    # a shared digit with branch rows: only its drawn rows carry the objective's weight
    branch_digit = row_digit[shared[0]] if any(shapes[n].branches for n in shared) else None
    KS = samples * S
    FULL, D1 = tuple(range(KS)), (0,) * KS
    plan = RowPlan(S, KS, _frozen(sizes), _frozen(steps), tuple(shared), _frozen(row_digit), _frozen(cv_slot),
                   branch_digit, frozenset(alt), FULL, D1, _frozen({}), frozenset(), _frozen({}), paths,
                   _frozen(shapes))
    if KS == 1 or one_layout:
        return plan
    lay, gcopy = _layouts(plan, model, an, shapes, affected_by_alternative(an, choices), merge_rows)
    return replace(plan, lay=_frozen(lay), inv=frozenset(n for n in an.order if lay[n] == D1),
                   gcopy=_frozen({n: frozenset(v) for n, v in gcopy.items()}))


def _too_many_rows(S: int, span: int, row_digit, shared, choices) -> str:
    """The error of a row layout over MAX_ROWS rows per drawn row: the nodes that make them."""
    own = sorted(((row_digit[n][1], n.name, choices[n][0].estimator) for n in row_digit if n not in shared),
                 reverse=True)
    parts = [f"'{name}' (estimator '{est}') x{size}" for size, name, est in own[:4]]
    if shared:
        parts.append(f"the extra rows of {len(shared)} nodes ({', '.join(repr(n.name) for n in shared[:3])}"
                     f"{', ...' if len(shared) > 3 else ''}) +{span - 1}")
    return (f"the step would evaluate {S} rows per draw (> {MAX_ROWS}): {', '.join(parts)}; an estimator's rows "
            f"multiply (enumeration by its support, a user's by its rows()): enumerate fewer or smaller nodes, or "
            f"choose 'score' or 'stochastic_derivative' (no extra rows per node) for some of them")


def _layouts(plan: RowPlan, model, an, shapes: dict, every_row: set, merge_rows: bool):
    """Which rows of a data row each node is computed on: its layout `lay[n]`, a tuple that
    maps each of the data row's K S rows to the row holding its value, and `gcopy`.

    A node's rows that must hold equal values form its row classes `sig[n]` (the same form
    of tuple): a layer's values are equal on two rows when all its inputs' are; a stochastic
    node's when both rows draw it the same way (the same sample k, its own configuration
    digit, its inputs' classes; on a REBAR node's rows relaxed by it or by a REBAR node above,
    never), if its estimator `shares_rows`. Data inputs, parameters and what depends on them
    only have one class (the data-row sub-graph, `inv`); a layer below a stochastic node has
    K S, unless configurations repeat an upstream value: two REBAR layers' rows 0, 3, 4 hold
    the same upper draw, as do two DisARM layers' pairs of lower configurations, and XLA's
    common subexpressions would merge them too.

    A layer and a cost head (but log_prob: its estimators read its rows) are computed on one
    row per class; a stochastic node on all K S rows. A reader on other rows reads a copy
    (values_on: rows.repeat_rows or rows.gather_rows) and its cotangents are summed back
    (cotangent_on: rows.fold_rows or rows.fold_into); a cost's rows are spread to all R (rows.gather1) for the
    loss and the estimators, and the cost cotangents cw summed per class (cw_at: rows.fold1).
    The encoder of a model with 4 samples and an antithetic pair runs on B rows, not 8 B.
    `every_row`: the names of the nodes the alternative row can change (their copies need every
    row); without `merge_rows`, every node but the data inputs is computed on every row."""
    KS, S, FULL, D1 = plan.reps, plan.S, plan.FULL, plan.D1
    g = an.graph
    sig, lay, gcopy = {}, {}, {}
    for n in an.order:
        if (not merge_rows and n.kind != "input" or an.loop_of(n) is not None or "of_loop" in n.attrs
                or n.name in every_row):
            sig[n] = FULL   # every node on every row (a loop's body: its rows differ step by step)
            continue
        if not n.is_stochastic:
            sig[n] = _canon([tuple(sig[p][r] for p in n.inputs) for r in range(KS)])
            continue
        if not shapes[n].merges:
            sig[n] = FULL
            continue
        relaxing = [m for m in plan.shared
                    if (m is n or m.name in G.ancestors(g, n.name)) and shapes[m].joins == "relaxed"]
        keys = []
        for r in range(KS):
            k, c = divmod(r, S)
            if any(plan.digit(m, c) for m in relaxing):
                keys.append(("relaxed", r))
                continue
            digit = plan.digit(n, c) if n in plan.row_digit else 0
            keys.append((k, digit, tuple(sig[p][k * S + c] for p in n.inputs)))
        sig[n] = _canon(keys)
    for n in an.order:
        if n.kind == "input":
            lay[n] = D1
        elif n.is_stochastic or (n.attrs.get("is_head") and (n.kind == "log_prob" or n.kind in ARRAY_RULES
                                                             and n.kind != "bernoulli_nll")):
            lay[n] = FULL
        elif n.kind != "param":
            lay[n] = sig[n]
    for n in an.order:   # a parameter row: on its readers' rows if they agree, else once per data row
        if n.kind == "param":
            at = {lay[model.nodes[k]] for k in g.successors(n.name)}
            lay[n] = at.pop() if len(at) == 1 else D1
    for n in an.order:   # the cotangent copies: one per layout a reader reads the node on
        for k in g.successors(n.name):
            P = lay[model.nodes[k]]
            if P != lay[n]:
                gcopy.setdefault(n, set()).add(P)
    return lay, gcopy
