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
"""
from __future__ import annotations

from collections.abc import MutableMapping

import numpy as np

from networkx import ancestors as nx_ancestors

from . import declare
from . import validate as V
from .errors import ModelError
from .options import CompileOptions


def all_rows(a, rows: tuple):
    """A node's values on every row of each data row (B K S rows) from a buffer of its layout
    `rows` (Layout.values: for each of a data row's K S rows, the buffer row holding it)."""
    d = max(rows) + 1
    return a.reshape(-1, d, a.shape[1])[:, list(rows)].reshape(-1, a.shape[1])


class ParamView(MutableMapping):
    """name -> ndarray view into the flat parameter (or gradient) vector."""

    def __init__(self, flat: np.ndarray, layout):
        self._flat = flat
        self._index = {name: (off, shape) for name, off, shape, _ in layout.params}

    def __getitem__(self, name):
        if name not in self._index:
            raise KeyError(f"no parameter {name!r}; parameters: {', '.join(self._index)}")
        off, shape = self._index[name]
        return self._flat[off: off + int(np.prod(shape))].reshape(shape)

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

    def __len__(self):
        return len(self._index)


class Program:
    """A compiled model (`Model.compile` returns one).

    theta        the flat parameter vector (the program's dtype); every parameter is a view of it
    params       {name: array view into theta}, settable (`prog.params["enc.W"][...] = W`)
    grad_buffer  the flat gradient, aligned with theta, written by every `grad` / step call
    state        non-gradient estimator state (running baselines, temperatures), flat
    entry        the raw nopython step: entry(theta, grad, state, ws2, ws1, inputs, B, seed, t, mode)
                 -> loss; mode 0 evaluates the loss only, 1 also writes the gradient into grad;
                 `args(data)` gives (theta, grad, state, ws2, ws1, inputs, B) for a batch; it can
                 be called from a user's @njit code
    choices      {node: (Choice, NodeInfo)}: the estimator of every stochastic node and why
                 (`explain()` prints them)
    samples      K, draws per data row; objective: "elbo" or "iwae"; dtype
    autotune_table  policy "autotune": one dict per (node, candidate estimator) with its gradient
                 variance, standard error, rows per data row, score, us per step, whether
                 it was chosen and why (`explain()` prints it); None under the other policies
    """
    target = "cpu"
    objective = "elbo"   # compile(objective=...): "elbo" or "iwae"
    autotune_table = None   # policy "autotune": a dict per (node, candidate) (ppl/autotune.py)

    def __init__(self, model, analysis, choices, layout, module, source, dtype, samples):
        self.model, self.analysis, self.choices = model, analysis, choices
        self.layout, self.module, self.source = layout, module, source
        self.dtype, self.samples = dtype, samples
        self.entry = module.step
        self.theta = np.zeros(layout.n_theta, dtype)
        for _, off, shape, init in layout.params:
            self.theta[off: off + int(np.prod(shape))] = init.ravel()
        self.grad_buffer = np.zeros(layout.n_theta, dtype)
        self.state = np.zeros(max(layout.n_state, 1), dtype)
        for _, off, size, init in layout.state:
            self.state[off: off + size] = init
        self.params = ParamView(self.theta, layout)
        self._ws = {}
        self._twins = {}

    # ----- host and device (the CPU program has only the host; see CudaProgram)
    def pull(self):
        """Make the host arrays current (a no-op on the CPU)."""

    def push(self):
        """Send host parameter changes to where the step runs (a no-op on the CPU)."""

    def mark_device_newer(self):
        """Note that the step's arrays changed where it runs (a no-op on the CPU)."""

    def gradient_is_finite(self) -> bool:
        return bool(np.all(np.isfinite(self.grad_buffer)))

    # ----- workspaces and arguments
    def relaxed_nodes(self) -> list:
        """Discrete nodes whose estimator feeds a relaxed (continuous) value forward (concrete,
        gumbel_softmax): `loss` is then the relaxed surrogate, not the model's objective."""
        from .estimators import REGISTRY
        return [n.name for n, (ch, info) in self.choices.items()
                if info.dist.discrete and not REGISTRY[ch.estimator].hard_forward]

    def twin(self, **options):
        """The same model compiled with other `compile` options (this program's dtype, samples and
        objective unless given), holding this program's model parameters: compiled once per set
        of options, the parameters copied at every call."""
        opts = CompileOptions(dtype=self.dtype, samples=self.samples, objective=self.objective).replace(**options)
        return self._derived(repr(sorted(options.items())), lambda: self.model.compile_with(opts))

    def _derived(self, key, make):
        """A program derived from this one, compiled by make() once per key, holding this
        program's current values of its model parameters (copied by name at every call)."""
        prog = self._twins.get(key)
        if prog is None:
            prog = self._twins[key] = make()
        self.pull()
        for k in prog.model_param_names():
            prog.params[k][...] = self.params[k]
        return prog

    def hard_twin(self):
        """The twin whose relaxed nodes draw hard samples (the score function's forward), the
        other nodes keeping their estimators: its `loss` estimates the model's objective. self
        when nothing is relaxed."""
        relaxed = self.relaxed_nodes()
        if not relaxed:
            return self
        est = {n.name: (ch.estimator, dict(ch.options)) for n, (ch, _) in self.choices.items() if n.name not in relaxed}
        est.update({name: ("score", {"baseline": "none"}) for name in relaxed})
        return self.twin(estimators=est, lowering="arrays")

    def model_param_names(self) -> list:
        """The model's parameters (prog.params names), without the estimators' own."""
        from .estimators import estimator_params
        own = estimator_params()
        return [k for k in self.params if not k.startswith(own)]

    @property
    def rows_per_data_row(self) -> int:
        return self.samples * self.layout.S

    def _rows(self, rows, B: int) -> int:
        """A workspace buffer's rows for B data rows: "R" all rows, "D" one per data row, "Dn" n
        per data row (a layer computed once per class of equal rows), or a number."""
        if rows == "R":
            return B * self.rows_per_data_row
        if isinstance(rows, str):
            return B * int(rows[1:] or 1)
        return rows

    def workspace(self, B: int):
        """Preallocated (ws2, ws1) for a batch of B data rows (reused across calls)."""
        if B not in self._ws:
            ws2 = tuple(np.zeros((self._rows(rows, B), w), self.dtype) for _, rows, w in self.layout.ws2)
            ws1 = tuple(np.zeros(self._rows(rows, B), self.dtype) for _, rows in self.layout.ws1)
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
            raise ModelError(f"model '{self.model.name}' takes inputs {names}; "
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
            width = self.model.nodes[n].width
            if a.ndim == 1 and width == a.shape[0]:
                a = a[None, :]
            if a.ndim != 2 or a.shape[1] != width:
                raise ModelError(f"input '{n}' must have shape (batch, {width}); got {a.shape}")
            if B is not None and a.shape[0] != B:
                raise ModelError(f"input '{n}' has {a.shape[0]} rows but the batch has {B}; all inputs need "
                                 f"the same number of rows")
            B = a.shape[0]
            if not np.all(np.isfinite(a)):
                raise ModelError(f"input '{n}' has non-finite values (NaN or inf); clean the data first")
            arrays.append(np.ascontiguousarray(a, dtype=self.dtype))
        if B is None:
            raise ModelError(f"model '{self.model.name}' has no inputs: pass batch=N (rows to draw)")
        if B < 1:
            raise ModelError(f"batch must be >= 1, got {B}")
        return tuple(arrays), int(B)

    def args(self, data=None, batch=None, optional=()):
        """The tuple (theta, grad, state, ws2, ws1, inputs, B) the raw entry point takes."""
        inputs, B = self._inputs(data, batch, optional)
        ws2, ws1 = self.workspace(B)
        return (self.theta, self.grad_buffer, self.state, ws2, ws1, inputs, B)

    def _run(self, data, batch, seed, step, mode, optional=()):
        seed = V.seed(seed)
        step = V.integer(step, "step", lo=0, hi=V.SEED_MAX)
        a = self.args(data, batch, optional)
        loss = self.entry(*a, np.uint64(seed), np.int64(step), mode)
        return loss, a

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

    def grad(self, data=None, seed=0, step=0, batch=None):
        """(loss, {parameter name: gradient}) from one fused step; the gradient is a copy."""
        loss, _ = self._run(data, batch, seed, step, 1)
        g = ParamView(self.grad_buffer, self.layout)
        return float(loss), {k: g[k].copy() for k in g}

    def sample(self, data=None, seed=0, step=0, batch=None, nodes=None) -> dict:
        """Values of every non-cost node for one draw: {name: (rows, width)}, one row per data row,
        sample and configuration (r = ((i * K) + k) * S + c; nodes computed per data row repeated).
        nodes=[names]: those only, and `data` needs only the inputs they depend on (e.g. the
        guide's draws given x without the other inputs)."""
        optional = ()
        if nodes is not None:
            nodes = self._node_names(nodes, "sample")
            g = self.analysis.graph
            upstream = set().union(*(nx_ancestors(g, n) | {n} for n in nodes))
            optional = tuple(n for n in self.layout.inputs if n not in upstream)
        _, a = self._run(data, batch, seed, step, 0, optional)
        out = {}
        for name, (where, i, rows) in self.layout.values.items():
            if nodes is None or name in nodes:
                out[name] = all_rows(a[5][i] if where == "input" else a[3][i], rows)
        return out

    def _node_names(self, nodes, what) -> list:
        if isinstance(nodes, str):
            nodes = [nodes]
        try:
            nodes = list(nodes)
        except TypeError:
            raise ModelError(f"{what}: nodes must be a node name or a list of names, got {type(nodes).__name__}") from None
        bad = [n for n in nodes if not isinstance(n, str) or n not in self.layout.values]
        if bad:
            raise ModelError(f"{what}: {bad} are not nodes of model '{self.model.name}' with values; nodes: "
                             f"{', '.join(self.layout.values)}")
        return nodes

    # ----- a model declared with m.latent / m.observe (ppl/declare.py)
    def _generator(self, nodes):
        """The program of the generative graph of `nodes` (compiled once per node set, every node
        drawn by its sampler), holding this program's model parameters."""
        declare.require(self.model, "sampling the generative model")
        return self._derived(("generative", tuple(sorted(nodes))), lambda: declare.compile_hard(
            declare.generative(self.model, nodes), dtype=self.dtype))

    def sample_prior(self, n=None, data=None, nodes=None, seed=0) -> dict:
        """Ancestral draws of the generative model: every latent from its prior, every observed
        input from its likelihood, {name: (n, width)}; nodes: which (default: the latents and
        observed inputs), `data` the unobserved inputs they depend on (covariates), if any."""
        declare.require(self.model, "sample_prior")
        nodes = declare.default_nodes(self.model) if nodes is None else nodes
        return self.predict(data, nodes=nodes, seed=seed, batch=n)

    def predict(self, data=None, nodes=None, seed=0, batch=None) -> dict:
        """Draws of `nodes` (default: the observed inputs, e.g. y of a regression) from the
        generative model given `data`, which needs only the inputs they depend on (x, never the
        target; other arrays in `data` are ignored). {name: (rows, width)}."""
        declare.require(self.model, "predict")
        if nodes is None:
            nodes = [o.value.name for o in self.model.observed.values() if o.value.kind == "input"]
        nodes = [nodes] if isinstance(nodes, str) else list(nodes)
        gen = self._generator(nodes)
        names = gen.layout.inputs
        if data is not None and not isinstance(data, dict):
            if len(names) != 1:
                raise ModelError(f"predict: pass the inputs as a dict {{name: array}}; {nodes} depend on "
                                 f"{names or 'no input'}")
            data = {names[0]: data}
        data = {k: v for k, v in (data or {}).items() if k in names}
        missing = [n for n in names if n not in data]
        if missing:
            raise ModelError(f"predict / sample_prior: {nodes} depend on the inputs {missing}; pass them in data "
                             f"({{name: array}})")
        if not names:
            if batch is None:
                raise ModelError(f"predict / sample_prior: {nodes} depend on no input; give the number of draws "
                                 f"(sample_prior(n) or batch=n)")
            data = None
        return gen.sample(data, seed=seed, batch=batch, nodes=nodes)

    def _evaluator(self, samples, dtype):
        """The evaluation program (declare.evaluation: per-draw terms only) with `samples` draws per
        data row, every stochastic node drawn hard (the score estimator's forward)."""
        return self._derived(("evaluate", int(samples), np.dtype(dtype).name), lambda: declare.compile_hard(
            declare.evaluation(self.model), samples=samples, dtype=dtype, objective="elbo"))

    def log_weights(self, data, samples: int = 100, seed: int = 0, dtype=np.float64) -> np.ndarray:
        """(rows, samples) log p(x, h) - log q(h | x) of hard draws h ~ q(h | x) (a model declared
        with m.latent / m.observe): the sum of the derived terms per draw, negated."""
        declare.check_pure(self.model, "log_weights")
        samples = V.integer(samples, "log_weights: samples", lo=1, hi=1 << 20)
        return declare.log_weights(self, data, samples, V.seed(seed), dtype)

    def evaluate(self, data, bound: str = "elbo", samples: int = 100, seed: int = 0, dtype=np.float64) -> float:
        """The model's bound on log p(x), averaged over data rows, with hard samples of every
        discrete node whatever estimator trains it: bound="elbo", the mean of `samples` log weights
        per row; "iwae", log (1/S sum_s w_s) per row (Burda et al. 2016), S = samples."""
        if bound not in ("elbo", "iwae"):
            raise ModelError(f"evaluate: bound must be 'elbo' or 'iwae', got {bound!r}")
        lw = self.log_weights(data, samples, seed, dtype)
        return float(lw.mean() if bound == "elbo" else declare.logmeanexp(lw).mean())

    def autotune_report(self) -> str:
        """The autotune table (policy "autotune"): node | estimator | gradient variance +- its
        standard error | rows per data row | score = variance x rows | us per step (fastest of interleaved blocks) | verdict."""
        from . import autotune as A
        head = ("node", "estimator", "variance", "+- SE", "rows", "score", "us/step", "why")
        rows = [head]
        for r in self.autotune_table:
            if r["rows"]:
                rows.append((r["node"], r["estimator"] + (" *" if r["chosen"] else ""), f"{r['variance']:.4g}",
                             f"{r['se']:.2g}", str(r["rows"]), f"{r['score']:.4g}", f"{r['us_per_step']:.1f}",
                             r["why"]))
            else:
                rows.append((r["node"], r["estimator"], "-", "-", "-", "-", "-", r["why"]))
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        lines = [" | ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        lines.insert(1, "-+-".join("-" * w for w in widths))
        return "\n".join([f"autotune (* chosen): variance = trace of the model-parameter gradient's covariance over "
                          f"{A.DRAWS} fixed draws at the initial parameters; score = variance x rows per data row; "
                          f"scores within {A.TIE_MARGIN:.0%} (or 2 SE) of the least are tied; among the tied the "
                          f"fewest rows win, then (same rows) any > {1 + A.TIME_MARGIN:g}x the fastest time drops "
                          f"out, then the rule table's choice; us/step: the fastest of {A.ROUNDS} interleaved rounds"]
                         + lines)

    def explain(self) -> str:
        """A table: node | distribution | estimator | unbiased | why; then, per node whose estimator is
        biased, where its bias comes from; under policy "autotune" the measurements behind each
        choice (`autotune_report`)."""
        from .estimators import REGISTRY
        rows = [("node", "distribution", "estimator", "unbiased", "why")]
        for node, (ch, info) in self.choices.items():
            est = REGISTRY[ch.estimator]
            opts = {k: v for k, v in ch.options.items() if k in ("baseline", "temperature")}
            name = ch.estimator + (f" ({', '.join(f'{k}={v}' for k, v in opts.items())})" if opts else "")
            rows.append((node.name, info.dist.name, name, "yes" if est.unbiased else "no", ch.reason))
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        lines = [" | ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        lines.insert(1, "-+-".join("-" * w for w in widths))
        for node, (ch, _) in self.choices.items():
            if REGISTRY[ch.estimator].bias:
                lines.append(f"'{node.name}' ({ch.estimator}) is biased: {REGISTRY[ch.estimator].bias}")
        if self.autotune_table:
            lines += ["", self.autotune_report(), ""]
        if declare.is_declared(self.model):
            terms = [("cost", "sign", "term")] + declare.terms(self.model)
            w = [max(len(r[i]) for r in terms) for i in range(3)]
            lines.append("costs derived from m.latent / m.observe (their sum is -ELBO: -log p(x, h) + log q(h | x)):")
            lines += ["  " + " | ".join(c.ljust(k) for c, k in zip(r, w)).rstrip() for r in terms]
        extra = f"step: {self.layout.lowering}; samples per data row: {self.samples}"
        if self.objective == "iwae":
            extra = (f"objective: iwae, -log (1/K sum_k exp(-C_k)) over the K = {self.samples} draws of each data "
                     f"row (C_k: the sum of draw k's costs)\n") + extra
        if self.layout.S > 1:
            extra += f"; rows per draw (enumeration / antithetic / REBAR configurations): {self.layout.S}"
        return "\n".join(lines + [extra])

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
