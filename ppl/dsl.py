"""The modelling language: the `Model` context, and the node constructors and cost heads of
ppl/language/nodes.py (re-exported here).

    with ppl.Model("sbn") as m:
        x = m.input("x", 64)
        h = ppl.Bernoulli("h", logits=ppl.Affine(x, 32, name="enc"))
        m.cost("entropy", ppl.log_prob(h))
        m.cost("recon", ppl.bernoulli_nll(ppl.Affine(h, 64, name="dec"), target=x))

This is the top of the modelling layers: a Model is a nodes.Graph with the declarations of
ppl/language/declare.py (m.latent / m.observe) and `compile` (ppl/compiler/pipeline.py); none of those modules
imports this one.
"""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from .compiler import pipeline as compiler
from .language.declare import declare_auto, declare_latent, declare_observed
from .errors import ModelError  # noqa: F401  (ppl.dsl.ModelError: the generated steps import it from here)
from .compiler.options import CompileOptions
from .validate import integer
from .language.groups import Embed, Group  # noqa: F401  (ppl.Embed; m.plate's plates of groups)
from .language.nodes import (  # noqa: F401  (the DSL's names, importable from ppl.dsl)
    LAW_NODES, OP_NODES, Affine, Graph, Node, bernoulli_nll, blackbox, categorical_nll, concat, const, gaussian_kl,
    gaussian_nll, layer, log_prob, logsumexp, param, rowdot, rowsum, softmax_xent, total)
from .language.bounds import clip, maximum, minimum  # noqa: F401  (ppl.minimum, ppl.maximum, ppl.clip)

globals().update(LAW_NODES)   # ppl.dsl.Bernoulli, ppl.dsl.Normal, ...: one per law (ppl/laws/)
globals().update(OP_NODES)    # ppl.dsl.sigmoid, ...: one per elementwise op (ppl/ops.py)


class Model(Graph):
    """A named stochastic computation graph, built inside a `with` block."""

    # --- the generative model and the guide (ppl/language/declare.py derives the ELBO's costs)
    def latent(self, h, prior, kl: str = "sampled", width: int | None = None, guide: str = "normal"):
        """Declare p(h | parents) = `prior` (a ppl.dist spec) for the guide's stochastic node h (its
        q). Adds the costs logq_<h> (+log q(h)) and logp_<h> (-log p(h)), or with kl="analytic"
        the closed-form KL(q || p) as kl_<h> (Normal || Normal).

        h a name: the latent's guide is made for it (an automatic guide; `width` units, default
        1), global (declared outside every plate) or one per group (inside a plate of groups: its
        parameters tables of a row per group, ppl.Embed): guide="normal" a mean-field Normal in
        the unconstrained space mapped to the prior's support (the reals; exp for the positive
        reals; sigmoid for (0, 1); the softmax of (u, 0) for one group on the simplex), its
        log-Jacobian a term, parameters <name>_loc and
        <name>_scale (softplus); guide="delta" a point, <name>_loc (on the reals: <name>), MAP.
        guide="enumerate" (a prior of finite support: Bernoulli, Categorical, a Binomial of a
        constant count; per row): no guide, the latent is summed out exactly. The objective's term
        is then -log of the sum over its values of the prior times what reads it (not the ELBO's
        expectation over a guide that estimators={"h": "enumerate"} computes); in a ppl.scan
        whose carry holds it, a Markov chain, -log p(x_1:T) by the forward algorithm
        (ppl/language/markov.py; explain() names the terms).
        Returns the latent's node, to use in the model (z = m.latent("z", dist.Gamma(2.0, 1.0)))."""
        if isinstance(h, str):
            return declare_auto(self, h, prior, width, guide)
        if width is not None or guide != "normal":
            raise ModelError(f"m.latent({getattr(h, 'name', h)!r}, ...): width= and guide= make an automatic guide "
                             f"for a latent given by name (m.latent('z', prior, width=3)); a node brings its own guide")
        declare_latent(self, h, prior, kl)
        return h

    def observe(self, name: str, spec, value: Node) -> None:
        """Declare the likelihood p(value | parents) = `spec` (a ppl.dist spec) of a data node; adds
        the cost `name` = -log p(value)."""
        declare_observed(self, name, spec, value)

    @contextmanager
    def plate(self, name: str, size: int | None = None, index: Node | None = None):
        """`with m.plate("data", size=N):` (as Pyro's plate): the stochastic nodes made inside are
        drawn per data row; one made outside every plate that reads no data is global: drawn once
        per step (per sample) and shared by every row, its prior and guide terms counted once,
        while every cost that reads a data row is scaled by N / batch (the loss is N times the
        mean over the batch's rows of those costs plus the global terms: the data set's -ELBO).
        size=None (the default): N is the number of rows of the data `ppl.fit` trains on, set
        when the fit starts (Program.set_plate_size; until then the step's loss is NaN and
        Program.loss / grad say why), so a model file need not know its data's size.
        One plate of data rows per model; enter it as often as needed.

        `with m.plate("schools", size=G, index=school):` a plate of G groups (Pyro's plate of
        groups and `theta[school]`): `school` is a data input of width 1 holding each row's group
        (0 .. G - 1); a stochastic node made inside is drawn once per group, shared by the group's
        rows (an automatic guide there has a table of G rows: m.latent("theta", prior)), and its
        terms count once per group: on a batch, each of a group's rows carries 1 / (its group's
        rows in the data set) of them, times N / batch. Plates of groups nest (a plate of classes
        inside one of schools: each class in one school, its latents' priors may read the school's);
        the data plate may be opened inside them."""
        owner = f"m.plate({name!r}, size={size!r}" + (", index=...)" if index is not None else ")")
        size = None if size is None else integer(size, f"{owner}: size", lo=1, hi=1 << 62)
        if not isinstance(name, str) or not name:
            raise ModelError(f"{owner}: the name must be a non-empty string, e.g. m.plate('data', size=N)")
        if index is not None:
            group = self._group(owner, name, size, index)
            self.groups[name] = group
        else:
            if name in self.groups:
                raise ModelError(f"{owner}: '{name}' is a plate of groups (declared with index=); give its index again")
            if self.plate_open in self.plates:
                raise ModelError(f"{owner}: plate '{self.plate_open}' is open; the data plate does not nest in itself")
            other = next((k for k in self.plates if k != name), None)
            if other is not None:
                raise ModelError(f"{owner}: model '{self.name}' has the data plate '{other}' already; one plate of "
                                 f"data rows per model: reuse m.plate({other!r}, size={self.plates[other]}), or give "
                                 f"index= for a plate of groups")
            if self.plates.get(name, size) != size:
                raise ModelError(f"{owner}: plate '{name}' was declared with size={self.plates[name]}; give the same "
                                 f"size")
            self.plates[name] = size
        self.plate_stack.append(name)
        self.plate_open = name
        try:
            yield name
        finally:
            self.plate_stack.pop()
            self.plate_open = self.plate_stack[-1] if self.plate_stack else None

    def _group(self, owner: str, name: str, size, index) -> Group:
        """The plate of groups m.plate(name, size, index=) declares, checked (the same on every entry)."""
        if name in self.plates:
            raise ModelError(f"{owner}: '{name}' is the data plate; a plate of groups needs a name of its own")
        if size is None:
            raise ModelError(f"{owner}: a plate of groups needs its number of groups, size=G")
        if not isinstance(index, Node) or index.model is not self or index.kind != "input" or index.width != 1:
            raise ModelError(f"{owner}: index must be a data input of width 1 of this model holding each row's group "
                             f"(school = m.input('school', 1)), got {getattr(index, 'kind', type(index).__name__)}")
        if self.plate_open in self.plates:
            raise ModelError(f"{owner}: the data plate '{self.plate_open}' is open; a plate of groups holds data rows, "
                             f"not the other way round: open the data plate inside it")
        parent = self.plate_open if self.plate_open in self.groups else None
        group = Group(name, size, index.name, parent)
        old = self.groups.get(name)
        if old is not None and old != group:
            raise ModelError(f"{owner}: plate '{name}' was declared as {old}; give the same size, index and nesting")
        if any(g.index == index.name and g.name != name for g in self.groups.values()):
            raise ModelError(f"{owner}: input '{index.name}' indexes another plate of groups already")
        return group

    def compile(self, estimators="auto", policy: str | None = None, dtype=np.float32, samples: int = 1,
                baseline: str | None = None, seed: int = 0, target: str = "cpu", cache: bool = True,
                pilot=None, lowering: str = "auto", objective: str = "elbo"):
        """Choose an estimator per stochastic node and lower the graph to one fused step.

        estimators: "auto" (use `policy`), one estimator name for every stochastic node, or a
        dict {node name: name or (name, {options})}; nodes not named follow `policy`.
        policy: "measured" (the default, or $PPL_POLICY when set): each discrete node gets its
        unbiased candidate of least gradient variance x work, measured on the `pilot` data, else
        on the first batch a gradient is asked for (grad, fit): until then the rule table's choice
        (ppl/compiler/autotune.py, `Program.autotune_table`; the candidates that share a drawn row
        in one program, the others each in a program of its own, measured and timed by the next
        call, `Program.choose` at once; fit measures those only where its run can repay them);
        "rules" ("unbiased"): the rule
        table's unbiased choice; "fast": the rule table's, biased low-variance estimators
        allowed; "autotune": the former name of "measured".
        dtype: np.float32 (default) or np.float64.  samples: draws per data row (K).  seed:
        parameter initialisation.
        lowering: "auto" (row-fused: one loop of scalar code, when every node has width 1 and every
        estimator has a row-local form; else array kernels), "arrays" or "row-fused" (an error when
        it does not apply); both give the same draws and, up to rounding, the same step.
        objective: "elbo" (default: the mean over data rows of E[sum of costs]) or "iwae": the
        importance-weighted bound over each data row's K = samples draws (Burda et al. 2016),
        -log (1/K sum_k exp(-C_k)) with C_k the sum of the costs of draw k; the costs are then
        read as -log p + log q terms, -C_k the draw's log weight (any other costs are combined
        the same way: a soft minimum of the draws' totals). Needs samples >= 2.
        """
        return self.compile_with(CompileOptions(estimators, policy, dtype, samples, baseline, seed, target, cache, pilot,
                                                lowering, objective))

    def compile_with(self, options: CompileOptions):
        """compile() with its arguments as one CompileOptions record (ppl/compiler/options.py)."""
        self._imply_data_plate()
        return compiler.compile_program(self, options)

    def _imply_data_plate(self):
        if self.groups and not self.plates:   # plates of groups hold data rows: the data plate, sized by fit
            self.plates["data"] = None

    def render(self, path=None, detail: bool = False, estimators="auto", policy: str = "rules", samples: int = 1,
               objective: str = "elbo"):
        """A picture of the model without compiling it (Program.render's, the estimators those
        compile(estimators, policy, samples, objective) would choose): returns its Graphviz
        source; `path` writes .svg, .png, .dot or .gv."""
        from types import SimpleNamespace

        from .runtime.render import render
        if policy in ("measured", "autotune"):
            raise ModelError(f"render: policy={policy!r} measures on data; compile with it, then prog.render()")
        self._imply_data_plate()
        c = compiler.Compilation(self, CompileOptions(estimators, policy, np.float32, samples, None, 0, "cpu", True,
                                                      None, "auto", objective))
        compiler.analyse(c)
        compiler.select_estimators(c)
        return render(SimpleNamespace(model=self, analysis=c.an, choices=c.choices), path, detail)
