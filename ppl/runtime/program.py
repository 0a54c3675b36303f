"""A compiled program: parameters as plain arrays, and the fused step behind `loss`, `grad`,
`sample` and the raw nopython entry point.

    prog = m.compile()
    loss, grads = prog.grad({"x": batch}, seed=0)
    prog.params["enc.W"]                 # a view into the flat parameter vector; settable

Embedding in a user's @njit loop:

    step = prog.entry                    # step(theta, grad, state, ws2, ws1, inputs, B, seed, t, mode)
    args = prog.args({"x": batch})       # (theta, grad, state, ws2, ws1, inputs, B)
    @njit
    def loop(theta, grad, state, ws2, ws1, inputs, B, ...):
        loss = step(theta, grad, state, ws2, ws1, inputs, B, seed, t, 1)  # gradient into `grad`

The step's noise is a function of (seed, stream, row, column, t): two calls with the same seed
and step counter t draw the SAME noise. A training loop must pass t = its iteration number (a
loop that keeps t fixed follows one draw's gradient and converges to the wrong point).
`prog.check_steps()` (debugging) makes entry / args refuse a gradient step whose t does not
increase under one seed.
"""
from __future__ import annotations

import math
import weakref
from collections.abc import MutableMapping

import numpy as np

from .. import validate as V
from ..analysis.graph import ancestors
from ..distributions import DISTRIBUTIONS
from ..errors import ModelError
from ..language import declare
from . import first_steps
from .arena import carve
from .derived import DerivedPrograms, all_rows
from .plates import PlateSize, check_index
from .explain import Explained
from .choice import MeasuredChoice


class Choices(dict):
    """{node: (Choice, NodeInfo)} of a program's stochastic nodes, looked up by the node or by
    its name: `prog.choices["z"][0].estimator`."""

    def _node(self, key):
        if isinstance(key, str):
            node = next((n for n in self if n.name == key), None)
            if node is None:
                raise KeyError(f"no stochastic node {key!r}; the nodes with an estimator: "
                               f"{', '.join(n.name for n in self)}")
            return node
        return key

    def __getitem__(self, key):
        return super().__getitem__(self._node(key))

    def __contains__(self, key):
        return any(n.name == key for n in self) if isinstance(key, str) else super().__contains__(key)

    def get(self, key, default=None):
        return self[key] if key in self else default


class ParamView(MutableMapping):
    """name -> ndarray view into the flat parameter (or gradient) vector."""

    def __init__(self, flat: np.ndarray, layout):
        self._flat = flat
        self._index = {name: (off, shape) for name, off, shape, _ in layout.params}

    def __getitem__(self, name):
        if name not in self._index:
            raise KeyError(f"no parameter {name!r}; parameters: {', '.join(self._index)}")
        return self._at(*self._index[name])

    def _at(self, off, shape):
        return self._flat[off: off + math.prod(shape)].reshape(shape)

    def __setitem__(self, name, value):
        view = self[name]
        value = np.asarray(value)
        if value.shape != view.shape:
            raise ModelError(f"parameter '{name}' has shape {view.shape}; the new value has shape {value.shape}")
        if not np.all(np.isfinite(value)):
            raise ModelError(f"parameter '{name}': the new value has non-finite entries")
        view[...] = value

    def __delitem__(self, name):
        raise TypeError("parameters cannot be removed from a compiled program")

    def __iter__(self):
        return iter(self._index)

    def copies(self) -> dict:
        """{name: a copy of its array}: what `grad` returns (no lookup by name)."""
        return {name: self._at(off, shape).copy() for name, (off, shape) in self._index.items()}

    def __len__(self):
        return len(self._index)


class Program(DerivedPrograms, Explained, PlateSize, MeasuredChoice):
    """A compiled model (`Model.compile` returns one).

    theta        the flat parameter vector (the program's dtype); every parameter is a view of it
    params       {name: array view into theta}, settable (`prog.params["enc.W"][...] = W`)
    grad_buffer  the flat gradient, aligned with theta, written by every `grad` / step call
    state        non-gradient estimator state (running baselines, temperatures), flat
    entry        the raw nopython step: entry(theta, grad, state, ws2, ws1, inputs, B, seed, t, mode)
                 -> loss; mode 0 evaluates the loss only, 1 also writes the gradient into grad;
                 `args(data)` gives (theta, grad, state, ws2, ws1, inputs, B) for a batch; it can
                 be called from a user's @njit code. Its noise is a function of (seed, t): the
                 same t twice is the same draw, so pass t = the iteration number
                 (`check_steps()` refuses a repeated t); `unflatten(grad)` names its slots
    choices      {node: (Choice, NodeInfo)}: the estimator of every stochastic node and why
                 (`explain()` prints them); also by name, `prog.choices["z"]`
    graph        the model's graph as a `networkx.DiGraph` with each node's kind, law, width,
                 estimator, plate and is_cost (`Program.graph`)
    samples      K, draws per data row; objective: "elbo" or "iwae"; dtype
    declared     the model as declared (`model`: the graph compiled, its latents summed out)
    autotune_table  the measured choice's table, a dict per (node, candidate) (`explain()` prints it)
    """
    target = "cpu"
    objective = "elbo"   # compile(objective=...): "elbo" or "iwae"
    autotune_table, autotune_rule = None, ""   # the measured choice: its table and rule (compiler/autotune.py)

    def __init__(self, model, analysis, choices, layout, module, source, dtype, samples):
        self.model, self.analysis, self.choices, self.declared = model, analysis, Choices(choices), model
        self.layout, self.module, self.source, self.dtype, self.samples = layout, module, source, dtype, samples
        self.entry = module.step
        self.theta, self.grad_buffer, self.state = carve([layout.n_theta, layout.n_theta, max(layout.n_state, 1)],
                                                         dtype)
        for _, off, shape, init in layout.params:
            self.theta[off: off + int(np.prod(shape))] = init.ravel()
        for _, off, size, init in layout.state:
            self.state[off: off + size] = init
        self.params = ParamView(self.theta, layout)
        self._ws, self._twins = {}, {}
        self._guard = None   # check_steps(): the step-counter guard, ws1's last array
        self.steps_trained = 0   # steps ppl.fit trained it so far: a next fit's first step (its noise)
        self._fit_data = None   # weak references to fit's Batches and its checked arrays (batch_args)

    def check_steps(self, on: bool = True):
        """Debugging: `entry` (and `grad`, `loss`, ... which call it) refuses a gradient step
        (mode 1) whose step counter t does not increase under one seed, with a ModelError; a
        repeated t would repeat a previous step's noise. `args(data)` then ends ws1 with the
        guard's array: take both after this call. on=False restores the raw step. Returns self."""
        from .check import GUARD_SLOTS, checked_entry
        if not isinstance(on, (bool, np.bool_)):
            raise ModelError(f"check_steps: on must be True or False, got {on!r}")
        if on and self.target != "cpu":
            raise ModelError(f"check_steps: the checked step is for the CPU target; this program's is {self.target}")
        self._guard = np.zeros(GUARD_SLOTS, self.dtype) if on else None
        self.entry = checked_entry(self.module.step) if on else self.module.step
        return self

    # ----- host and device (the CPU program has only the host; see CudaProgram)
    def pull(self):
        """Make the host arrays current (a no-op on the CPU)."""

    def push(self):
        """Send host parameter changes to where the step runs (a no-op on the CPU)."""

    def mark_device_newer(self):
        """Note that the step's arrays changed where it runs (a no-op on the CPU)."""

    def gradient_is_finite(self) -> bool:
        """Whether the last step's flat gradient (grad_buffer) is all finite."""
        return bool(np.all(np.isfinite(self.grad_buffer)))

    def model_param_names(self) -> list:
        """The model's parameters (prog.params names), without the estimators' own."""
        from ..estimators import estimator_params
        own = estimator_params()
        return [k for k in self.params if not k.startswith(own)]

    @property
    def graph(self):
        """The model's graph, a `networkx.DiGraph` (a new one at each access: changing it changes
        nothing in the program). Its nodes are the node names; edges run from a node to the nodes
        that read it. Each node's attributes:

            kind       its op: "input", "affine", "bernoulli", "log_prob", ...
            law        a stochastic node's distribution ("Bernoulli", "Normal", ...); None otherwise
            width      its units (columns)
            estimator  the estimator chosen for a stochastic node ("disarm", ...); None otherwise
            plate      the plate a stochastic node is drawn in (made inside `with m.plate(...)`), or None
            is_cost    whether it is a cost the objective sums
            node       the model's node itself

            networkx.descendants(prog.graph, "h")          # what h's value reaches
            networkx.draw(prog.graph, with_labels=True)    # with matplotlib
        """
        g = self.analysis.graph.copy()   # the analysis' graph is frozen; its copy is not
        chosen = {n.name: ch.estimator for n, (ch, _) in self.choices.items()}
        for name, attrs in g.nodes.items():
            n = attrs["node"]
            law = DISTRIBUTIONS.get(n.kind)
            attrs.update(kind=n.kind, law=law.name if law else None, width=n.width, estimator=chosen.get(name),
                         plate=n.attrs.get("plate"), is_cost=n.is_cost)
        return g

    @property
    def rows_per_data_row(self) -> int:
        """The step's rows per data row: samples K times configurations S (explain() says which)."""
        return self.samples * self.layout.S

    def _rows(self, rows, B: int) -> int:
        """A workspace buffer's rows for B data rows: "R" all rows, "D" one per data row, "Dn" n
        per data row (a layer computed once per class of equal rows), a number, or a loop's
        per-step buffer (lowering.layout.PerStep: `steps` times its rows)."""
        if isinstance(rows, tuple):
            inner, steps = rows
            return int(steps) * self._rows(inner, B)
        if rows == "R":
            return B * self.rows_per_data_row
        if isinstance(rows, str):
            return B * int(rows[1:] or 1)
        return rows

    def workspace(self, B: int):
        """Preallocated (ws2, ws1) for a batch of B data rows (reused across calls)."""
        if B not in self._ws:
            shapes2 = [(self._rows(rows, B), w) for _, rows, w in self.layout.ws2]
            arrays = carve(shapes2 + [self._rows(rows, B) for _, rows in self.layout.ws1], self.dtype)
            ws2, ws1 = tuple(arrays[:len(shapes2)]), tuple(arrays[len(shapes2):])
            for i, values in self.layout.consts.items():   # the row maps (Lowering.row_map)
                ws1[i][:] = values
            self._ws[B] = (ws2, ws1)
        return self._ws[B]

    def _inputs(self, data, batch, optional=()):
        """The input arrays in argument order and the batch size; inputs named in `optional` may be
        missing (they are zeros: Program.sample of nodes that do not depend on them)."""
        names = self.layout.inputs
        if data is None:
            data = {}
        if not isinstance(data, dict):
            if len(names) == 1:
                data = {names[0]: data}
            else:
                raise ModelError(f"pass the inputs as a dict {{name: array}} for {', '.join(names)}")
        data = self.group_inputs(data)   # the plates of groups' weights (hidden inputs)
        absent = [n for n in names if n not in data and n in optional]
        if absent:
            rows = {np.shape(v)[0] for v in data.values() if np.ndim(v) == 2}
            if batch is None and len(rows) != 1:
                raise ModelError(f"inputs {absent} are not needed here, but the batch size is unknown: pass batch=N "
                                 f"or another input")
            n_rows = V.integer(batch, "batch", lo=1) if batch is not None else rows.pop()
            data = {**data, **{n: np.zeros((n_rows, self.model.nodes[n].width)) for n in absent}}
        missing = [n for n in names if n not in data]
        extra = [n for n in data if n not in names]
        if missing or extra:
            raise ModelError(f"model '{self.model.name}' takes inputs {self.data_inputs}; "
                             + (f"missing {missing}" if missing else "") + (f" unknown {extra}" if extra else ""))
        arrays, B = [], None if batch is None else V.integer(batch, "batch", lo=1)
        for n in names:
            try:
                a = np.asarray(data[n])
            except ValueError:
                raise ModelError(f"input '{n}' is not a rectangular array (rows of different lengths?); "
                                 f"pass a (batch, {self.model.nodes[n].width}) array") from None
            if a.dtype.kind not in "biuf":
                raise ModelError(f"input '{n}' has dtype {a.dtype}; pass numbers (a float, int or bool array)")
            width = self.model.nodes[n].width if n in self.model.nodes else 1   # 1: a plate's hidden weights
            if a.ndim == 1 and width == a.shape[0]:
                a = a[None, :]
            if a.ndim != 2 or a.shape[1] != width:
                raise ModelError(f"input '{n}' must have shape (batch, {width}); got {a.shape}")
            if B is not None and a.shape[0] != B:
                raise ModelError(f"input '{n}' has {a.shape[0]} rows but the batch has {B}; all inputs need "
                                 f"the same number of rows")
            B = a.shape[0]
            if not np.isfinite(a).all():
                raise ModelError(f"input '{n}' has non-finite values (NaN or inf); clean the data first")
            declare.check_data(self.model, n, a)   # an observed input: its likelihood's support
            check_index(self.model, n, a)   # an input indexing a plate of groups or an Embed
            arrays.append(np.ascontiguousarray(a, dtype=self.dtype))
        declare.check_bounds(self.model, dict(zip(names, arrays)))   # observed counts within their totals
        if B is None:
            raise ModelError(f"model '{self.model.name}' has no inputs: pass batch=N (rows to draw)")
        if B < 1:
            raise ModelError(f"batch must be >= 1, got {B}")
        return tuple(arrays), int(B)

    def args(self, data=None, batch=None, optional=()):
        """The tuple (theta, grad, state, ws2, ws1, inputs, B) the raw entry point takes."""
        return self._step_args(*self._inputs(data, batch, optional))

    def batch_args(self, batches, t):
        """The step's arguments for step t of fit's `batches` (data.Batches): its rows gathered.
        The data is checked once per Batches (names, widths, finite values), as the nopython
        loop checks it, not batch by batch."""
        idx = batches.rows(t, 1)
        return self._step_args(tuple(a[idx] for a in self._checked_data(batches)), idx.shape[0])

    def _step_args(self, inputs, B):
        """The entry point's arguments for these input arrays of B rows."""
        ws2, ws1 = self.workspace(B)
        if self._guard is not None:
            ws1 = ws1 + (self._guard,)
        return (self.theta, self.grad_buffer, self.state, ws2, ws1, inputs, B)

    def _checked_data(self, batches):
        """fit's data as the step's input arrays, checked once per Batches. Only weak references
        are kept: the program does not hold the data after the fit."""
        cached = self._fit_data
        if cached is not None and cached[0]() is batches:
            arrays = tuple(r() for r in cached[1])
            if all(a is not None for a in arrays):
                return arrays
        arrays = self._inputs(batches.arrays, None)[0]
        self._fit_data = (weakref.ref(batches), tuple(weakref.ref(a) for a in arrays))
        return arrays

    def _run(self, data, batch, seed, step, mode, optional=()):
        self.check_plate_sized()
        self.join_compile()
        seed = V.seed(seed)
        step = V.integer(step, "step", lo=0, hi=V.SEED_MAX)
        a = self.args(data, batch, optional)
        return first_steps.call(self, a, np.uint64(seed), np.int64(step), mode), a   # interpreted first

    # ----- the user API
    def loss(self, data=None, seed=0, step=0, batch=None) -> float:
        """Monte-Carlo estimate of the objective the step trains (mean over data rows of the sum of
        costs; the bound under objective 'iwae'). With relaxed discrete nodes (concrete,
        gumbel_softmax) it is the relaxed surrogate: `prog.hard_twin().loss(...)` estimates the
        model's objective with hard samples (fit's evaluation does so)."""
        return float(self._run(data, batch, seed, step, 0)[0])

    def loss_parts(self, data=None, seed=0, step=0, batch=None) -> dict:
        """The objective split by cost name (same draw as `loss` for the same seed and step).
        Under objective 'iwae' each cost's average under the draws' normalised importance
        weights (they do not add up to the bound, which `loss` returns)."""
        _, a = self._run(data, batch, seed, step, 0)
        ws1 = a[4]
        rw = ws1[self.layout.rw_index]
        return {name: float(rw @ ws1[i]) for name, i in self.layout.costs}

    def unflatten(self, flat) -> dict:
        """{parameter name: its array} of a flat vector aligned with theta (theta, grad_buffer, a
        gradient the raw step wrote, an optimiser's moments): views of `flat`, not copies."""
        flat = np.asarray(flat)
        if flat.shape != self.theta.shape:
            raise ModelError(f"unflatten: the vector has shape {flat.shape}; this program's parameters are "
                             f"{self.theta.shape} (theta, grad_buffer)")
        view = ParamView(flat, self.layout)
        return {k: view[k] for k in view}

    def grad(self, data=None, seed=0, step=0, batch=None):
        """(loss, {parameter name: gradient}) from one fused step; the gradient is a copy. A measured
        choice not made yet is made on this batch, on a thread while this gradient returns (the
        rule table's estimate); the next call takes its program (`choose` makes it at once)."""
        self._check_plate_rows(data, batch)
        loss = self._choose(data, batch, (seed, step)) if self._measure else self._run(data, batch, seed, step, 1)[0]
        return float(loss), ParamView(self.grad_buffer, self.layout).copies()

    def sample(self, data=None, seed=0, step=0, batch=None, nodes=None, configurations: bool = False) -> dict:
        """Values of every non-cost node for one draw: {name: (rows, width)}, one row per data row
        and sample (r = i * K + k; nodes computed per data row repeated); a node of a `ppl.scan`'s
        body: (rows, T, width), its trajectory over the T steps. nodes=[names]: those
        only, and `data` needs only the inputs they depend on (e.g. the guide's draws given x
        without the other inputs). Where the step evaluates several configurations per sample
        (enumeration, antithetic pairs, mvd branches: S rows), the draw is the twin's that samples
        every node once (the score function's forward); configurations=True gives every row the
        step evaluates instead, r = ((i * K) + k) * S + c."""
        if self.layout.S > 1 and not configurations:
            est = {n.name: ("score", {"baseline": "none"}) for n in self.choices}
            return self.twin(estimators=est, lowering="arrays").sample(data, seed, step, batch, nodes)
        optional = ()
        if nodes is not None:
            nodes = self._node_names(nodes, "sample")
            g = self.analysis.graph
            upstream = set().union(*(ancestors(g, n) | {n} for n in nodes))
            optional = tuple(n for n in self.layout.inputs if n not in upstream)
        _, a = self._run(data, batch, seed, step, 0, optional)
        steps = {n.name: lp.length for lp in getattr(self.model, "loops", ()) for n in lp.body}
        shown = _shown(self, nodes)
        return {name: _trajectory(all_rows(a[5][i] if where == "input" else a[3][i], rows), steps.get(name))
                for name, (where, i, rows) in self.layout.values.items() if name in shown}

    # ----- persistence
    def save(self, path) -> None:
        """Parameters and estimator state as .npz: written to a temporary file in the same folder,
        read back, then renamed over `path` (a failure midway keeps the previous file)."""
        from . import checkpoint
        checkpoint.write(path, self)

    def load(self, path) -> None:
        """Restore parameters and estimator state saved by `save` (or `fit`). Everything is checked
        first (readable file, format version, parameter names and shapes, finite values); on an
        error the program is unchanged."""
        from . import checkpoint
        checkpoint.assign(self, checkpoint.read(path, self))


def _shown(prog, nodes):
    """The nodes `sample` returns: those asked for, else every node with values of the declared
    model (not the nodes of a summed latent's sum, language/markov.py)."""
    if nodes is not None:
        return nodes
    return [n for n in prog.layout.values if prog.declared is prog.model or n in prog.declared.nodes]


def _trajectory(v, T):
    """A node's values (rows, width), or a scan's per-step node's (its T steps one after the
    other) as (rows, T, width)."""
    return v if T is None else np.ascontiguousarray(v.reshape(T, -1, v.shape[1]).transpose(1, 0, 2))
