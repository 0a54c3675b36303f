"""The array lowering: the forward-sample / cost / backward pass of a graph as the body of ONE
generated step function, one kernel call per node and pass.

The generated step has the signature

    step(theta, grad, state, ws2, ws1, inputs, B, seed, t, mode) -> loss

theta/grad: flat parameter and gradient vectors (named views are reshaped slices);
state: non-gradient state (running baselines, fixed temperatures); ws2/ws1: preallocated 2D
and 1D workspaces; inputs: tuple of (B, width) data arrays; B: data rows; seed, t: the
counter-based RNG key and step; mode 0 = forward only, 1 = forward and gradient.
Rows are laid out r = ((i * K) + k) * S + c (data row, sample, enumeration configuration); a
layer is stored on one row per class of a data row's rows that hold equal values (rows.py).

`Lowering` (core.py) is composed of one part per job, each a module here, and a target's class
(`ArrayLowering`, arrays.py; the row-fused one) answers the walk's hooks:

    layout.py    Layout (what a Program allocates), names, the row-layout arithmetic
    context.py   what the estimator context calls: emitting, buffers, parameters, state, noise, signals
    views.py     a node's values and cotangents on the rows a reader reads them on
    rows.py      pass "plan rows": configuration digits and each node's classes of equal rows (RowPlan)
    grads.py     pass "requires grad": which values need a cotangent (GradientNeeds)
    walk.py      passes "lower forward" / "lower backward": the one walk over every node
    arrays.py    the array lowering: buffers over rows, one kernel call per node and pass; the loss

`Lowering.finish()` returns the lowered step as a frozen record (ir.Step), which the printers of
pass "render" (printer.py: the array step, its reversed form, the row-fused step) read.

The walk is shared with the row-fused lowering (ppl/lowering/rowfused.py: the same hooks over one
row's locals; neither target overrides the other or the walk). Layer ops are rendered from the
op table (ppl/ops.py) or their rule (ppl/lowering/rules.py), stochastic nodes by their
estimators (ppl/estimators/).
"""
from .core import Lowering, lower  # noqa: F401
from .arrays import ArrayLowering  # noqa: F401
from .layout import Layout, _ident  # noqa: F401
from .printer import named_source  # noqa: F401
