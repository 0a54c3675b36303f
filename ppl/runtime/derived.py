"""The programs a Program derives from its model: twins under other compile options (the hard
twin of a relaxed program), and for a model declared with m.latent / m.observe the generative
programs (sample_prior, predict) and the evaluation program (log_weights, evaluate). Each is
compiled once per key and holds the program's current model parameters."""
from __future__ import annotations

import numpy as np

from ..language import declare
from .. import validate as V
from ..errors import ModelError


def all_rows(a, rows: tuple):
    """A node's values on every row of each data row (B K S rows) from a buffer of its layout
    `rows` (Layout.values: for each of a data row's K S rows, the buffer row holding it)."""
    d = max(rows) + 1
    return a.reshape(-1, d, a.shape[1])[:, list(rows)].reshape(-1, a.shape[1])


class DerivedPrograms:
    """Program's derived programs (a mixin of ppl.runtime.program.Program)."""

    # set by the compiler on each program it makes (this folder imports no compiler): the compile options
    # (a CompileOptions record: twins are compiled under a copy) and the compile helper
    # (compiler/ahead.py: running(), functions(calls)) that derived programs queue their entry points on
    options = None
    ahead = None

    # ----- workspaces and arguments
    def relaxed_nodes(self) -> list:
        """Discrete nodes whose estimator feeds a relaxed (continuous) value forward (concrete,
        gumbel_softmax): `loss` is then the relaxed surrogate, not the model's objective."""
        from ..estimators import REGISTRY
        return [n.name for n, (ch, info) in self.choices.items()
                if info.dist.discrete and not REGISTRY[ch.estimator].hard_forward]

    def twin(self, **options):
        """The same model compiled with other `compile` options (this program's dtype, samples and
        objective unless given), holding this program's model parameters: compiled once per set
        of options, the parameters copied at every call."""
        if self.options is None:
            raise ModelError("twin: this program was not made by Model.compile (it has no compile options); "
                             "compile the model with m.compile(...) and take its twin")
        opts = type(self.options)(dtype=self.dtype, samples=self.samples, objective=self.objective).replace(**options)
        return self._derived(repr(sorted(options.items())), lambda: self.declared.compile_with(opts))

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

    def _node_names(self, nodes, what) -> list:
        if isinstance(nodes, str):
            nodes = [nodes]
        try:
            nodes = list(nodes)
        except TypeError:
            raise ModelError(f"{what}: nodes must be a node name or a list of names, got {type(nodes).__name__}") from None
        summed = [n for n in nodes if getattr(self.declared.latents.get(n), "kl", None) == "summed"]
        if summed:   # language/markov.py: the step sums them, it draws no value of them
            raise ModelError(f"{what}: {summed} are summed out (guide='enumerate'): the step has no draw of them; "
                             f"prog.sample_prior(n, nodes={summed}) draws them from their prior")
        bad = [n for n in nodes if not isinstance(n, str) or n not in self.layout.values]
        if bad:
            raise ModelError(f"{what}: {bad} are not nodes of model '{self.declared.name}' with values; nodes: "
                             f"{', '.join(self.layout.values)}")
        return nodes

    # ----- a model declared with m.latent / m.observe (ppl/language/declare.py)
    def _generator(self, nodes, given=()):
        """The program of the generative graph of `nodes` (compiled once per node set, every node
        drawn by its sampler, the latents in `given` data inputs), holding this program's model
        parameters."""
        declare.require(self.declared, "sampling the generative model")
        given = tuple(sorted(given))
        return self._derived(("generative", tuple(sorted(nodes)), given), lambda: declare.compile_hard(
            declare.generative(self.declared, nodes, given), dtype=self.dtype))

    def _guide(self, latents, given, plates: bool):
        """The program of the guide's graph of `latents` (declare.guide), holding this program's
        model parameters."""
        key = ("guide", tuple(sorted(latents)), tuple(sorted(given)), plates)
        return self._derived(key, lambda: declare.compile_hard(
            declare.guide(self.declared, latents, given, plates), dtype=self.dtype))

    def sample_prior(self, n=None, data=None, nodes=None, seed=0, num_samples=None) -> dict:
        """Ancestral draws of the generative model: every latent from its prior, every observed
        input from its likelihood, {name: (n, width)}; nodes: which (default: the latents and
        observed inputs), `data` the unobserved inputs they depend on (covariates), if any.
        num_samples=S: {name: (S, n, width)}, S draws per row in one step call."""
        declare.require(self.declared, "sample_prior")
        if n is not None:
            n = V.count(n, "sample_prior: n")
        nodes = declare.default_nodes(self.declared) if nodes is None else nodes
        return self.predict(data, nodes=nodes, seed=seed, batch=n, num_samples=num_samples, prior=True)

    def predict(self, data=None, nodes=None, seed=0, batch=None, num_samples=None, prior=False) -> dict:
        """Draws of `nodes` (default: the observed inputs, e.g. y of a regression) from the
        posterior predictive, as Pyro's Predictive(model, guide): every latent they depend on
        drawn from the trained guide (a global latent once per draw, shared by the rows), then
        the nodes from the generative model given those draws and `data`. prior=True: the prior
        predictive (every latent from its prior, as sample_prior).

        `data` holds the inputs the draws depend on: covariates (x, never the target), what the
        guide reads (a guide q(z | x, y) needs y: the draws are then replicates given y), and any
        latent to condition on (its values are used instead of drawing it, under both
        predictives); other arrays are ignored. Returns {name: (rows, width)}; num_samples=S:
        {name: (S, rows, width)}, S independent draws per row (draw 0 is the draw without
        num_samples), each stage one step call over the rows tiled S times."""
        declare.require(self.declared, "predict")
        if num_samples is not None:
            num_samples = V.count(num_samples, "predict: num_samples")
        if nodes is None:
            nodes = [o.value.name for o in self.declared.observed.values() if o.value.kind == "input"]
        nodes = [nodes] if isinstance(nodes, str) else list(nodes)
        if not nodes:
            raise ModelError(f"predict: nodes is empty; name the nodes to draw (default: the observed inputs "
                             f"{[o.value.name for o in self.declared.observed.values() if o.value.kind == 'input']})")
        latents = self.declared.latents
        cond = [k for k in data if k in latents] if isinstance(data, dict) else []
        gen = self._generator(nodes, cond if prior else latents)
        drawn = [n for n in gen.data_inputs if n in latents and n not in cond]
        summed = [n for n in drawn if latents[n].kl == "summed"]
        if summed:
            raise ModelError(f"predict: {nodes} depend on {summed}, summed out (guide='enumerate'), which has no guide "
                             f"to draw it from its posterior; predict(..., prior=True) draws it from its prior, or pass "
                             f"its values in data to condition on them")
        global_only = set(drawn) <= set(declare.global_latents(self.declared, self.analysis.global_nodes))
        guide = self._guide(drawn, cond, plates=not global_only) if drawn else None
        if guide is not None and global_only and guide.data_inputs:   # it reads a conditioned latent
            guide = self._guide(drawn, cond, plates=True)
        names = [n for n in gen.data_inputs if n not in drawn]
        names += [n for n in (guide.data_inputs if guide else ()) if n not in names]
        if data is not None and not isinstance(data, dict):
            if len(names) != 1:
                raise ModelError(f"predict: pass the inputs as a dict {{name: array}}; {nodes} depend on "
                                 f"{names or 'no input'}")
            data = {names[0]: data}
        data = {k: v for k, v in (data or {}).items() if k in names}
        missing = [n for n in names if n not in data]
        if missing:
            read = [n for n in missing if n not in gen.data_inputs]
            raise ModelError(f"predict / sample_prior: {nodes} depend on the inputs {missing}; pass them in data "
                             f"({{name: array}})" + (f" ({read} are read by the guide of {drawn}, which draws those "
                                                     f"latents; predict(..., prior=True) draws them from the prior "
                                                     f"instead)" if read else ""))
        if not names:
            if batch is None:
                raise ModelError(f"predict / sample_prior: {nodes} depend on no input; give the number of draws "
                                 f"(sample_prior(n) or batch=n)")
            data = None
        _fits_in_memory(gen, data, batch, num_samples, nodes)
        if guide is None:
            if num_samples is None:
                return gen.sample(data, seed=seed, batch=batch, nodes=nodes)
            return _tiled_draws(gen, data, nodes, seed, batch, num_samples)
        return _posterior_draws(gen, guide, data, nodes, drawn, seed, batch, num_samples)

    def _evaluator(self, samples, dtype):
        """The evaluation program (declare.evaluation: per-draw terms only) with `samples` draws per
        data row, every stochastic node drawn hard (the score estimator's forward)."""
        return self._derived(("evaluate", int(samples), np.dtype(dtype).name), lambda: declare.compile_hard(
            declare.evaluation(self.declared), samples=samples, dtype=dtype, objective="elbo"))

    def prepare_evaluation(self, samples: int = 100, dtype=None):
        """Compile now the evaluation program that log_weights / evaluate use with `samples` draws
        (in `dtype`, default this program's), not at their first call: a new one's kernels then
        compile on a second core while the training step's do (ppl/compiler/ahead.py). None for
        a model that is not declared with m.latent / m.observe alone (it has no evaluation)."""
        if not declare.is_pure(self.declared):
            return None
        if getattr(self.declared, "plates", None):   # plated_log_weights' two programs
            return self._plated_programs(np.dtype(self.dtype if dtype is None else dtype))[1]
        samples = V.integer(samples, "prepare_evaluation: samples", lo=1, hi=1 << 20)
        ev = self._evaluator(samples, self.dtype if dtype is None else dtype)
        ahead = self.ahead
        if ev.target == "cpu" and ahead is not None and ahead.running() and not getattr(ev, "queued_ahead", False):
            ev.queued_ahead = True   # its entry point too, on the helper, once
            block = {n: np.zeros((1, ev.model.nodes[n].width), ev.dtype) for n in ev.data_inputs}
            ahead.functions([(ev.module.step_rows, declare.evaluation_args(ev, block, 0, 0))])
        return ev

    def log_weights(self, data, samples: int = 100, seed: int = 0, dtype=None) -> np.ndarray:
        """(rows, samples) log p(x, h) - log q(h | x) of hard draws h ~ q(h | x) (a model declared
        with m.latent / m.observe): the sum of the derived terms per draw, negated. dtype: the
        evaluation program's (default this program's: its kernels are those training compiled).
        A plated model: each row's log weight given draw s of the global latents, the same draw
        for every row (plated_log_weights has the global latents' own terms too)."""
        if getattr(self.declared, "plates", None):
            return self.plated_log_weights(data, samples, seed, dtype)[1]
        declare.check_pure(self.declared, "log_weights")
        samples = V.integer(samples, "log_weights: samples", lo=1, hi=1 << 20)
        return declare.log_weights(self, data, samples, V.seed(seed), self.dtype if dtype is None else dtype)

    def plated_log_weights(self, data, samples: int = 100, seed: int = 0, dtype=None, predictive=False) -> tuple:
        """A plated model's ((samples,), (rows, samples)) log weights: `samples` draws w_s of the
        global latents from the guide, log p(w_s) - log q(w_s) of each, and every data row's log
        p(x_i, h_i | w_s) - log q(h_i | x_i, w_s) with its local latents h_i drawn hard given w_s.
        The data set's log weight of draw s is the first plus the column's sum (the latents of
        plates of groups drawn with the rows, each row holding 1 / its group's rows of their
        terms). predictive=True: those latents drawn from their guides without their terms (a
        row's log p(x_i | w_s, theta_s), what a predictive density averages)."""
        declare.require(self.declared, "plated_log_weights")
        if not getattr(self.declared, "plates", None):
            raise ModelError(f"plated_log_weights: model '{self.declared.name}' has no plate; use log_weights")
        declare.check_pure(self.declared, "plated_log_weights", plates=True)
        samples = V.integer(samples, "plated_log_weights: samples", lo=1, hi=1 << 20)
        seed = V.seed(seed)
        dtype = np.dtype(self.dtype if dtype is None else dtype)
        return plated_log_weights(*self._plated_programs(dtype, predictive), data, samples, seed, _other_seed(seed))

    def _plated_programs(self, dtype, predictive=False):
        """A plated model's evaluation programs: its global latents' draws and terms (a row per
        draw), and its rows' terms given those draws (their latents as inputs, no plate)."""
        glob = declare.global_latents(self.declared, self.analysis.global_nodes)
        g = self._derived(("global_terms", tuple(glob), dtype.name), lambda: declare.compile_hard(
            declare.guide(self.declared, glob, plates=False, priors=True), dtype=dtype))
        drop = declare.group_latents(self.declared, self.analysis.group_of) if predictive else []
        c = self._derived(("given", tuple(glob), tuple(drop), dtype.name), lambda: declare.compile_hard(
            declare.evaluation(self.declared, glob, drop), dtype=dtype))
        return g, c

    def evaluate(self, data, bound: str = "elbo", samples: int = 100, seed: int = 0, dtype=None) -> float:
        """The model's bound on log p(x) per data row, with hard samples of every discrete node
        whatever estimator trains it: bound="elbo", the mean of `samples` log weights per row;
        "iwae", log (1/S sum_s w_s) per row (Burda et al. 2016), S = samples; "lppd", the same
        per row (the log predictive density of each row, estimated by importance sampling).
        A plated model (global latents w): "elbo" and "iwae" are the data set's bounds on
        log p(data) over its rows, each draw of w shared by the rows, divided by the rows;
        "lppd" is the mean over rows of log (1/S sum_s p(x_i | w_s)), w_s from the guide (local
        latents by importance sampling): the held-out log predictive density per row."""
        if bound not in ("elbo", "iwae", "lppd"):
            raise ModelError(f"evaluate: bound must be 'elbo', 'iwae' or 'lppd', got {bound!r}")
        if getattr(self.declared, "plates", None):
            glob, rows = self.plated_log_weights(data, samples, seed, dtype, predictive=bound == "lppd")
            if bound == "lppd":
                return float(declare.logmeanexp(rows).mean())
            total = glob + rows.sum(0)
            n = rows.shape[0]
            return float(total.mean() / n if bound == "elbo" else declare.logmeanexp(total[None, :])[0] / n)
        log_w = self.log_weights(data, samples, seed, dtype)
        return float(log_w.mean() if bound == "elbo" else declare.logmeanexp(log_w).mean())


def _tiled_draws(gen, data, nodes, seed, batch, S: int) -> dict:
    """{name: (S, B, width)}: S draws of every row of `data` (or of `batch` rows without inputs)
    from one call of the generative program `gen` over the rows tiled S times; row s * B + i is
    draw s of row i, with its own noise (noise is a function of the row)."""
    assert gen.rows_per_data_row == 1, "a generative program draws one row per data row"
    if gen.shares_draws:   # rows share a global or a group's draw: one step per draw s (its noise is (seed, s)'s)
        draws = [gen.sample(data, seed=seed, step=s, batch=batch, nodes=nodes) for s in range(S)]
        return {k: np.stack([d[k] for d in draws]) for k in draws[0]}
    if data is None:
        B = V.count(batch, "predict: batch (sample_prior: n)")
        out = gen.sample(None, seed=seed, batch=B * S, nodes=nodes)
    else:
        arrays, B = gen._inputs(data, batch)
        tiled = {name: np.tile(a, (S, 1)) for name, a in zip(gen.layout.inputs, arrays)}
        out = gen.sample(tiled, seed=seed, nodes=nodes)
    gen._ws.pop(B * S, None)   # the S-fold workspace is not kept for later calls (its size)
    return {k: v.reshape(S, B, *v.shape[1:]) for k, v in out.items()}   # a scan's node: (S, B, T, width)


def _posterior_draws(gen, guide, data, nodes, drawn, seed, batch, S) -> dict:
    """The posterior predictive's two stages: the latents `drawn` from the guide's program
    (global ones once per draw; S draws per row as _tiled_draws), then `nodes` from the
    generative program given them, with noise of another seed (independent of the guide's).
    {name: (B, width)}, or (S, B, width) for S = num_samples."""
    inputs = [n for n in gen.data_inputs if n not in drawn]
    if inputs:
        rows = gen._inputs({k: data[k] for k in inputs}, batch, optional=tuple(drawn))[1]
    elif guide.data_inputs:
        rows = guide._inputs({k: data[k] for k in guide.data_inputs}, batch)[1]
    else:
        rows = V.count(batch, "predict: batch")
    reps = 1 if S is None else S
    if not guide.model.plates and not guide.data_inputs:   # global latents only: a row is a draw
        one = guide.sample(None, seed=seed, batch=reps, nodes=drawn)
        z = {k: np.repeat(v[:, None, :], rows, axis=1) for k, v in one.items()}
    else:
        gdata = {k: data[k] for k in guide.data_inputs} or None
        z = _tiled_draws(guide, gdata, drawn, seed, rows if gdata is None else None, reps)
    seed2 = _other_seed(seed)
    tiled = {k: np.tile(np.asarray(data[k]), (reps, 1)) for k in inputs}
    tiled.update({k: v.reshape(reps * rows, v.shape[2]) for k, v in z.items()})
    out = gen.sample(tiled, seed=seed2, nodes=nodes)
    gen._ws.pop(reps * rows, None)
    out = {k: v.reshape(reps, rows, *v.shape[1:]) for k, v in out.items()}
    return {k: v[0] for k, v in out.items()} if S is None else out


def plated_log_weights(glob, given, data, samples: int, seed: int, seed2: int) -> tuple:
    """A plated model's log weights ((S,), (N, S)): S draws w_s of its global latents by the
    program `glob` (guide(..., plates=False, priors=True): a row per draw), log p(w_s) - log q(w_s)
    of each; then by `given` (evaluation(model, global latents)) every data row's log p(x_i, h_i |
    w_s) - log q(h_i | x_i, w_s), h_i a hard draw of its local latents given w_s (its own per s,
    noise of seed2). The data set's log weight of draw s is the first plus the column's sum."""
    tot, a = declare.cost_totals(glob, None, seed, 0, batch=samples)
    names = [n for n in glob.layout.values if n in given.data_inputs]
    w = {n: all_rows(a[3][i], rows) for n, (where, i, rows) in glob.layout.values.items() if n in names}
    inputs, B = given._inputs({k: v for k, v in data.items() if k in given.data_inputs} if data else None,
                              None, optional=tuple(names))
    per = 1 if given.shares_draws else max(1, declare.block_rows(given, 1) // B)   # draws per call: rows tiled
    cols = []
    for s0 in range(0, samples, per):
        k = min(per, samples - s0)
        block = {n: np.tile(v, (k, 1)) for n, v in zip(given.layout.inputs, inputs) if n not in w}
        block.update({n: np.repeat(w[n][s0:s0 + k], B, axis=0) for n in names})
        t, _ = declare.cost_totals(given, block, seed2, s0 * B, step=s0)
        cols.append(-t.reshape(k, B).T)
    return -tot, np.concatenate(cols, axis=1)


def _other_seed(seed: int) -> int:
    """A second seed made from `seed`, for draws that must be independent of seed's (the second
    stage of a two-stage draw: the programs' noise streams would coincide)."""
    return int(np.random.SeedSequence([int(seed), 0x9E3779B9]).generate_state(1, np.uint64)[0]) >> 1


def _fits_in_memory(gen, data, batch, S, nodes) -> None:
    """Refuse draws whose buffers (the generative step's workspace over S x rows, and the drawn
    values) would not fit in this machine's available memory, before allocating any."""
    import os
    from .plates import data_rows
    rows = (data_rows(data) if data else None) or batch or 1
    width = sum(int(w) for _, _, w in gen.layout.ws2) + sum(gen.model.nodes[n].width for n in nodes)
    need = int(rows) * (S or 1) * width * np.dtype(gen.dtype).itemsize
    try:
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):   # no such figure here: no check
        return
    if need > free:
        raise ModelError(f"predict / sample_prior: {S or 1} draw(s) of {rows} row(s) need about {need / 2**30:.3g} GiB "
                         f"(the step's buffers over draws x rows and the values drawn); {free / 2**30:.3g} GiB are "
                         f"free: draw fewer (num_samples) per call, calling again with other seeds")
