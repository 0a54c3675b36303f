"""The lowering object: one part per job (see the package's docstring), composed; the walk
(walk.py) is shared by the two targets, each a class of its own that answers the walk's hooks:
ArrayLowering (arrays.py) and RowFusedLowering (rowfused.py).

While the walk runs, its parts write the step through one builder (`builder`, ir.StepBuilder):
its `Layout` (parameters, state, workspaces, inputs, costs: what a Program allocates), its
sections of emitted lines (`head` unpacks views, `fwd`, `bwd`), every line recorded with the node
that emitted it (`emitted`, read by the target check), the user functions the step calls
(`globals`: such a program is not cached on disk), and where the next line goes (`section`,
`owner`). `finish()` returns the step as one frozen record, `ir.Step`, which the printers
(printer.py) read; the row-fused lowering adds its row code (`row_code`: what runs around its
row loop).
"""
from __future__ import annotations

import numpy as np

from ..analysis import graph as G
from ..calls import KERNELS, call
from ..errors import ModelError
from ..language.nodes import Graph, Node
from ..estimators import NO_GRAD, NO_GRAD_1D, REGISTRY, EstimatorContext
from .context import ContextHelpers
from .grads import GradientNeeds, requires_grad
from . import ir
from .layout import Layout
from .loops import Loops
from .rows import RowPlan, plan_rows
from .walk import Walk


class Lowering(ContextHelpers, Walk, Loops):
    """Emits the fused step from the records of passes "plan rows" (`plan`, a RowPlan) and "requires
    grad" (`needs`, GradientNeeds). Estimators call the helper methods of its parts through their
    contexts. A target's class (ArrayLowering, RowFusedLowering) answers the walk's hooks
    (walk.py) and declares its own state in `_init_target`."""

    # a target's class states: merge_rows (compute layers once per class of equal rows,
    # rows.plan_rows), one_layout (every node on every row), unrolls (each configuration's code
    # emitted apart), context_class (what estimator_context makes, one per node)

    def __init__(self, model: Graph, an: G.Analysis, choices: dict, samples: int, rng: np.random.Generator,
                 objective: str = "elbo", *, plan: RowPlan, needs: GradientNeeds, dtype: str = "float32"):
        self.model, self.an, self.choices, self.samples = model, an, choices, samples
        self.dtype = dtype   # the step's float type (the row code's locals are cast to it)
        self.plan, self.needs = plan, needs   # the frozen records of the passes before the walk
        self.objective = objective   # "elbo", or "iwae": the bound over each data row's K draws
        self.rng = rng
        # plates (graph.scopes): global stochastic nodes draw one noise row per sample, shared by every
        # data row; a per-row cost's rows are scaled by its weight N in the forward, its VJP seeded N cw
        per_group = [n.name for n in an.group_of if n.is_stochastic]
        if (an.global_nodes or per_group) and objective == "iwae":
            which = "; ".join(f"the {what} node(s) {', '.join(names)}" for what, names in (
                ("global", [n.name for n in an.global_nodes]), ("per-group", per_group)) if names)
            raise ModelError(f"objective='iwae' with {which}: "
                             f"the importance-weighted bound is per data row and a global (or a group's) latent is "
                             f"shared by several rows; train the ELBO (objective='elbo') or draw them inside the plate")
        self.builder = ir.StepBuilder(Layout(S=plan.S))   # the step under construction, its insertion point
        self._init_loops()
        self._init_walk()
        self._init_context()
        self._init_target()
        self.contexts: dict = {}    # stochastic node -> its estimator's context (estimator_context)
        self.buf2(NO_GRAD.buffer, 0, rows=0)   # the empty buffers NO_GRAD and NO_GRAD_1D are written as
        self.builder.L.ws1.append((NO_GRAD_1D.buffer, 0))
        self.builder.bind(NO_GRAD_1D.buffer, "ws1", 0)
        self.rw = self.buf1("rw_")
        self.builder.L.rw_index = len(self.builder.L.ws1) - 1
        # cw, the cost cotangent seeds: the row weights rw, except where an estimator's extra rows
        # re-evaluate the graph below its node (REBAR's control variate): it seeds those rows'
        # cost cotangents differently from their (zero) loss weight. `evaluating`: those nodes
        self.cw = self.buf1("cw_") if needs.evaluating else self.rw
        self.zero_rows = self.buf1("zeros_")
        self.configs = range(plan.S if self.unrolls else 1)   # configurations whose code the walk emits per node
        self.builder.here = plan.FULL

    def finish(self) -> ir.Step:
        """The lowered step (after "lower backward"): the record the printers read."""
        self.one_step_storage()
        return self.builder.finish(self._weights(), self.row_code())

    def _weights(self) -> list:
        """The row weights' fill, run before every statement of the array step."""
        weights = [ir.Stmt(call(KERNELS.rows.fill, self.rw, f"1.0 / (B * {self.samples})"))]
        if self.plan.branch_digit is not None:
            weights.append(ir.Stmt(call(KERNELS.core.branch_weights, self.rw, *self.plan.branch_digit[:2])))
        return weights

    def _estimator(self, node: Node):
        return REGISTRY[self.choices[node][0].estimator]

    def estimator_context(self, node: Node) -> EstimatorContext:
        """The context the node's estimator sees (one per node: its draw and its estimate share it)."""
        if node not in self.contexts:
            ch, _ = self.choices[node]
            self.contexts[node] = self.context_class(REGISTRY[ch.estimator], self, node, ch.options)
        return self.contexts[node]


def lower(cls, model: Graph, an: G.Analysis, choices: dict, samples: int, rng: np.random.Generator,
          objective: str = "elbo", dtype: str = "float32") -> Lowering:
    """The passes from "plan rows" to "lower backward" in order (compiler.LOWER runs them one
    by one): a lowering of class `cls` (ArrayLowering or RowFusedLowering), done (its `finish()`
    is the step the printers read)."""
    plan = plan_rows(model, an, choices, samples, objective, cls.merge_rows, cls.one_layout)
    needs = requires_grad(model, an, choices)
    lowering = cls(model, an, choices, samples, rng, objective, plan=plan, needs=needs, dtype=dtype)
    lowering.lower_forward()
    lowering.lower_backward()
    return lowering
